"""Commands of the character language model: train charlm, sample, explain, hello."""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.checkpoint import atomic_write
from rnnlab.cli.common import FMT, add_model_flags, add_train_flags, interrupted, pick, run_dir, train_config
from rnnlab.decoding import SamplingOptions
from rnnlab.errors import RnnlabError
from rnnlab.tasks import charlm
from rnnlab.tasks.hello import HelloResult, train_hello

DEFAULT_RUN = Path("runs/charlm")
DEFAULTS = charlm.CharLMOptions()


def add_train_parser(tasks) -> None:
    lm = tasks.add_parser(
        "charlm",
        formatter_class=FMT,
        help="character language model (the default task)",
        description="Train a character language model on a UTF-8 text (default: the bundled Tiny Shakespeare), "
        "save a checkpoint, print a sample and write the explorer page. `rnnlab train` alone runs this.",
    )
    m, d = DEFAULTS.model, DEFAULTS.data
    lm.add_argument("--text", metavar="FILE", help="UTF-8 text to train on (default: the bundled Tiny Shakespeare)")
    add_model_flags(lm, m.cell, m.hidden_size, m.num_layers, m.dropout)
    lm.add_argument("--embedding", type=int, metavar="N", help=f"character embedding size (default: {m.embedding_dim})")
    lm.add_argument("--seq-len", type=int, metavar="N", help=f"characters per BPTT chunk (default: {d.seq_len})")
    lm.add_argument("--batch-size", type=int, metavar="N", help=f"parallel streams per batch (default: {d.batch_size})")
    add_train_flags(lm, DEFAULTS.train, DEFAULT_RUN, f"default: {DEFAULTS.train.max_minutes:g} when no --max-steps is given")
    lm.add_argument("--sample-length", type=int, default=500, metavar="N", help="characters of sample to print at the end")
    lm.set_defaults(func=cmd_train)


def add_parsers(sub) -> None:
    sample = sub.add_parser("sample", formatter_class=FMT, help="stream text from a trained character model")
    sample.add_argument("run", metavar="RUN", help="checkpoint folder")
    sample.add_argument("--prime", default="", help="text to start from (it is printed first)")
    sample.add_argument("--temperature", type=float, default=0.8, metavar="T", help="softmax temperature; 0 is greedy")
    sample.add_argument("--top-k", type=int, metavar="K", help="sample only from the K likeliest characters")
    sample.add_argument(
        "--top-p", type=float, metavar="P", help="sample only from the smallest set of characters holding probability P"
    )
    sample.add_argument("--length", type=int, default=500, metavar="N", help="characters to generate")
    sample.add_argument("--seed", type=int, metavar="S", help="random seed for a repeatable sample")
    sample.set_defaults(func=cmd_sample)

    ex = sub.add_parser(
        "explain",
        formatter_class=FMT,
        help="write the hidden-cell explorer page for a character model",
        description="Trace a trained character model over a text and write a self-contained HTML page: the text "
        "coloured by any unit, units ranked by the text properties they track, gate saturation plots.",
    )
    ex.add_argument("run", metavar="RUN", help="checkpoint folder")
    ex.add_argument("--text", metavar="FILE", help="UTF-8 text to analyse (default: the run's validation text)")
    ex.add_argument("--out", metavar="DIR", type=Path, help="folder for explorer.html (default: RUN)")
    ex.add_argument("--chars", type=int, default=10_000, metavar="N", help="characters to analyse")
    ex.add_argument("--shown", type=int, default=2_000, metavar="N", help="characters shown on the page")
    ex.set_defaults(func=cmd_explain)

    hello = sub.add_parser("hello", formatter_class=FMT, help='the classic toy: learn "hell" -> "ello"')
    hello.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell")
    hello.add_argument("--hidden", type=int, default=8, metavar="N", help="hidden units")
    hello.add_argument("--steps", type=int, default=100, metavar="N", help="training steps")
    hello.add_argument("--seed", type=int, default=0, metavar="S", help="random seed")
    hello.set_defaults(func=cmd_hello)


