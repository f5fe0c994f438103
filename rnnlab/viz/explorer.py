"""The hidden-cell explorer: one self-contained HTML page showing what each unit of a character
model responds to.

    page = explain(run, text)            # trace the model over the text (the explicit path)
    write_page(page, "explorer.html")    # no network needed to open it

What the page holds:

* the text, each character coloured by a chosen unit's activation after reading it (tanh(c) of an
  LSTM's cell state, or h), with a layer / quantity / unit picker; hovering a character shows the
  model's five likeliest next characters;
* discovery: for each simple property of the text (``properties.PROPERTIES``: position in line,
  inside quotes...), the units whose activation correlates best with it (Pearson r over the
  whole analysed text), one click away;
* gate statistics: for each unit, the fraction of steps each gate is left-saturated (< 0.1) or
  right-saturated (> 0.9), as scatter plots, as in Karpathy, Johnson & Fei-Fei (2015). A vanilla
  RNN has no gates; its panel shows h's saturation (< -0.9, > 0.9) instead.

Everything comes from ``Recurrent.trace``, so LSTM, GRU and RNN models work alike.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab.errors import DataError
from rnnlab.io import atomic_write
from rnnlab.viz.properties import PROPERTIES, correlations

SATURATION = {"low": 0.1, "high": 0.9}


@dataclass
class Series:
    """One selectable quantity of one layer: values (N, H) in [-1, 1] after each character."""

    layer: int
    name: str
    values: np.ndarray


@dataclass
class Discovery:
    prop: str
    layer: int
    name: str
    unit: int
    r: float


@dataclass
class Saturation:
    """Per unit, the share of steps a gate sits below ``low`` (left) or above ``high`` (right)."""

    layer: int
    gate: str
    left: np.ndarray  # (H,)
    right: np.ndarray  # (H,)
    low: float
    high: float


@dataclass
class Explanation:
    title: str
    text: str  # all analysed characters; the page shows the first ``shown`` of them
    shown: int
    series: list[Series]
    top_chars: list[list[str]]  # (shown, 5): the likeliest next characters after each position
    top_probs: np.ndarray  # (shown, 5)
    discoveries: list[Discovery]
    saturation: list[Saturation]
    summary: dict = field(default_factory=dict)

    def best(self, prop: str) -> Discovery | None:
        found = [d for d in self.discoveries if d.prop == prop]
        return max(found, key=lambda d: abs(d.r)) if found else None


def explain(run, text: str, shown: int = 2000, per_property: int = 3) -> Explanation:
    """Trace ``run.model`` (a CharLM) over ``text`` and gather everything the page shows."""
    if len(text) < 2:
        raise DataError("the explorer needs a text of at least two characters")
    model, vocab = run.model.eval(), run.vocab
    tokens = vocab.encode(text, "the explorer's text").to(next(model.parameters()).device)
    with torch.inference_mode():
        trace = model.rnn.trace(model.embed(tokens)[None])  # batch of one: (1, N, ...)
        logits = model.head(trace.output[0, :shown])  # (shown, V)
        probs, ids = (t.cpu() for t in logits.softmax(-1).topk(min(5, len(vocab)), dim=-1))
    series, saturation = [], []
    for layer in range(model.rnn.num_layers):
        recorded = {k: v[0].float().cpu().numpy() for k, v in trace.tensors[(layer, 0)].items()}  # (N, H) each
        if "c" in recorded:
            series.append(Series(layer, "tanh(c)", np.tanh(recorded["c"])))
        series.append(Series(layer, "h", recorded["h"]))
        gates = [g for g in ("i", "f", "o", "r", "z") if g in recorded]
        for gate in gates:
            values = recorded[gate]
            saturation.append(
                Saturation(
                    layer,
                    gate,
                    (values < SATURATION["low"]).mean(0),
                    (values > SATURATION["high"]).mean(0),
                    **SATURATION,
                )
            )
        if not gates:  # a vanilla RNN: how often is tanh saturated?
            h = recorded["h"]
            saturation.append(Saturation(layer, "h", (h < -0.9).mean(0), (h > 0.9).mean(0), -0.9, 0.9))
    discoveries = []
    for prop, fn in PROPERTIES.items():
        signal = fn(text)
        if signal.std() == 0:
            continue  # e.g. no quotes in the text: nothing to correlate with
        for s in series:
            r = correlations(s.values, signal)
            for unit in np.argsort(-np.abs(r))[:per_property]:
                discoveries.append(Discovery(prop, s.layer, s.name, int(unit), float(r[unit])))
    discoveries.sort(key=lambda d: (list(PROPERTIES).index(d.prop), -abs(d.r)))
    kept: list[Discovery] = []
    for prop in PROPERTIES:
        kept.extend([d for d in discoveries if d.prop == prop][:per_property])
    config = model.config
    return Explanation(
        title=str(run.path),
        text=text,
        shown=min(shown, len(text)),
        series=series,
        top_chars=[[vocab.chars[int(i)] for i in row] for row in ids],
        top_probs=probs.numpy(),
        discoveries=kept,
        saturation=saturation,
        summary={
            "cell": config.cell,
            "layers": config.num_layers,
            "hidden": config.hidden_size,
            "analysed characters": len(text),
            "shown characters": min(shown, len(text)),
        },
    )


# ---------------------------------------------------------------------- the page


def _int8_b64(values: np.ndarray) -> str:
    q = np.clip(np.rint(values * 127), -127, 127).astype(np.int8)
    return base64.b64encode(q.tobytes()).decode()


def _scatter_svg(s: Saturation, size: int = 220) -> str:
    pad = 34
    inner = size - pad - 10

    def xy(a: float, b: float) -> tuple[float, float]:
        return pad + a * inner, 10 + (1 - b) * inner

    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2"><title>unit {u}: {a:.2f} left, {b:.2f} right</title></circle>'
        for u, (a, b) in enumerate(zip(s.left, s.right))
        for x, y in [xy(a, b)]
    )
    x0, y0 = xy(0, 0)
    x1, y1 = xy(1, 1)
    below = f"&lt; {s.low}" if s.gate != "h" else f"&lt; {s.low}"
    above = f"&gt; {s.high}"
    return (
        f'<svg class="scatter" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
        f'role="img" aria-label="layer {s.layer} gate {s.gate} saturation">'
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" class="axis"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" class="axis"/>'
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y0}" class="diag"/>'
        f'<text x="{(x0 + x1) / 2}" y="{size - 4}" text-anchor="middle">left-saturated ({below})</text>'
        f'<text x="10" y="{(y0 + y1) / 2}" text-anchor="middle" transform="rotate(-90 10 {(y0 + y1) / 2})">'
        f"right-saturated ({above})</text>"
        f'<text x="{x0 - 3}" y="{y0 + 12}" text-anchor="end">0</text>'
        f'<text x="{x1}" y="{y0 + 12}" text-anchor="middle">1</text>'
        f'<text x="{x0 - 4}" y="{y1 + 4}" text-anchor="end">1</text>'
        f'<g class="dots">{dots}</g></svg>'
    )


def page_html(e: Explanation) -> str:
    data = {
        "text": e.text[: e.shown],
        "series": [
            {"layer": s.layer, "name": s.name, "units": s.values.shape[1], "values": _int8_b64(s.values[: e.shown])}
            for s in e.series
        ],
        "top": [[[c, round(float(p), 3)] for c, p in zip(cs, ps)] for cs, ps in zip(e.top_chars, e.top_probs)],
        "discoveries": [d.__dict__ for d in e.discoveries],
    }
    first = e.discoveries[0] if e.discoveries else Discovery("", 0, e.series[0].name, 0, 0.0)
    best_line = max((d for d in e.discoveries if d.prop == "position in line"), key=lambda d: abs(d.r), default=first)
    data["initial"] = {"layer": best_line.layer, "name": best_line.name, "unit": best_line.unit}
    rows = "".join(
        f'<tr data-layer="{d.layer}" data-name="{html.escape(d.name)}" data-unit="{d.unit}">'
        f"<td>{html.escape(d.prop)}</td><td>{d.layer}</td><td>{html.escape(d.name)}</td><td>{d.unit}</td>"
        f'<td class="r">{d.r:+.3f}</td></tr>'
        for d in e.discoveries
    )
    panels = "".join(
        f"<figure><figcaption>layer {s.layer}, {'gate ' + s.gate if s.gate != 'h' else 'h (no gates)'}"
        f"</figcaption>{_scatter_svg(s)}</figure>"
        for s in e.saturation
    )
    summary = ", ".join(f"{k} {v}" for k, v in e.summary.items())
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return (
        _TEMPLATE.replace("%TITLE%", html.escape(e.title))
        .replace("%SUMMARY%", html.escape(summary))
        .replace("%ROWS%", rows)
        .replace("%PANELS%", panels)
        .replace("%DATA%", payload)
    )


class ExplorerPage:
    """An explorer page as a value: Jupyter shows it inline (in a sandboxed frame), ``save`` writes it."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text

    def _repr_html_(self) -> str:
        return f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:720px;border:0"></iframe>'

    def save(self, path: str | Path) -> Path:
        atomic_write(Path(path), self.html.encode("utf-8"))
        return Path(path)


