"""Attention maps: which source pieces each output piece looked at.

    plot_attention(pieces_out, pieces_in, weights, "map.png")     one sentence, a grey-scale heat map (PNG)
    attention_page([(pieces_out, pieces_in, weights, title), ...])  many sentences, one self-contained HTML page

``weights`` is (output steps, source steps); each row sums to 1.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

import numpy as np

from rnnlab.io import atomic_write
from rnnlab.viz.figures import figure, save_png


def plot_attention(target: list[str], source: list[str], weights, path: str | Path, title: str = "") -> Path:
    att = np.asarray(weights)
    fig = figure(figsize=(1.2 + 0.45 * len(source), 1.2 + 0.4 * len(target)), constrained_layout=False)
    ax = fig.subplots()
    ax.imshow(att, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title("\n".join(textwrap.wrap(title, 40)), fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)


def _table(target: list[str], source: list[str], weights) -> str:
    att = np.asarray(weights)
    head = "".join(f'<th class="src">{html.escape(s)}</th>' for s in source)
    rows = []
    for i, t in enumerate(target):
        cells = "".join(
            f'<td style="background:rgba(30,60,160,{w:.3f})" title="{html.escape(t)} &larr; {html.escape(s)}: {w:.3f}"></td>'
            for s, w in zip(source, att[i])
        )
        rows.append(f'<tr><th class="tgt">{html.escape(t)}</th>{cells}</tr>')
    return f'<table class="att"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def attention_page(items: list[tuple[list[str], list[str], object, str]], title: str = "Attention maps") -> str:
    """A self-contained HTML page with one attention table per (target, source, weights, caption)."""
    blocks = "".join(
        f"<section><h2>{html.escape(caption)}</h2>{_table(target, source, weights)}</section>"
        for target, source, weights, caption in items
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }}
h2 {{ font-size: 1em; font-weight: 600; margin-top: 2em; }}
table.att {{ border-collapse: collapse; }}
table.att td {{ width: 1.6em; height: 1.4em; border: 1px solid #eee; }}
th.src {{ font-weight: normal; writing-mode: vertical-rl; transform: rotate(180deg); padding: 2px; }}
th.tgt {{ font-weight: normal; text-align: right; padding-right: .5em; }}
</style></head><body><h1>{html.escape(title)}</h1>
<p>Each row is a piece of the output, each column a piece of the source; darker means more attention.</p>
{blocks}</body></html>"""


def write_attention_page(items, path: str | Path, title: str = "Attention maps") -> Path:
    atomic_write(Path(path), attention_page(items, title).encode("utf-8"))
    return Path(path)