def cmd_train(args) -> int:
    out = run_dir(args, DEFAULT_RUN, ["text", "cell", "hidden", "layers", "dropout", "embedding", "seq_len", "batch_size"])
    m, d = DEFAULTS.model, DEFAULTS.data
    options = charlm.CharLMOptions(
        model=charlm.ModelOptions(
            cell=pick(args.cell, m.cell),
            embedding_dim=pick(args.embedding, m.embedding_dim),
            hidden_size=pick(args.hidden, m.hidden_size),
            num_layers=pick(args.layers, m.num_layers),
            dropout=pick(args.dropout, m.dropout),
        ),
        data=charlm.DataConfig(
            text=args.text, seq_len=pick(args.seq_len, d.seq_len), batch_size=pick(args.batch_size, d.batch_size)
        ),
        train=train_config(args, DEFAULTS.train),
    )
    if args.sample_length < 0:
        raise RnnlabError(f"--sample-length must be >= 0, got {args.sample_length}")
    result, run = charlm.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "charlm")
    val = result.metrics.get("val_loss")
    summary = f"step {result.step}, {result.elapsed / 60:.1f} min"
    if val is not None:
        summary += f", validation {val:.4f} nats/char = {val / charlm.LN2:.4f} bits/char"
    print(f"saved {out} ({summary})")
    if args.sample_length:
        text = "".join(charlm.generate(run, "", args.sample_length, SamplingOptions(temperature=0.8), seed=0))
        atomic_write(Path(out) / "samples.txt", text.encode())
        print(f"--- sample (temperature 0.8) ---\n{text}\n---")
    write_explorer(run, charlm.validation_text(run), Path(out), 10_000, 2_000)
    print(f"next: rnnlab sample {out} --prime 'ROMEO:'  |  rnnlab eval {out} --text FILE  |  open {out}/explorer.html")
    return 0


def cmd_sample(args) -> int:
    import torch

    torch.set_num_threads(1)  # one token at a time: a second thread costs more than it helps (5.8k vs 5.3k tok/s)
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    run = charlm.load_run(args.run)
    stream = charlm.generate(run, args.prime, args.length, options, args.seed)
    sys.stdout.write(args.prime)
    for char in stream:
        sys.stdout.write(char)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def eval_text(run, text_file: str | None) -> int:
    from rnnlab.data.text import read_text

    text, name = (read_text(text_file), text_file) if text_file else (charlm.validation_text(run), "validation text")
    score = charlm.evaluate_text(run, text, name)
    print(
        f"{name}: {score.chars:,} characters scored, {score.nats_per_char:.4f} nats/char, "
        f"{score.bits_per_char:.4f} bits/char"
    )
    return 0


def write_explorer(run, text: str, out_dir: Path, chars: int, shown: int) -> Path:
    from rnnlab.viz.explorer import explain, write_page

    if chars < 2 or shown < 1:
        raise RnnlabError(f"--chars must be >= 2 and --shown >= 1, got {chars} and {shown}")
    explanation = explain(run, text[:chars], shown=shown)
    path = write_page(explanation, Path(out_dir) / "explorer.html")
    print(f"wrote {path}: {len(text[:chars]):,} characters analysed; the units that track the text best:")
    for prop in ("position in line", "inside quotes", "inside brackets", "all-caps line (speaker name)", "newline"):
        d = explanation.best(prop)
        if d is not None:
            print(f"  {prop:30} layer {d.layer} {d.name:8} unit {d.unit:4}  r = {d.r:+.2f}")
    return path


def cmd_explain(args) -> int:
    from rnnlab.data.text import read_text

    run = charlm.load_run(args.run)
    text = read_text(args.text) if args.text else charlm.validation_text(run)
    write_explorer(run, text, args.out or Path(args.run), args.chars, args.shown)
    return 0


def cmd_hello(args) -> int:
    if args.hidden < 1 or args.steps < 0:
        raise RnnlabError(f"--hidden must be positive and --steps >= 0, got {args.hidden} and {args.steps}")
    result = train_hello(args.cell, args.hidden, args.steps, seed=args.seed)
    article = {"rnn": "a vanilla RNN", "lstm": "an LSTM", "gru": "a GRU"}[args.cell]
    print(
        f'The classic toy: {article} with {args.hidden} hidden units learns to continue "hell" with "ello".\n'
        'The two "l" steps need different answers, so it must remember what came before.\n'
    )
    for title, steps in (("before training", result.before), (f"after {args.steps} steps of Adam", result.after)):
        print(f"{title}  (accuracy {HelloResult.accuracy(steps):.0%})")
        print("  input  target  predicted  p(target)")
        for s in steps:
            mark = "ok" if s.predicted == s.target else "  "
            print(f"  {s.input!r:>5}  {s.target!r:>6}  {s.predicted!r:>9}  {s.p_target:9.3f}  {mark}")
        print()
    if result.losses:
        print(f"loss {result.losses[0]:.3f} -> {result.losses[-1]:.4f} nats/char")
    return 0
