"""Training curves: loss and validation loss, gradient norm before clipping, learning rate -> PNG."""

from __future__ import annotations

import math
from pathlib import Path

from rnnlab.viz.figures import figure, save_png


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Draw the rows of a run's metrics.csv (as the Trainer writes them) into a PNG (None if no row is finite)."""
    fig = curves_figure(rows, title)
    return None if fig is None else save_png(fig, path)


def curves_figure(rows: list[dict], title: str = ""):
    """The figure of ``plot_curves`` (a matplotlib Figure; None if no row is finite)."""
    finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731  (skipped steps log NaN)
    rows = [r for r in rows if finite(r.get("loss")) and finite(r.get("grad_norm"))]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    evals = [r for r in rows if finite(r.get("val_loss"))]
    fig = figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    ax.plot(steps, [r["loss"] for r in rows], lw=0.6, alpha=0.5, label="training batch")
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label="validation")
        best = min(evals, key=lambda r: r["val_loss"])
        ax.set_title(f"loss (best validation {best['val_loss']:.3f} at step {best['step']})", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.set_ylim(top=min(max(r["loss"] for r in rows), 2 * min(r["loss"] for r in rows) + 1))
    ax.legend()
    ax = axes[1]
    ax.semilogy(steps, [r["grad_norm"] for r in rows], lw=0.6)
    ax.set_title("gradient norm before clipping", fontsize=10)
    ax.set_xlabel("step")
    ax = axes[2]
    ax.plot(steps, [r["lr"] for r in rows])
    ax.set_title("learning rate", fontsize=10)
    ax.set_xlabel("step")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