def write_page(e: Explanation, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page_html(e).encode("utf-8"))
    return path


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rnnlab explorer: %TITLE%</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.2em 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.35em; margin-bottom: .2em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.summary { color: #555; }
.controls { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ddd; z-index: 2; }
.controls label { margin-right: 1em; }
#text { font: 13px/1.6 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; word-break: break-all;
        border: 1px solid #ddd; padding: .8em; max-height: 32em; overflow-y: auto; }
#text span.ch { border-radius: 2px; }
#text span.nl { color: #999; }
#tip { position: fixed; display: none; background: #222; color: #fff; padding: .4em .6em; border-radius: 4px;
       font: 12px ui-monospace, monospace; pointer-events: none; z-index: 5; white-space: pre; }
table { border-collapse: collapse; } td, th { padding: .15em .7em; border-bottom: 1px solid #eee; text-align: left; }
#discoveries tbody tr { cursor: pointer; } #discoveries tbody tr:hover { background: #f4f4ff; }
td.r { font-variant-numeric: tabular-nums; }
.panels { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-weight: 600; text-align: center; }
svg.scatter text { font-size: 10px; fill: #444; } svg.scatter .axis { stroke: #888; }
svg.scatter .diag { stroke: #ccc; stroke-dasharray: 3 3; } svg.scatter circle { fill: rgba(40, 90, 200, .45); }
.legend span { display: inline-block; width: 3em; text-align: center; }
</style></head>
<body>
<h1>Hidden-cell explorer</h1>
<div class="summary">%TITLE% &mdash; %SUMMARY%</div>
<div class="controls">
  <label>layer <select id="layer"></select></label>
  <label>quantity <select id="quantity"></select></label>
  <label>unit <select id="unit"></select></label>
  <span class="legend">activation: <span style="background:rgba(40,90,220,.9);color:#fff">-1</span><span>0</span><span
  style="background:rgba(220,60,30,.9);color:#fff">+1</span></span>
  <span id="status"></span>
</div>
<h2>The text, coloured by the chosen unit</h2>
<p>Each character is coloured by the unit's value after the network has read it. Hover a character for the
model's five likeliest next characters.</p>
<div id="text"></div>
<div id="tip"></div>
<h2>Units that track a property of the text</h2>
<p>Pearson correlation between each unit's activation and a simple property of the text, over all analysed
characters. Click a row to show that unit.</p>
<table id="discoveries"><thead><tr><th>property</th><th>layer</th><th>quantity</th><th>unit</th><th>r</th></tr></thead>
<tbody>%ROWS%</tbody></table>
<h2>Gate saturation</h2>
<p>One dot per unit: the fraction of steps its gate is left-saturated (nearly closed) against the fraction it is
right-saturated (nearly open). Units far along the right axis are gates that are almost always open:
for the forget gate, units that remember for long stretches.</p>
<div class="panels">%PANELS%</div>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
function decode(b64) {
  const bin = atob(b64), out = new Int8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = (bin.charCodeAt(i) << 24) >> 24;
  return out;
}
const SERIES = DATA.series.map(s => Object.assign({}, s, {values: decode(s.values)}));
const layerSel = document.getElementById("layer"), quantSel = document.getElementById("quantity");
const unitSel = document.getElementById("unit"), textDiv = document.getElementById("text");
const tip = document.getElementById("tip"), status = document.getElementById("status");
const layers = [...new Set(SERIES.map(s => s.layer))];
layers.forEach(l => layerSel.add(new Option(String(l), String(l))));
const spans = [];
for (let t = 0; t < DATA.text.length; t++) {
  const ch = DATA.text[t], span = document.createElement("span");
  span.className = "ch";
  span.dataset.t = String(t);
  if (ch === "\n") { span.textContent = "\u21b5\n"; span.classList.add("nl"); } else { span.textContent = ch; }
  textDiv.appendChild(span);
  spans.push(span);
}
function current() {
  return SERIES.find(s => String(s.layer) === layerSel.value && s.name === quantSel.value);
}
function fillQuantities() {
  const keep = quantSel.value;
  quantSel.innerHTML = "";
  SERIES.filter(s => String(s.layer) === layerSel.value).forEach(s => quantSel.add(new Option(s.name, s.name)));
  if ([...quantSel.options].some(o => o.value === keep)) quantSel.value = keep;
  fillUnits();
}
function fillUnits() {
  const keep = unitSel.value, s = current();
  unitSel.innerHTML = "";
  for (let u = 0; u < s.units; u++) unitSel.add(new Option(String(u), String(u)));
  if (keep !== "" && Number(keep) < s.units) unitSel.value = keep;
}
function colour(v) {
  const a = Math.min(1, Math.abs(v)) * 0.9;
  return v >= 0 ? `rgba(220,60,30,${a.toFixed(3)})` : `rgba(40,90,220,${a.toFixed(3)})`;
}
function paint() {
  const s = current(), u = Number(unitSel.value), H = s.units;
  for (let t = 0; t < spans.length; t++) {
    const v = s.values[t * H + u] / 127;
    spans[t].style.backgroundColor = colour(v);
    spans[t].dataset.v = v.toFixed(3);
  }
  status.textContent = `showing layer ${s.layer}, ${s.name}, unit ${u}`;
}
function select(layer, name, unit) {
  layerSel.value = String(layer); fillQuantities();
  quantSel.value = name; fillUnits();
  unitSel.value = String(unit); paint();
}
layerSel.addEventListener("change", () => { fillQuantities(); paint(); });
quantSel.addEventListener("change", () => { fillUnits(); paint(); });
unitSel.addEventListener("change", paint);
document.querySelectorAll("#discoveries tbody tr").forEach(row => row.addEventListener("click", () => {
  select(row.dataset.layer, row.dataset.name, row.dataset.unit);
  textDiv.scrollIntoView({behavior: "smooth"});
}));
textDiv.addEventListener("mousemove", ev => {
  const span = ev.target.closest("span.ch");
  if (!span) { tip.style.display = "none"; return; }
  const t = Number(span.dataset.t);
  const show = c => c === "\n" ? "\\n" : c === " " ? "\u2423" : c;
  const lines = DATA.top[t].map(([c, p]) => `${show(c).padEnd(3)} ${(100 * p).toFixed(1).padStart(5)}%`);
  const head = `after ${JSON.stringify(DATA.text[t])}: value ${span.dataset.v}\nnext character:\n`;
  tip.textContent = head + lines.join("\n");
  tip.style.display = "block";
  tip.style.left = (ev.clientX + 14) + "px";
  tip.style.top = (ev.clientY + 14) + "px";
});
textDiv.addEventListener("mouseleave", () => { tip.style.display = "none"; });
select(DATA.initial.layer, DATA.initial.name, DATA.initial.unit);
</script>
</body></html>
"""


def write_explorer(run, text: str, out_dir: Path, chars: int = 10_000, shown: int = 2_000) -> str:
    """Write ``out_dir/explorer.html`` for the first ``chars`` characters of ``text`` (the page shows
    ``shown`` of them); returns what to tell the user: the path and the units that track the text best."""
    if chars < 2 or shown < 1:
        raise DataError(f"--chars must be >= 2 and --shown >= 1, got {chars} and {shown}")
    explanation = explain(run, text[:chars], shown=shown)
    path = write_page(explanation, Path(out_dir) / "explorer.html")
    lines = [f"wrote {path}: {len(text[:chars]):,} characters analysed; the units that track the text best:"]
    for prop in ("position in line", "inside quotes", "inside brackets", "all-caps line (speaker name)", "newline"):
        d = explanation.best(prop)
        if d is not None:
            lines.append(f"  {prop:30} layer {d.layer} {d.name:8} unit {d.unit:4}  r = {d.r:+.2f}")
    return "\n".join(lines)
