"""Commands of the encoder-decoder family: translation, captioning, CTC transcription."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rnnlab.cli.common import FMT, add_model_flags, add_train_flags, interrupted, run_dir, save_scores, train_config
from rnnlab.errors import RnnlabError
from rnnlab.tasks import caption, transcribe, translate

TRANSLATE = translate.TranslateOptions(translate.TranslateSource(folder="-"))
CAPTION = caption.CaptionOptions(folder="-")
TRANSCRIBE = transcribe.TranscribeOptions(folder="-")


def add_train_parsers(tasks) -> None:
    t = tasks.add_parser(
        "translate",
        formatter_class=FMT,
        help="translation (encoder-decoder with attention)",
        description="Train a translator on line-aligned text: a Multi30k-style folder (train/val/test_2016_flickr "
        ".LANG.gz) or explicit files. Prints test BLEU (sacrebleu) for greedy decoding and beam search.",
    )
    src = t.add_argument_group("data")
    src.add_argument("--multi30k", metavar="DIR", help="folder with {train,val,test_2016_flickr}.{LANG}.gz")
    src.add_argument("--src", metavar="LANG", help="source language (default: de)")
    src.add_argument("--tgt", metavar="LANG", help="target language (default: en)")
    src.add_argument("--train-files", nargs=2, metavar=("SRC", "TGT"), help="aligned training files")
    src.add_argument("--val-files", nargs=2, metavar=("SRC", "TGT"), help="aligned validation files")
    src.add_argument("--test-files", nargs=2, metavar=("SRC", "TGT"), help="aligned test files")
    o = TRANSLATE
    add_model_flags(t, o.cell, o.hidden_size, o.encoder_layers, o.dropout)
    t.add_argument(
        "--attention",
        choices=["additive", "dot", "general", "none"],
        help=f"attention, or none for a fixed context vector (default: {o.attention})",
    )
    t.add_argument("--embedding", type=int, metavar="N", help=f"embedding size (default: {o.embedding_dim})")
    t.add_argument("--vocab-size", type=int, metavar="N", help=f"subwords per language (default: {o.vocab_size})")
    t.add_argument(
        "--teacher-forcing",
        type=float,
        metavar="R",
        help=f"share of steps fed the true previous token (default: {o.teacher_forcing})",
    )
    t.add_argument(
        "--scheduled-sampling",
        type=float,
        metavar="P",
        help="ramp the share fed the model's own guess from 0 to P over training (default: off)",
    )
    t.add_argument("--beam", type=int, metavar="K", help=f"beam width for the test set (default: {o.beam})")
    t.add_argument("--batch-size", type=int, metavar="N", help=f"sentence pairs per batch (default: {o.batch_size})")
    add_train_flags(t, o.train, Path("runs/translate"), f"default: {o.train.max_minutes:g}")
    t.set_defaults(func=cmd_train_translate)

    c = tasks.add_parser(
        "caption",
        formatter_class=FMT,
        help="image captioning (one-to-many)",
        description="Train a captioner (a CNN from scratch, its features start an LSTM decoder) on images/ and "
        "captions.txt (CSV image,caption). Prints test BLEU-4 beside two non-learned baselines.",
    )
    c.add_argument("--folder", metavar="DIR", help="folder with images/ and captions.txt")
    add_model_flags(c, CAPTION.cell, CAPTION.hidden_size, 1, CAPTION.dropout)
    c.add_argument("--attention", choices=["none", "additive"], help="attend over image places (default: none)")
    c.add_argument("--batch-size", type=int, metavar="N", help=f"captions per batch (default: {CAPTION.batch_size})")
    add_train_flags(c, CAPTION.train, Path("runs/caption"), f"default: {CAPTION.train.max_minutes:g}")
    c.set_defaults(func=cmd_train_caption)

    s = tasks.add_parser(
        "transcribe",
        formatter_class=FMT,
        help="CTC transcription of spoken digit strings",
        description="Train a CTC model on digit strings joined from FSDD recordings, split by speaker. Prints "
        "the test speaker's character error rate for greedy and prefix-beam-search decoding.",
    )
    s.add_argument("--fsdd", metavar="DIR", help="folder of FSDD recordings digit_speaker_index.wav")
    add_model_flags(s, TRANSCRIBE.cell, TRANSCRIBE.hidden_size, TRANSCRIBE.num_layers, TRANSCRIBE.dropout)
    s.add_argument("--batch-size", type=int, metavar="N", help=f"utterances per batch (default: {TRANSCRIBE.batch_size})")
    add_train_flags(s, TRANSCRIBE.train, Path("runs/transcribe"), f"default: {TRANSCRIBE.train.max_minutes:g}")
    s.set_defaults(func=cmd_train_transcribe)


def add_parsers(sub) -> None:
    p = sub.add_parser("translate", formatter_class=FMT, help="translate sentences with a trained translator")
    p.add_argument("run", metavar="RUN", help="checkpoint folder")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
    p.add_argument("--file", metavar="FILE", help="a UTF-8 file of sentences, one per line")
    p.add_argument("--beam", type=int, metavar="K", help="beam width (default: the run's)")
    p.add_argument("--attention-map", type=Path, metavar="PNG", help="draw the attention weights of the first sentence")
    p.add_argument("--attention-html", type=Path, metavar="HTML", help="a page with the attention map of every sentence")
    p.set_defaults(func=cmd_translate)

    c = sub.add_parser("caption", formatter_class=FMT, help="caption images with a trained captioner")
    c.add_argument("run", metavar="RUN", help="checkpoint folder")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    c.add_argument("--beam", type=int, metavar="K", help="beam width (default: the run's)")
    c.set_defaults(func=cmd_caption)

    t = sub.add_parser("transcribe", formatter_class=FMT, help="transcribe recordings of spoken digits")
    t.add_argument("run", metavar="RUN", help="checkpoint folder")
    t.add_argument("wavs", nargs="+", metavar="WAV", help="audio files (resampled to 8 kHz if need be)")
    t.add_argument("--beam", type=int, metavar="K", help="prefix beam width, 1 for greedy (default: the run's)")
    t.set_defaults(func=cmd_transcribe)


NAMES = {
    "cell": "cell",
    "hidden": "hidden_size",
    "layers": "encoder_layers",
    "dropout": "dropout",
    "attention": "attention",
    "embedding": "embedding_dim",
    "vocab_size": "vocab_size",
    "teacher_forcing": "teacher_forcing",
    "scheduled_sampling": "scheduled_sampling",
    "beam": "beam",
    "batch_size": "batch_size",
}


def cmd_train_translate(args) -> int:
    source_flags = ["multi30k", "src", "tgt", "train_files", "val_files", "test_files"]
    out = run_dir(args, Path("runs/translate"), [*NAMES, *source_flags])
    if args.resume:
        options = replace(TRANSLATE, train=train_config(args, TRANSLATE.train))
    else:
        pairs = {k: tuple(getattr(args, f"{k}_files")) for k in ("train", "val", "test") if getattr(args, f"{k}_files")}
        source = translate.TranslateSource(
            folder=args.multi30k, src_lang=args.src or "de", tgt_lang=args.tgt or "en", **pairs
        )
        given = {f: getattr(args, a) for a, f in NAMES.items() if getattr(args, a) is not None}
        options = replace(TRANSLATE, source=source, **given, train=train_config(args, TRANSLATE.train))
    result, run, test = translate.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "translate")
    print(
        f"saved {out}: step {result.step}, {result.elapsed / 60:.1f} min, best validation BLEU (greedy) "
        f"{result.best_metrics.get('val_bleu_greedy', float('nan')):.2f} at step {result.best_step}"
    )
    if test:
        for name, s in test.items():
            print(f"test BLEU, {name}: {s['bleu']:.2f} ({s['sentences']} sentences in {s['seconds']:.1f} s)")
        print("examples (beam):")
        for line in test[f"beam {run.options.beam}"]["examples"]:
            print(f"  {line}")
        save_scores(out, test)
    return 0


def cmd_translate(args) -> int:
    from rnnlab.viz.attention import plot_attention, write_attention_page

    sentences = list(args.sentences)
    if args.file:
        from rnnlab.data.text import read_text

        sentences += [line for line in read_text(args.file).splitlines() if line.strip()]
    if not sentences:
        raise RnnlabError("give sentences to translate, as arguments or with --file FILE")
    run = translate.load_run(args.run)
    results = translate.translate(run, sentences, args.beam)
    for t in results:
        print(t.text)
    if (args.attention_map or args.attention_html) and results[0].attention is None:
        raise RnnlabError("this model has no attention (it was trained with --attention none)")
    if args.attention_map:
        if args.attention_map.suffix.lower() != ".png":
            raise RnnlabError(f"--attention-map needs a .png file name, got {args.attention_map}")
        t = results[0]
        path = plot_attention(
            t.target_pieces, t.source_pieces, t.attention, args.attention_map, f"{sentences[0]}  ->  {t.text}"
        )
        print(f"wrote {path}")
    if args.attention_html:
        items = [
            (t.target_pieces, t.source_pieces, t.attention, f"{s}  \u2192  {t.text}") for s, t in zip(sentences, results)
        ]
        print(f"wrote {write_attention_page(items, args.attention_html)}")
    return 0


def cmd_train_caption(args) -> int:
    names = {
        "cell": "cell",
        "hidden": "hidden_size",
        "dropout": "dropout",
        "attention": "attention",
        "batch_size": "batch_size",
    }
    out = run_dir(args, Path("runs/caption"), [*names, "folder", "layers"])
    if args.resume:
        options = replace(CAPTION, train=train_config(args, CAPTION.train))
    else:
        if not args.folder:
            raise RnnlabError("give the data: --folder DIR (images/ and captions.txt)")
        given = {f: getattr(args, a) for a, f in names.items() if getattr(args, a) is not None}
        options = replace(CAPTION, folder=args.folder, **given, train=train_config(args, CAPTION.train))
    result, run, test = caption.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "caption")
    print(
        f"saved {out}: step {result.step}, {result.elapsed / 60:.1f} min, best validation BLEU-4 "
        f"{result.best_metrics.get('val_bleu4_greedy', float('nan')):.2f} at step {result.best_step}"
    )
    if test:
        for name, value in test.items():
            if name != "examples":
                print(f"test BLEU-4, {name}: {value:.2f}")
        for image, text in test["examples"]:
            print(f"  {image}: {text}")
        save_scores(out, test)
    return 0


def cmd_caption(args) -> int:
    run = caption.load_run(args.run)
    for path, text in zip(args.images, caption.caption_files(run, args.images, args.beam)):
        print(f"{path}: {text}")
    return 0


def cmd_train_transcribe(args) -> int:
    names = {
        "cell": "cell",
        "hidden": "hidden_size",
        "layers": "num_layers",
        "dropout": "dropout",
        "batch_size": "batch_size",
    }
    out = run_dir(args, Path("runs/transcribe"), [*names, "fsdd"])
    if args.resume:
        options = replace(TRANSCRIBE, train=train_config(args, TRANSCRIBE.train))
    else:
        if not args.fsdd:
            raise RnnlabError("give the recordings: --fsdd DIR")
        given = {f: getattr(args, a) for a, f in names.items() if getattr(args, a) is not None}
        options = replace(TRANSCRIBE, folder=args.fsdd, **given, train=train_config(args, TRANSCRIBE.train))
    result, run, test = transcribe.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "transcribe")
    print(
        f"saved {out}: step {result.step}, {result.elapsed / 60:.1f} min, best validation CER "
        f"{100 * result.best_metrics.get('val_cer', float('nan')):.2f}% at step {result.best_step}"
    )
    if test:
        print(
            f"test speaker: CER greedy {100 * test['cer_greedy']:.2f}%, prefix beam {100 * test['cer_beam']:.2f}%; "
            f"whole strings right: greedy {100 * test['exact_greedy']:.1f}%, beam {100 * test['exact_beam']:.1f}%"
        )
        save_scores(out, test)
    return 0


def cmd_transcribe(args) -> int:
    run = transcribe.load_run(args.run)
    for path, text in zip(args.wavs, transcribe.transcribe_files(run, args.wavs, args.beam)):
        print(f"{path}: {text}")
    return 0
