"""The command line: parses arguments and calls library functions, nothing more.

    rnnlab train [options]          train the character model (the bundled corpus by default)
    rnnlab sample RUN [options]     stream text from a trained model
    rnnlab eval RUN --text FILE     nats and bits per character on any UTF-8 file
    rnnlab explain RUN              write the hidden-cell explorer page for a trained model
    rnnlab hello                    the classic "hello" toy, predictions before and after training

Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields
from pathlib import Path

from rnnlab.checkpoint import atomic_write, is_checkpoint
from rnnlab.decoding import SamplingOptions
from rnnlab.errors import RnnlabError
from rnnlab.tasks import charlm
from rnnlab.tasks.hello import HelloResult, train_hello
from rnnlab.train import TrainConfig

DEFAULT_RUN = Path("runs/charlm")
DEFAULT_MINUTES = 5.0
TRAIN_TASKS = ("charlm",)
EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (and exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


def build_parser() -> Parser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = Parser(prog="rnnlab", description="Recurrent neural networks: train, sample, evaluate, look inside.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser(
        "train",
        help="train a model (the character language model by default)",
        description="Train a model. With no task named, trains the character language model.",
    )
    tasks = train.add_subparsers(dest="task", required=True, parser_class=Parser)
    lm = tasks.add_parser(
        "charlm",
        formatter_class=fmt,
        help="character language model (the default)",
        description="Train a character language model on a UTF-8 text, save a checkpoint, "
        "print a sample. Without --text it uses the bundled Tiny Shakespeare.",
    )
    m, d, t = _defaults(charlm.ModelOptions), _defaults(charlm.DataConfig), _defaults(TrainConfig)
    # model and training flags default to None so that --resume can tell what was given
    lm.add_argument("--text", metavar="FILE", help="UTF-8 text to train on (default: the bundled Tiny Shakespeare)")
    lm.add_argument("--cell", choices=["lstm", "gru", "rnn"], help=f"recurrent cell (default: {m['cell']})")
    lm.add_argument("--hidden", type=int, metavar="N", help=f"hidden units per layer (default: {m['hidden_size']})")
    lm.add_argument("--layers", type=int, metavar="N", help=f"recurrent layers (default: {m['num_layers']})")
    lm.add_argument(
        "--embedding", type=int, metavar="N", help=f"character embedding size (default: {m['embedding_dim']})"
    )
    lm.add_argument("--dropout", type=float, metavar="P", help=f"dropout probability (default: {m['dropout']})")
    lm.add_argument("--seq-len", type=int, metavar="N", help=f"characters per BPTT chunk (default: {d['seq_len']})")
    lm.add_argument(
        "--batch-size", type=int, metavar="N", help=f"parallel streams per batch (default: {d['batch_size']})"
    )
    lm.add_argument("--lr", type=float, metavar="X", help=f"peak learning rate (default: {t['lr']})")
    lm.add_argument(
        "--weight-decay", type=float, metavar="X", help=f"AdamW weight decay (default: {t['weight_decay']})"
    )
    lm.add_argument("--warmup", type=int, metavar="N", help=f"warm-up steps (default: {t['warmup_steps']})")
    lm.add_argument(
        "--clip", type=float, metavar="X", help=f"gradient norm clip, 0 for none (default: {t['clip_norm']})"
    )
    lm.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help=f"time budget in minutes (default: {DEFAULT_MINUTES:g} when no --max-steps is given)",
    )
    lm.add_argument("--max-steps", type=int, metavar="S", help="step budget (default: none)")
    lm.add_argument(
        "--eval-every", type=int, metavar="N", help=f"evaluate and save every N steps (default: {t['eval_every']})"
    )
    lm.add_argument("--seed", type=int, metavar="S", help=f"random seed (default: {t['seed']})")
    lm.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help=f"run folder for the checkpoint (default: {DEFAULT_RUN}, or {DEFAULT_RUN}-2... if taken)",
    )
    lm.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    lm.add_argument(
        "--sample-length", type=int, default=500, metavar="N", help="characters of sample to print at the end"
    )
    lm.add_argument("--quiet", action="store_true", help="no progress bar")
    lm.set_defaults(func=cmd_train_charlm)

    sample = sub.add_parser("sample", formatter_class=fmt, help="stream text from a trained character model")
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

    ev = sub.add_parser("eval", formatter_class=fmt, help="nats and bits per character of a model on a text file")
    ev.add_argument("run", metavar="RUN", help="checkpoint folder")
    ev.add_argument("--text", metavar="FILE", required=True, help="UTF-8 text file to score")
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser(
        "explain",
        formatter_class=fmt,
        help="write the hidden-cell explorer page for a character model",
        description="Trace a trained character model over a text and write a self-contained HTML "
        "page: the text coloured by any unit, units ranked by the text properties they "
        "track, gate saturation plots.",
    )
    ex.add_argument("run", metavar="RUN", help="checkpoint folder")
    ex.add_argument("--text", metavar="FILE", help="UTF-8 text to analyse (default: the run's validation text)")
    ex.add_argument("--out", metavar="DIR", type=Path, help="folder for explorer.html (default: RUN)")
    ex.add_argument("--chars", type=int, default=10_000, metavar="N", help="characters to analyse")
    ex.add_argument("--shown", type=int, default=2_000, metavar="N", help="characters shown on the page")
    ex.set_defaults(func=cmd_explain)

    hello = sub.add_parser("hello", formatter_class=fmt, help='the classic toy: learn "hell" -> "ello"')
    hello.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell")
    hello.add_argument("--hidden", type=int, default=8, metavar="N", help="hidden units")
    hello.add_argument("--steps", type=int, default=100, metavar="N", help="training steps")
    hello.add_argument("--seed", type=int, default=0, metavar="S", help="random seed")
    hello.set_defaults(func=cmd_hello)
    return parser


def _with_default_task(argv: list[str]) -> list[str]:
    """``rnnlab train [flags]`` means ``rnnlab train charlm [flags]``."""
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in TRAIN_TASKS):
        return ["train", "charlm", *argv[1:]]
    return argv


# ---------------------------------------------------------------------- commands


def _pick(value, default):
    return default if value is None else value


def cmd_train_charlm(args) -> int:
    model_flags = (
        "cell",
        "hidden",
        "layers",
        "embedding",
        "dropout",
        "seq_len",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup",
        "clip",
        "eval_every",
        "seed",
        "text",
    )
    out = args.out
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in model_flags if getattr(args, f) is not None]
        if given:
            raise RnnlabError(f"{', '.join(given)} cannot change when resuming: the run's saved settings are used")
        out = out or DEFAULT_RUN
    elif out is None:
        out = _free_run_dir(DEFAULT_RUN)
    m, d, t = _defaults(charlm.ModelOptions), _defaults(charlm.DataConfig), _defaults(TrainConfig)
    max_minutes = args.max_minutes
    if max_minutes is None and args.max_steps is None:
        max_minutes = DEFAULT_MINUTES
    options = charlm.CharLMOptions(
        model=charlm.ModelOptions(
            cell=_pick(args.cell, m["cell"]),
            embedding_dim=_pick(args.embedding, m["embedding_dim"]),
            hidden_size=_pick(args.hidden, m["hidden_size"]),
            num_layers=_pick(args.layers, m["num_layers"]),
            dropout=_pick(args.dropout, m["dropout"]),
        ),
        data=charlm.DataConfig(
            text=args.text,
            seq_len=_pick(args.seq_len, d["seq_len"]),
            batch_size=_pick(args.batch_size, d["batch_size"]),
        ),
        train=TrainConfig(
            lr=_pick(args.lr, t["lr"]),
            weight_decay=_pick(args.weight_decay, t["weight_decay"]),
            warmup_steps=_pick(args.warmup, t["warmup_steps"]),
            clip_norm=_pick(args.clip, t["clip_norm"]),
            max_steps=args.max_steps,
            max_minutes=max_minutes,
            eval_every=_pick(args.eval_every, t["eval_every"]),
            seed=_pick(args.seed, t["seed"]),
        ),
    )
    if args.sample_length < 0:
        raise RnnlabError(f"--sample-length must be >= 0, got {args.sample_length}")
    result, run = charlm.train(options, out, resume=args.resume, progress=not args.quiet)
    val = result.metrics.get("val_loss")
    summary = f"step {result.step}, {result.elapsed / 60:.1f} min"
    if val is not None:
        summary += f", validation {val:.4f} nats/char = {val / charlm.LN2:.4f} bits/char"
    if result.interrupted is not None:
        print(
            f"rnnlab: stopped by signal {result.interrupted}; saved {out} ({summary}); "
            f"continue with: rnnlab train --out {out} --resume",
            file=sys.stderr,
        )
        return 128 + result.interrupted
    print(f"saved {out} ({summary})")
    if args.sample_length:
        text = "".join(charlm.generate(run, "", args.sample_length, SamplingOptions(temperature=0.8), seed=0))
        atomic_write(Path(out) / "samples.txt", text.encode())
        print(f"--- sample (temperature 0.8) ---\n{text}\n---")
    write_explorer(run, charlm.validation_text(run), Path(out), 10_000, 2_000)
    print(
        f"next: rnnlab sample {out} --prime 'ROMEO:'   |   rnnlab eval {out} --text FILE   |   open {out}/explorer.html"
    )
    return 0


def _free_run_dir(base: Path) -> Path:
    if not is_checkpoint(base):
        return base
    n = 2
    while is_checkpoint(base.with_name(f"{base.name}-{n}")):
        n += 1
    return base.with_name(f"{base.name}-{n}")


def cmd_sample(args) -> int:
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    run = charlm.load_run(args.run)
    stream = charlm.generate(run, args.prime, args.length, options, args.seed)
    sys.stdout.write(args.prime)
    for char in stream:
        sys.stdout.write(char)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_eval(args) -> int:
    from rnnlab.data.text import read_text

    run = charlm.load_run(args.run)
    score = charlm.evaluate_text(run, read_text(args.text), args.text)
    print(
        f"{args.text}: {score.chars:,} characters scored, {score.nats_per_char:.4f} nats/char, "
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
        f'The classic toy: {article} with {args.hidden} hidden units learns to continue "hell" '
        'with "ello".\nThe two "l" steps need different answers, so it must remember what came before.\n'
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


def main(argv: list[str] | None = None) -> int:
    argv = _with_default_task(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnlabError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # e.g. `rnnlab sample RUN | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
