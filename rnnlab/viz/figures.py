"""Figures drawn without pyplot: no global matplotlib backend is chosen, so importing rnnlab never
changes how a notebook or another program draws.

    fig = figure(figsize=(8, 5))
    ax = fig.subplots()
    ...
    save_png(fig, "plot.png")     # written atomically
"""

from __future__ import annotations

import io
from pathlib import Path

from rnnlab.io import atomic_write


def figure(**kwargs):
    """A matplotlib Figure (with an Agg canvas of its own); ``constrained_layout`` by default."""
    from matplotlib.figure import Figure

    kwargs.setdefault("constrained_layout", True)
    return Figure(**kwargs)


def png_bytes(fig, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(fig, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, png_bytes(fig, dpi))
    return path


class Plot:
    """A figure that Jupyter shows inline (as a PNG) without pyplot; ``figure`` is the matplotlib Figure."""

    def __init__(self, figure) -> None:
        self.figure = figure

    def _repr_png_(self) -> bytes:
        return png_bytes(self.figure)

    def save(self, path: str | Path) -> Path:
        return save_png(self.figure, path)
