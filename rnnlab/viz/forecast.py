"""Walk-forward forecasts against the actual held-out tail, beside the baselines -> PNG."""

from __future__ import annotations

from pathlib import Path

from rnnlab.viz.figures import figure, save_png


def plot_forecasts(report, path: str | Path, title: str = "") -> Path:
    """``report``: a ForecastReport (rnnlab.tasks.forecast). One panel for the 1-step-ahead forecasts,
    and one for the k-step-ahead ones when the horizon is k > 1."""
    h = report.horizon
    steps = [0] if h == 1 else [0, h - 1]
    fig = figure(figsize=(11, 3.6 * len(steps)))
    axes = fig.subplots(len(steps), 1, squeeze=False)
    x = report.origins + 1
    for ax, s in zip(axes[:, 0], steps):
        ax.plot(x + s, report.actual[:, s], "k-", lw=1.4, label="actual")
        for name, pred in report.forecasts.items():
            mase = report.table[name]["MASE"]
            ax.plot(x + s, pred[:, s], "-" if name == "model" else "--", lw=1, label=f"{name} (MASE {mase:.3f})")
        ax.set_title(f"{s + 1}-step-ahead forecasts of {report.target} on the held-out tail", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_png(fig, path)
