"""Translation end to end on a slice of Multi30k: subwords, training, BLEU, the CLI and its bad input."""

import gzip

import pytest
import torch
from conftest import SHARED_DATA

from rnnlab.cli import main

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (the real data sets)")
M30K = SHARED_DATA / "translation/multi30k"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m30k")
    for split, source, n in (("train", "train", 3000), ("test", "test_2016_flickr", 40)):
        for lang in ("de", "en"):
            lines = gzip.decompress((M30K / f"{source}.{lang}.gz").read_bytes()).decode().splitlines()[:n]
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    return folder


def test_translation_trains_translates_and_draws_attention(files, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "translate",
        "--train-files",
        str(files / "train.de"),
        str(files / "train.en"),
        "--test-files",
        str(files / "test.de"),
        str(files / "test.en"),
        "--vocab-size",
        "600",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--embedding",
        "32",
        "--max-steps",
        "40",
        "--batch-size",
        "32",
        "--beam",
        "3",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test BLEU, greedy" in out and "test BLEU, beam 3" in out
    png, page = tmp_path / "map.png", tmp_path / "maps.html"
    sentences = tmp_path / "s.txt"
    sentences.write_text("zwei Hunde spielen im Schnee .\nein Kind lacht .\n")
    argv = [
        "translate",
        str(run),
        "ein Mann fährt Fahrrad .",
        "--file",
        str(sentences),
        "--attention-map",
        str(png),
        "--attention-html",
        str(page),
    ]
    assert main(argv) == 0
    assert png.stat().st_size > 5_000
    html = page.read_text()
    assert html.count("<table") == 3 and "ein Mann fährt Fahrrad" in html and "http" not in html
    assert main(["eval", str(run)]) == 0
    assert "test BLEU, beam 3" in capsys.readouterr().out
    # in a batch of sentences of different lengths each map covers its own source, not the padding
    from rnnlab.tasks import load, translate

    for t in translate.translate(load(run), ["ein Kind lacht .", "zwei Hunde spielen im Schnee ."], attention=True):
        assert t.attention.shape == (len(t.target_pieces), len(t.source_pieces))
        torch.testing.assert_close(t.attention.sum(1), torch.ones(len(t.target_pieces)))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["   "], "empty sentence"),
        (["ein Mann", "--beam", "0"], "beam width"),
    ],
)
def test_translate_bad_input(files, tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    train = [
        "train",
        "translate",
        "--train-files",
        str(files / "train.de"),
        str(files / "train.en"),
        "--vocab-size",
        "300",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--embedding",
        "8",
        "--max-steps",
        "2",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(train) == 0
    capsys.readouterr()
    assert main(["translate", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
