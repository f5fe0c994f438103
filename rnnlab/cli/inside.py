"""Commands that run the experiments (``rnnlab.experiments``): hello, gradients, experiment memory / truncation /
exposure."""

from __future__ import annotations

from pathlib import Path

from rnnlab.cli.common import Parser
from rnnlab.errors import RnnlabError
from rnnlab.io import atomic_write

SUCCESSORS = ("rnn", "lstm", "gru", "mingru", "conv", "transformer")  # rnnlab.experiments.successors.MODELS


def add_parsers(sub) -> None:
    hello = sub.add_parser("hello", help='the classic toy: learn "hell" -> "ello"')
    hello.add_argument(
        "--textbook",
        action="store_true",
        help="the lecture's slide: one-hot [h, e, l, o], 3 hidden units, every h_t and y_t printed",
    )
    hello.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell")
    hello.add_argument("--hidden", type=int, default=None, metavar="N", help="hidden units (8; the textbook's 3)")
    hello.add_argument("--steps", type=int, default=None, metavar="N", help="training steps (100; the textbook's 200)")
    hello.add_argument("--seed", type=int, default=0, metavar="S", help="random seed")
    hello.set_defaults(func=cmd_hello)

    gr = sub.add_parser(
        "gradients",
        help="measure gradient flow through time",
        description="Measure ||dL/ds_t|| over a sequence for untrained and trained models and for vanilla RNNs with "
        "W_hh rescaled to several spectral radii; fit the rate per step; show what clipping does to an "
        "exploding run. Writes PNG plots.",
    )
    gr.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm", help="cell to measure untrained and trained")
    gr.add_argument("--steps", type=int, default=100, metavar="T", help="sequence length")
    gr.add_argument("--hidden", type=int, default=128, metavar="N", help="hidden units")
    gr.add_argument("--train-steps", type=int, default=300, metavar="N", help="training steps for the trained models")
    gr.add_argument("--run", metavar="RUN", help="also measure this trained character model (of the bundled corpus)")
    gr.add_argument("--out", type=Path, default=Path("runs/gradients"), metavar="DIR", help="folder for the plots")
    gr.set_defaults(func=cmd_gradients)

    exp = sub.add_parser("experiment", help="classic claims about RNNs, measured")
    experiments = exp.add_subparsers(dest="experiment", required=True, parser_class=Parser)
    mem = experiments.add_parser(
        "memory",
        help="memory span of RNN, LSTM and GRU",
        description="Train RNN, LSTM and GRU (equal parameter counts) to recall a symbol after a lag of random "
        "distractors; accuracy per lag, table and PNG.",
    )
    mem.add_argument("--lags", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200], metavar="L", help="lags")
    mem.add_argument("--steps", type=int, default=1000, metavar="N", help="training steps per cell and lag")
    mem.add_argument("--hidden", type=int, default=64, metavar="N", help="LSTM hidden size; the others match its parameters")
    mem.add_argument("--out", type=Path, default=Path("runs/memory"), metavar="DIR", help="folder for the plot and table")
    mem.set_defaults(func=cmd_memory)

    tr = experiments.add_parser(
        "truncation",
        help="how far back truncated BPTT teaches a dependency",
        description="Train LSTM and GRU on a stream of episodes (a signal symbol, L - 1 distractors, a query "
        "whose answer is the signal) with truncated BPTT in chunks of k steps (state carried); score every "
        "query untruncated. Then the character model at equal wall time for several k. Table and PNG.",
    )
    tr.add_argument("--chunks", type=int, nargs="+", default=[10, 25, 50, 100, 200], metavar="K", help="truncation lengths")
    tr.add_argument("--lags", type=int, nargs="+", default=[5, 10, 20, 40, 80, 160], metavar="L", help="lags")
    tr.add_argument("--cells", nargs="+", choices=["rnn", "lstm", "gru"], default=["lstm", "gru"], help="cells")
    tr.add_argument("--steps", type=int, default=600, metavar="N", help="training chunks (steps) per run, batch 64")
    tr.add_argument("--charlm-chunks", type=int, nargs="*", default=[16, 64, 256], metavar="K",
                    help="truncation lengths for the character model (none to skip it)")  # fmt: skip
    tr.add_argument("--charlm-minutes", type=float, default=2.0, metavar="M", help="minutes per character model")
    tr.add_argument("--out", type=Path, default=Path("runs/truncation"), metavar="DIR", help="folder for the plot and table")
    tr.set_defaults(func=cmd_truncation)

    su = experiments.add_parser(
        "successors",
        help="RNN, LSTM, GRU, minGRU against a causal CNN and a transformer",
        description="Train the vanilla RNN, LSTM, GRU, minGRU, a causal dilated convolution network and a small "
        "causal transformer on the bundled corpus at equal parameters and equal wall time; validation loss "
        "against time, training tokens/s, and step time as the window grows from 64 to 1,024. Tables and PNG.",
    )
    su.add_argument("--models", nargs="+", choices=list(SUCCESSORS), default=list(SUCCESSORS), help="models to train")
    su.add_argument("--params", type=int, default=800_000, metavar="N", help="parameters of every model")
    su.add_argument("--minutes", type=float, default=10.0, metavar="M", help="training minutes per model")
    su.add_argument(
        "--out", type=Path, default=Path("runs/successors"), metavar="DIR", help="folder for the plot and tables"
    )
    su.set_defaults(func=cmd_successors)

    xp = experiments.add_parser(
        "exposure",
        help="teacher forcing vs scheduled sampling",
        description="Train the same character model with teacher forcing and with scheduled sampling; score "
        "free-running samples by the other model and by n-gram statistics of the corpus.",
    )
    xp.add_argument("--steps", type=int, default=600, metavar="N", help="training steps per model")
    xp.add_argument("--hidden", type=int, default=256, metavar="N", help="LSTM hidden units")
    xp.add_argument("--max-p", type=float, default=0.25, metavar="P", help="final probability of reading own samples")
    xp.add_argument("--out", type=Path, default=Path("runs/exposure"), metavar="DIR", help="folder for the table")
    xp.set_defaults(func=cmd_exposure)


