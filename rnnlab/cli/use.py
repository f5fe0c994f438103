"""Commands that use one kind of trained model: sample, explain (character model); translate, caption,
transcribe (the encoder-decoder family; the same as ``rnnlab predict`` with flags of their own)."""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.cli.run import add_device_flag, use_device
from rnnlab.decoding import SamplingOptions
from rnnlab.errors import RnnlabError
from rnnlab.tasks import load


def add_parsers(sub) -> None:
    sample = sub.add_parser("sample", help="stream text from a trained character model")
    sample.add_argument("run", metavar="RUN", help="checkpoint folder")
    sample.add_argument("--prime", default="", help="text to start from (it is printed first)")
    sample.add_argument("--temperature", type=float, default=0.8, metavar="T", help="softmax temperature; 0 is greedy")
    sample.add_argument("--top-k", type=int, metavar="K", help="sample only from the K likeliest characters")
    sample.add_argument(
        "--top-p", type=float, metavar="P", help="sample only from the smallest set of characters holding probability P"
    )
    sample.add_argument("--length", type=int, default=500, metavar="N", help="characters to generate")
    sample.add_argument("--seed", type=int, metavar="S", help="random seed for a repeatable sample")
    add_device_flag(sample)
    sample.set_defaults(func=cmd_sample)

    ex = sub.add_parser(
        "explain",
        help="write the hidden-cell explorer page for a character model",
        description="Trace a trained character model over a text and write a self-contained HTML page: the text "
        "coloured by any unit, units ranked by the text properties they track, gate saturation plots.",
    )
    ex.add_argument("run", metavar="RUN", help="checkpoint folder")
    ex.add_argument("--text", metavar="FILE", help="UTF-8 text to analyse (default: the run's validation text)")
    ex.add_argument("--out", metavar="DIR", type=Path, help="folder for explorer.html (default: RUN)")
    ex.add_argument("--chars", type=int, default=10_000, metavar="N", help="characters to analyse")
    ex.add_argument("--shown", type=int, default=2_000, metavar="N", help="characters shown on the page")
    add_device_flag(ex)
    ex.set_defaults(func=cmd_explain)

    exp = sub.add_parser(
        "export",
        help="export a character model or a text classifier to ONNX",
        description="Write ONNX graphs of a trained run (character model: step.onnx, one token per call with the "
        "state in and out, and sequence.onnx; text classifier: classifier.onnx) and rnnlab.json (vocabulary, "
        "labels), then check them against torch with onnxruntime. Needs rnnlab's 'export' extra.",
    )
    exp.add_argument("run", metavar="RUN", help="checkpoint folder")
    exp.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    exp.add_argument("--out", metavar="DIR", type=Path, help="folder for the files (default: RUN/onnx)")
    exp.set_defaults(func=cmd_export)

    p = sub.add_parser("translate", help="translate sentences with a trained translator")
    p.add_argument("run", metavar="RUN", help="checkpoint folder")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
    p.add_argument("--file", metavar="FILE", help="a UTF-8 file of sentences, one per line")
    p.add_argument("--beam", type=int, metavar="K", help="beam width (default: the run's)")
    p.add_argument("--attention-map", type=Path, metavar="PNG", help="draw the attention weights of the first sentence")
    p.add_argument("--attention-html", type=Path, metavar="HTML", help="a page with the attention map of every sentence")
    add_device_flag(p)
    p.set_defaults(func=cmd_translate)

    c = sub.add_parser("caption", help="caption images with a trained captioner")
    c.add_argument("run", metavar="RUN", help="checkpoint folder")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    c.add_argument("--beam", type=int, metavar="K", help="beam width (default: the run's)")
    add_device_flag(c)
    c.set_defaults(func=cmd_predict_kind, kind="captioner", inputs="images")

    t = sub.add_parser("transcribe", help="transcribe recordings of spoken digits")
    t.add_argument("run", metavar="RUN", help="checkpoint folder")
    t.add_argument("wavs", nargs="+", metavar="WAV", help="audio files (resampled to 8 kHz if need be)")
    t.add_argument("--beam", type=int, metavar="K", help="prefix beam width, 1 for greedy (default: the run's)")
    add_device_flag(t)
    t.set_defaults(func=cmd_predict_kind, kind="transcriber", inputs="wavs")


def cmd_sample(args) -> int:
    import torch

    from rnnlab.tasks.charlm import generate

    torch.set_num_threads(1)  # one token at a time: a second thread costs more than it helps (5.8k vs 5.3k tok/s)
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    run = load(args.run, "charlm", use_device(args.device))
    stream = generate(run.model, run.vocab, args.prime, args.length, options, args.seed)
    sys.stdout.write(args.prime)
    for char in stream:
        sys.stdout.write(char)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_export(args) -> int:
    from rnnlab.export import export

    run = load(args.run)
    exported = export(run, args.out or Path(args.run) / "onnx")
    for path in exported.files:
        print(f"wrote {path}")
    print(f"onnxruntime against torch on new inputs: largest difference {exported.max_difference:.2e}")
    if exported.tokens_per_s:
        print(f"onnxruntime, step.onnx at batch 1, 1 thread: {exported.tokens_per_s:,.0f} tokens/s")
    return 0


def cmd_explain(args) -> int:
    from rnnlab.data.text import read_text
    from rnnlab.viz.explorer import write_explorer

    run = load(args.run, "charlm", use_device(args.device))
    text = read_text(args.text) if args.text else run.validation_text()
    out = args.out or Path(args.run)
    if out.exists() and not out.is_dir():
        raise RnnlabError(f"--out {out}: is a file; expected a folder for explorer.html")
    out.mkdir(parents=True, exist_ok=True)
    print(write_explorer(run, text, out, args.chars, args.shown))
    return 0


def cmd_translate(args) -> int:
    from rnnlab.tasks.translate import translate
    from rnnlab.viz.attention import plot_attention, write_attention_page

    sentences = list(args.sentences)
    if args.file:
        from rnnlab.data.text import read_text

        sentences += [line for line in read_text(args.file).splitlines() if line.strip()]
    if not sentences:
        raise RnnlabError("give sentences to translate, as arguments or with --file FILE")
    if args.attention_map and args.attention_map.suffix.lower() != ".png":
        raise RnnlabError(f"--attention-map needs a .png file name, got {args.attention_map}")
    run = load(args.run, "translator", use_device(args.device))
    results = translate(run, sentences, args.beam, attention=bool(args.attention_map or args.attention_html))
    for t in results:
        print(t.text)
    if (args.attention_map or args.attention_html) and results[0].attention is None:
        if results[0].parts > 1:
            raise RnnlabError(f"the first text was translated in {results[0].parts} parts; a map needs one sentence")
        raise RnnlabError("this model has no attention (it was trained with --attention none)")
    if args.attention_map:
        t = results[0]
        path = plot_attention(
            t.target_pieces, t.source_pieces, t.attention, args.attention_map, f"{sentences[0]}  ->  {t.text}"
        )
        print(f"wrote {path}")
    if args.attention_html:
        items = [
            (t.target_pieces, t.source_pieces, t.attention, f"{s}  \u2192  {t.text}")
            for s, t in zip(sentences, results)
            if t.attention is not None  # a text translated in parts has no single map
        ]
        print(f"wrote {write_attention_page(items, args.attention_html)}")
    return 0


def cmd_predict_kind(args) -> int:
    run = load(args.run, args.kind, use_device(args.device))
    for prediction in run.predict(getattr(args, args.inputs), beam=args.beam):
        print(run.task.format_prediction(prediction))
    return 0
