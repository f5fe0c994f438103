"""The truncation experiment's plot: accuracy against the lag L, one panel per cell, one line per
truncation length k (its k marked as a dotted line of the same colour)."""

from __future__ import annotations

from pathlib import Path

from rnnlab.viz.figures import figure, save_png


def plot_truncation(results: list, path: Path, chance: float) -> Path:
    """``results``: rnnlab.experiments.truncation.DelayResult rows."""
    cells = list(dict.fromkeys(r.cell for r in results))
    fig = figure(figsize=(5 * len(cells), 4))
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    for ax, cell in zip(axes, cells):
        for n, chunk in enumerate(sorted({r.chunk for r in results if r.cell == cell})):
            rows = sorted((r for r in results if r.cell == cell and r.chunk == chunk), key=lambda r: r.lag)
            colour = f"C{n}"
            ax.plot([r.lag for r in rows], [100 * r.accuracy for r in rows], "o-", color=colour, label=f"k = {chunk}")
            ax.axvline(chunk, color=colour, ls=":", lw=1)
        ax.axhline(100 * chance, color="gray", ls="--", label="chance")
        ax.set_xscale("log")
        ax.set_ylim(0, 102)
        ax.set_xlabel("lag L: steps from the signal to the query")
        ax.set_ylabel("accuracy, untruncated evaluation (%)")
        ax.set_title(f"{cell}: truncated BPTT with chunks of k steps")
        ax.legend(fontsize=8)
    return save_png(fig, path)