def cmd_hello(args) -> int:
    from rnnlab.experiments.hello import HelloResult, train_hello

    if args.textbook:
        return _textbook(args)
    args.hidden = 8 if args.hidden is None else args.hidden
    args.steps = 100 if args.steps is None else args.steps
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


def _textbook(args) -> int:
    from rnnlab.experiments.hello import TEXTBOOK_VOCAB, TextbookResult, train_textbook

    if args.cell != "rnn":
        raise RnnlabError("--textbook is the slide's vanilla RNN: leave out --cell")
    hidden = 3 if args.hidden is None else args.hidden
    steps = 200 if args.steps is None else args.steps
    if hidden < 1 or steps < 0:
        raise RnnlabError(f"--hidden must be positive and --steps >= 0, got {hidden} and {steps}")
    result = train_textbook(steps, seed=args.seed, hidden_size=hidden)
    print(
        f"The lecture's slide: vocabulary [h, e, l, o], each character a one-hot x_t, {hidden} hidden units.\n"
        "  h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)     y_t = W_hy h_t + b_y   (a score for each of h, e, l, o)\n"
    )
    width = 7 * hidden - 1  # "+0.123" per unit
    scores = "  ".join(f"{'y(' + c + ')':>5}" for c in TEXTBOOK_VOCAB)
    for title, trace in (("before training", result.before), (f"after {steps} steps of Adam", result.after)):
        print(f"{title}  (accuracy {TextbookResult.accuracy(trace):.0%})")
        print(f"  x_t  target   {'h_t':<{width}}   {scores}   predicted")
        for s in trace:
            h = " ".join(f"{v:+.3f}" for v in s.h)
            y = "  ".join(f"{v:+5.2f}" for v in s.y)
            mark = "ok" if s.predicted == s.target else ""
            print(f"  {s.input!r:>3}  {s.target!r:>6}   {h}   {y}   {s.predicted!r:>9}  {mark}".rstrip())
        print()
    if result.losses:
        print(f"loss {result.losses[0]:.3f} -> {result.losses[-1]:.4f} nats/char")
    return 0


