"""Commands that look inside recurrent networks: gradients, experiment memory, experiment exposure."""

from __future__ import annotations

from pathlib import Path

from rnnlab.checkpoint import atomic_write
from rnnlab.cli.common import FMT, Parser


def add_parsers(sub) -> None:
    gr = sub.add_parser(
        "gradients",
        formatter_class=FMT,
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
        formatter_class=FMT,
        help="memory span of RNN, LSTM and GRU",
        description="Train RNN, LSTM and GRU (equal parameter counts) to recall a symbol after a lag of random "
        "distractors; accuracy per lag, table and PNG.",
    )
    mem.add_argument("--lags", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200], metavar="L", help="lags")
    mem.add_argument("--steps", type=int, default=1000, metavar="N", help="training steps per cell and lag")
    mem.add_argument("--hidden", type=int, default=64, metavar="N", help="LSTM hidden size; the others match its parameters")
    mem.add_argument("--out", type=Path, default=Path("runs/memory"), metavar="DIR", help="folder for the plot and table")
    mem.set_defaults(func=cmd_memory)

    xp = experiments.add_parser(
        "exposure",
        formatter_class=FMT,
        help="teacher forcing vs scheduled sampling",
        description="Train the same character model with teacher forcing and with scheduled sampling; score "
        "free-running samples by the other model and by n-gram statistics of the corpus.",
    )
    xp.add_argument("--steps", type=int, default=600, metavar="N", help="training steps per model")
    xp.add_argument("--hidden", type=int, default=256, metavar="N", help="LSTM hidden units")
    xp.add_argument("--max-p", type=float, default=0.25, metavar="P", help="final probability of reading own samples")
    xp.add_argument("--out", type=Path, default=Path("runs/exposure"), metavar="DIR", help="folder for the table")
    xp.set_defaults(func=cmd_exposure)


def cmd_gradients(args) -> int:
    from rnnlab.tasks import gradients

    report = gradients.gradient_flow(args.cell, args.steps, args.hidden, args.train_steps, run=args.run)
    paths = gradients.plot(report, args.out)
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
    from rnnlab.tasks import memory

    def show(r):
        print(
            f"  {r.cell:20} H {r.hidden:3} lag {r.lag:4}: accuracy {100 * r.accuracy:5.1f}%  ({r.seconds:.0f} s)",
            flush=True,
        )

    results = memory.memory_experiment(args.lags, lstm_hidden=args.hidden, steps=args.steps, on_result=show)
    text = memory.table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "memory.md", (text + "\n").encode())
    path = memory.plot(results, args.out / "memory.png")
    print(text)
    print(f"wrote {path} and {args.out / 'memory.md'}")
    return 0


def cmd_exposure(args) -> int:
    from rnnlab.tasks import exposure

    reports = exposure.exposure_experiment(args.steps, args.hidden, args.max_p)
    text = exposure.table(reports)
    samples = "\n\n".join(f"{r.name}:\n{r.sample}" for r in reports)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "exposure.md", (text + "\n\nSamples (temperature 1):\n\n" + samples + "\n").encode())
    print(text)
    print(f"wrote {args.out / 'exposure.md'}")
    return 0
