"""The memory experiment's plot: accuracy against the lag, one line per cell."""

from __future__ import annotations

from pathlib import Path

from rnnlab.viz.figures import figure, save_png


def plot_memory(results: list, path: Path, chance: float) -> Path:
    """``results``: rnnlab.experiments.memory.Result rows; ``chance`` the accuracy of guessing."""
    fig = figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for cell in dict.fromkeys(r.cell for r in results):
        rows = sorted((r for r in results if r.cell == cell), key=lambda r: r.lag)
        ax.plot(
            [r.lag for r in rows],
            [100 * r.accuracy for r in rows],
            "o-",
            label=f"{cell} (H {rows[0].hidden}, {rows[0].params:,} params)",
        )
    ax.axhline(100 * chance, color="gray", ls="--", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("lag between the signal and the question (steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title("Remembering one of 8 symbols through random distractors")
    ax.legend(loc="lower left", fontsize=8)
    return save_png(fig, path)