def _out_folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise RnnlabError(f"--out {path}: is a file; expected a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cmd_gradients(args) -> int:
    from rnnlab.experiments import gradients
    from rnnlab.viz.gradients import plot_gradients

    out = _out_folder(args.out)
    report = gradients.gradient_flow(args.cell, args.steps, args.hidden, args.train_steps, run=args.run)
    paths = plot_gradients(report, out)
    print(f"||dL/ds_t|| over T = {args.steps} steps of real text (s_t = h_t, and c_t for an LSTM), L reading h_T-1")
    print(
        f"  {'model':34} {'radius(W_hh)':>12} {'sigma_max':>9} {'rate/step':>10} {'fit over':>9} "
        f"{'||dL/ds_0|| / ||dL/ds_T-1||':>28}"
    )
    for c in report.curves:
        radius = f"{c.radius:.3f}" if c.radius is not None else "-"
        ratio = c.norms[0] / c.norms[-1]
        print(f"  {c.label:34} {radius:>12} {c.sigma_max:9.3f} {c.fit.rate:10.4f} {c.fit.steps:6d} st {ratio:28.3g}")
    print("clipping: a vanilla RNN started at radius 1.5, plain SGD lr 0.5, 150 steps:")
    for label in dict.fromkeys(r.label for r in report.clipping):
        runs = [r for r in report.clipping if r.label == label]
        finals = ", ".join(f"{r.losses[-1]:.2f}" for r in runs)
        peaks = ", ".join(f"{max(r.losses[10:]):.2f}" for r in runs)
        print(
            f"  {label:12} loss above its start in {sum(r.blew_up for r in runs)} of {len(runs)} runs; "
            f"highest loss after step 10: {peaks}; final loss: {finals}; "
            f"largest gradient norm {max(max(r.norms) for r in runs):.3g}"
        )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_memory(args) -> int:
    from rnnlab.experiments import memory
    from rnnlab.viz.memory import plot_memory

    def show(r):
        print(
            f"  {r.cell:20} H {r.hidden:3} lag {r.lag:4}: accuracy {100 * r.accuracy:5.1f}%  ({r.seconds:.0f} s)",
            flush=True,
        )

    out = _out_folder(args.out)
    results = memory.memory_experiment(args.lags, lstm_hidden=args.hidden, steps=args.steps, on_result=show)
    text = memory.table(results)
    atomic_write(out / "memory.md", (text + "\n").encode())
    path = plot_memory(results, out / "memory.png", chance=1 / memory.SIGNALS)
    print(text)
    print(f"wrote {path} and {out / 'memory.md'}")
    return 0


def cmd_truncation(args) -> int:
    from rnnlab.experiments import truncation
    from rnnlab.viz.truncation import plot_truncation

    if args.charlm_minutes <= 0:
        raise RnnlabError(f"--charlm-minutes must be positive, got {args.charlm_minutes}")

    def show(r):
        print(f"  {r.cell:5} k {r.chunk:4} L {r.lag:4}: accuracy {100 * r.accuracy:5.1f}%  ({r.seconds:.0f} s)", flush=True)

    out = _out_folder(args.out)
    results = truncation.truncation_experiment(args.cells, args.chunks, args.lags, args.steps, on_result=show)
    text = truncation.table(results)
    print(text)
    chars = []
    for chunk in args.charlm_chunks:
        chars.append(truncation.charlm_at_chunk(chunk, args.charlm_minutes, hidden=256, seed=0))
        print(f"  character model, k {chunk}: {chars[-1].val_loss:.4f} nats/char after {chars[-1].steps} steps", flush=True)
    if chars:
        text += "\n\nCharacter model (LSTM 256, Tiny Shakespeare), equal wall time:\n\n" + truncation.charlm_table(chars)
        print(truncation.charlm_table(chars))
    atomic_write(out / "truncation.md", (text + "\n").encode())
    path = plot_truncation(results, out / "truncation.png", chance=1 / truncation.SIGNALS)
    print(f"wrote {path} and {out / 'truncation.md'}")
    return 0


def cmd_successors(args) -> int:
    from rnnlab.experiments import successors
    from rnnlab.viz.successors import plot_successors

    if args.params < 10_000 or not 0 < args.minutes < 24 * 60:
        raise RnnlabError(f"--params must be at least 10,000 and --minutes in (0, 1440); got {args.params}, {args.minutes}")

    def show(r):
        final = r.curve[-1][1] if r.curve else float("nan")
        print(
            f"  {r.name:11} {r.size:14} {r.params:>9,} params  {r.steps:>6,} steps  "
            f"{r.tokens_per_second:>8,.0f} tok/s  validation {final:.4f}",
            flush=True,
        )

    out = _out_folder(args.out)
    results = successors.successors_experiment(args.models, args.params, args.minutes, on_result=show)
    marks = [m for m in (2, 5, 10) if m < args.minutes] + [args.minutes]
    text = successors.table(results, marks)
    text += "\n\nOne training step (forward + backward, batch 16) as the window grows:\n\n" + successors.length_table(
        results
    )
    print(text)
    atomic_write(out / "successors.md", (text + "\n").encode())
    path = plot_successors(results, out / "successors.png")
    print(f"wrote {path} and {out / 'successors.md'}")
    return 0


def cmd_exposure(args) -> int:
    from rnnlab.experiments import exposure

    out = _out_folder(args.out)
    reports = exposure.exposure_experiment(args.steps, args.hidden, args.max_p)
    text = exposure.table(reports)
    samples = "\n\n".join(f"{r.name}:\n{r.sample}" for r in reports)
    atomic_write(out / "exposure.md", (text + "\n\nSamples (temperature 1):\n\n" + samples + "\n").encode())
    print(text)
    print(f"wrote {out / 'exposure.md'}")
    return 0
