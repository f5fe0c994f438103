"""The gradient experiment's plots: ||dL/ds_t|| against steps back, and clipped against unclipped runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.viz.figures import figure, save_png


def plot_gradients(report, out_dir: Path) -> list[Path]:
    """``report``: rnnlab.experiments.gradients.GradientReport -> gradient_flow.png and clipping.png."""
    fig = figure(figsize=(8, 5))
    ax = fig.subplots()
    for c in report.curves:
        back = c.norms[::-1]
        style = "--" if "radius" in c.label else "-"
        ax.semilogy(np.arange(len(back)), back, style, label=f"{c.label}  (x{c.fit.rate:.3g}/step)")
    ax.set_xlabel("steps back from the loss (T-1-t)")
    ax.set_ylabel("||dL/ds_t||  (s = h, and c for an LSTM)")
    ax.set_title(f"Gradient flow through time, T = {report.steps}, real text")
    ax.legend(fontsize=8)
    paths = [save_png(fig, Path(out_dir) / "gradient_flow.png")]
    fig = figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    colours = {}
    for run in report.clipping:
        first = run.label not in colours
        colour = colours.setdefault(run.label, f"C{len(colours)}")
        label = run.label if first else None
        axes[0].semilogy(run.norms, color=colour, alpha=0.6, lw=0.8, label=label)
        axes[1].plot(run.losses, color=colour, alpha=0.6, lw=0.8, label=label)
    axes[0].set_title("gradient norm before clipping")
    axes[1].set_title("training loss (nats/char)")
    for ax in axes:
        ax.set_xlabel("SGD step")
        ax.legend()
    seeds = len({r.seed for r in report.clipping})
    fig.suptitle(f"Vanilla RNN started at W_hh radius 1.5, SGD lr 0.5, {seeds} seeds each")
    paths.append(save_png(fig, Path(out_dir) / "clipping.png"))
    return paths
