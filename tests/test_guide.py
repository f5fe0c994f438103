"""The lecture guides (docs/guide.md and docs/guide.ko.md) against the code they describe: the same
topics in both languages, a notation table whose every slice equals the lecture's matrix built from
a real cell, code references that exist, commands the command line accepts, pictures that exist,
and no figure that the README or benchmarks/results do not report."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnlab.cells import CELLS
from rnnlab.cli import build_parser, with_default_task
from rnnlab.reference.stateful import CLASSES

ROOT = Path(__file__).resolve().parents[1]
GUIDES = {"en": ROOT / "docs/guide.md", "ko": ROOT / "docs/guide.ko.md"}
TOPICS = [  # the lecture topics each guide must cover, by anchor
    "shapes", "shared-weights", "vanilla-rnn", "hello", "bptt", "vanishing", "clipping", "lstm", "gru",
    "stacking", "bidirectional", "teacher-forcing", "encoder-decoder", "attention", "beam-search", "ctc",
    "interpretable-cells", "applications", "notation",
]  # fmt: skip


def _text(lang: str) -> str:
    return GUIDES[lang].read_text(encoding="utf-8")


def _code_lines(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _notation_rows(text: str) -> list[tuple[str, str, str]]:
    table = text.split("<!-- notation -->")[1].split("<!-- /notation -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:  # after the header and the rule
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[1].strip("`"), cells[-1].strip("`")))
    return rows


@pytest.mark.parametrize("lang", GUIDES)
def test_every_topic_is_covered_in_order(lang):
    anchors = re.findall(r'<a id="([\w-]+)"></a>', _text(lang))
    assert anchors == TOPICS


def test_both_guides_have_the_same_notation_table_commands_and_pictures():
    en, ko = _text("en"), _text("ko")
    assert _notation_rows(en) == [(c, s, e) for c, s, e in _notation_rows(ko)]
    commands = [[line.split("  #")[0].strip() for line in _code_lines(t)] for t in (en, ko)]
    assert commands[0] == commands[1]
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", en) == re.findall(r"!\[[^\]]*\]\(([^)]+)\)", ko)


@pytest.mark.parametrize("lang", GUIDES)
def test_notation_table_slices_equal_the_lecture_matrices(lang):
    """Each row names a lecture symbol and the torch.nn slice that holds it; the lecture's matrices come
    from rnnlab.reference.stateful, whose classes are tested equal to the cells step by step."""
    rows = _notation_rows(_text(lang))
    assert {c for c, _, _ in rows} == {"rnn", "lstm", "gru"} and len(rows) >= 27
    torch.manual_seed(0)
    hidden = 5
    for name in ("rnn", "lstm", "gru"):
        cell, head = CELLS[name](3, hidden).double(), torch.nn.Linear(hidden, 7).double()
        lecture = CLASSES[name].from_cell(cell, head).matrices()
        params = {k: v.detach().numpy() for k, v in cell.named_parameters()}
        params |= {
            "H": hidden,
            "head": SimpleNamespace(weight=head.weight.detach().numpy(), bias=head.bias.detach().numpy()),
        }
        named = [(symbol, expr) for cell_name, symbol, expr in rows if cell_name == name]
        assert named, name
        for symbol, expr in named:
            value = eval(re.sub(r"(\d)H", r"\1*H", expr), {"__builtins__": {}}, params)  # weight_ih[2H:3H] -> [2*H:3*H]
            np.testing.assert_allclose(value, lecture[symbol], atol=1e-12, err_msg=f"{name} {symbol} = {expr}")
        stacked = {"W", "b", "W_r", "W_z"} | ({"W_hy", "b_y"} if name != "rnn" else set())  # named once, under rnn
        per_gate = set(lecture) - stacked
        assert per_gate <= {s for s, _ in named}, f"{name}: symbols missing from the table"


@pytest.mark.parametrize("lang", GUIDES)
def test_code_references_exist(lang):
    refs = re.findall(r"`(rnnlab/[\w/]+\.py)(?::([\w.]+))?`", _text(lang))
    assert len(refs) > 40
    for path, names in refs:
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in filter(None, names.split(".")):
            assert re.search(rf"^\s*(def|class) {name}\b|^{name} = ", source, re.M), f"{path}: no {name}"


@pytest.mark.parametrize("lang", GUIDES)
def test_every_command_is_one_the_command_line_accepts(lang, capsys):
    commands = [line.split("  #")[0].strip() for line in _code_lines(_text(lang))]
    commands = [c for c in commands if c.startswith("rnnlab ")]
    assert len(commands) > 20
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(with_default_task(shlex.split(command)[1:]))
        except SystemExit:
            pytest.fail(f"{command}: {capsys.readouterr().err}")


@pytest.mark.parametrize("lang", GUIDES)
def test_pictures_are_the_readmes(lang):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", _text(lang))
    assert len(pictures) >= 7
    for picture in pictures:
        assert (GUIDES[lang].parent / picture).is_file() and f"docs/{picture}" in readme


@pytest.mark.parametrize("lang", GUIDES)
def test_every_figure_is_one_the_readme_or_the_benchmarks_report(lang):
    reported = (ROOT / "README.md").read_text(encoding="utf-8")
    reported += "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "benchmarks/results").iterdir()))
    figures = re.findall(r"(?<![\w.])\d[\d,]*\.\d+(?:e[+-]\d+)?%?|(?<![\w.])\d+%", _prose(_text(lang)))
    assert len(figures) > 60
    unknown = sorted({f for f in figures if f not in reported})
    assert not unknown, f"figures the README does not report: {unknown}"


def test_readme_links_both_guides_at_the_top():
    top = (ROOT / "README.md").read_text(encoding="utf-8")[:3000]
    assert "docs/guide.md" in top and "docs/guide.ko.md" in top


def test_the_korean_guide_is_korean():
    """Every line of running text (not tables, pictures or code) is written in Korean, and the Korean
    guide is not a fragment of the English one."""
    lines = [
        line for line in _prose(_text("ko")).splitlines() if line.strip() and not line.startswith(("|", "!", "<", "    "))
    ]  # not equations
    lines = [line for line in lines if len(re.sub(r"`[^`]*`|\([^)]*\)|\[[^\]]*\]|[^A-Za-z\uac00-\ud7a3]", "", line)) > 12]
    english = [line for line in lines if not re.search("[\uac00-\ud7a3]", line)]
    assert len(lines) > 150 and not english, english
    assert 0.7 < len(_prose(_text("ko")).splitlines()) / len(_prose(_text("en")).splitlines()) < 1.3
