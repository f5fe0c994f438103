"""Runs written before the task protocol (checkpoint format 1, tests/fixtures/v1) still load, evaluate,
predict and resume. The expected numbers are what rnnlab printed for these runs before the change."""

import json
import shutil
from pathlib import Path

import pytest

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.tasks import load

V1 = Path(__file__).parent / "fixtures" / "v1"
DATA = V1 / "data"


def _out(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_every_kind_of_format_1_loads():
    kinds = {}
    for folder in sorted(p for p in V1.iterdir() if (p / "config.json").is_file()):
        assert json.loads((folder / "config.json").read_text())["format_version"] == 1
        kinds[folder.name] = load(folder).task.kind
    names = ("captioner", "charlm", "classifier", "forecaster", "tagger", "transcriber", "translator")
    assert kinds == {k: k for k in names}


def test_character_model(capsys):
    out = _out(capsys, ["eval", V1 / "charlm", "--text", DATA / "shakespeare.txt"])
    assert "5,999 characters scored, 4.0530 nats/char" in out
    assert _out(capsys, ["sample", V1 / "charlm", "--prime", "ROMEO:", "--length", "40", "--seed", "3"]) == (
        "ROMEO:carUURSTesA:ddFCwg.T?uwzp::rv zkPPraUuyt\n"
    )
    assert _out(capsys, ["predict", V1 / "charlm", "ROMEO:", "--length", "40", "--seed", "3"]).startswith("ROMEO:")


def test_classifier_and_tagger(capsys):
    out = _out(capsys, ["eval", V1 / "classifier", "--csv", DATA / "reviews.csv"])
    assert "80 examples: accuracy 50.00%, macro-F1 33.33%, loss 0.7157" in out
    assert _out(capsys, ["predict", V1 / "classifier", "a great film"]).split("\t")[0] in ("neg", "pos")
    out = _out(capsys, ["eval", V1 / "tagger", "--conll", DATA / "chunks.txt"])
    assert "40 sequences: per-step accuracy 4.29%, macro-F1 2.03%, chunk F1 3.95%" in out
    out = _out(capsys, ["predict", V1 / "tagger", "He/PRP", "reckons/VBZ", "the/DT"])
    assert out.splitlines() == ["He/PRP\tB-PP", "reckons/VBZ\tI-VP", "the/DT\tI-VP"]


def test_forecaster(capsys):
    out = _out(capsys, ["predict", V1 / "forecaster", "--csv", DATA / "airline.csv"])
    assert out.strip() == "next 2 value(s) of passengers: 440.202, 433.523"
    out = _out(capsys, ["eval", V1 / "forecaster", "--csv", DATA / "airline.csv"])
    assert "model                   58.86        72.46    13.52   2.001" in out


def test_encoder_decoders(capsys):
    """The translator's decoder was a bare cell in format 1 (cell.weight_ih); it loads into today's
    one-layer Recurrent and translates exactly as before."""
    assert _out(capsys, ["translate", V1 / "translator", "ein Mann"]).strip() == "inaln his inalru onhen j froroaln j"
    run = load(V1 / "translator")
    scores = run.evaluate(test_files=(str(DATA / "mt/test_2016_flickr.de"), str(DATA / "mt/test_2016_flickr.en")))
    assert abs(scores["greedy"]["bleu"] - 0.03728983512928746) < 1e-9
    image = DATA / "captions/images/img00.jpg"
    assert _out(capsys, ["caption", V1 / "captioner", image]).startswith(f"{image}: blue a blue a blue")
    out = _out(capsys, ["transcribe", V1 / "transcriber", DATA / "fsdd/3_yweweler_0.wav"])
    assert out.strip() == f"{DATA / 'fsdd/3_yweweler_0.wav'}: 63626262"
    out = _out(capsys, ["eval", V1 / "transcriber", "--fsdd", DATA / "fsdd"])
    assert "CER greedy 316.06%, prefix beam 1091.24%" in out


@pytest.mark.parametrize("kind, data", [("charlm", "text"), ("classifier", "csv")])
def test_resuming_a_format_1_run_turns_it_into_format_2(kind, data, tmp_path, capsys):
    run = tmp_path / kind
    shutil.copytree(V1 / kind, run)
    config = json.loads((run / "config.json").read_text())
    moved = {"text": DATA / "shakespeare.txt", "csv": DATA / "reviews.csv"}[data]  # the data moved since
    if kind == "charlm":
        config["data"]["text"] = str(moved)
    else:
        config["options"]["source"]["csv"] = config["options"]["source"]["test_csv"] = str(moved)
    (run / "config.json").write_text(json.dumps(config))
    task = "" if kind == "charlm" else "classify"
    argv = ["train", *([task] if task else []), "--out", run, "--resume", "--max-steps", "5", "--quiet"]
    _out(capsys, argv + (["--sample-length", "0"] if kind == "charlm" else []))
    ckpt = checkpoint.load(run)
    assert ckpt.config["format_version"] == 2 and ckpt.config["progress"]["step"] == 5
    assert [r["step"] for r in ckpt.metrics()] == [1, 2, 3, 4, 5]  # the old log, continued
    assert load(run).options.data.to_dict()[data] == str(moved)
