"""The successors experiment's plot: validation loss against wall time, one line per model; and the
time of one training step against the window length (log-log)."""

from __future__ import annotations

from pathlib import Path

from rnnlab.viz.figures import figure, save_png


def plot_successors(results: list, path: Path) -> Path:
    """``results``: rnnlab.experiments.successors.Trained rows."""
    fig = figure(figsize=(11, 4))
    curves, lengths = fig.subplots(1, 2)
    for n, r in enumerate(results):
        colour = f"C{n}"
        minutes, losses = zip(*r.curve) if r.curve else ((), ())
        curves.plot(minutes, losses, "-", color=colour, label=f"{r.name} ({r.size})")
        steps = sorted(r.step_seconds)
        lengths.plot(steps, [1000 * r.step_seconds[t] for t in steps], "o-", color=colour, label=r.name)
    curves.set_xlabel("minutes of training (this CPU)")
    curves.set_ylabel("validation loss (nats/char)")
    curves.set_ylim(top=min(3.0, curves.get_ylim()[1]))
    curves.set_title(f"equal parameters (about {round(results[0].params, -4):,}) and equal wall time")
    curves.legend(fontsize=8)
    lengths.set_xscale("log", base=2)
    lengths.set_yscale("log")
    lengths.set_xlabel("window length T (characters)")
    lengths.set_ylabel("one training step, batch 16 (ms)")
    lengths.set_title("step time as the window grows")
    lengths.legend(fontsize=8)
    return save_png(fig, path)
