"""rnnlab export: ONNX graphs of the character model (step and sequence) and the text classifier,
run by onnxruntime and compared with torch (1e-5); streaming generation through the step graph."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.tasks import load

ort = pytest.importorskip("onnxruntime")
V1 = Path(__file__).parent / "fixtures" / "v1"


def _run(kind: str, tmp_path: Path) -> Path:
    shutil.copytree(V1 / kind, tmp_path / kind)
    return tmp_path / kind


def _train_charlm(tmp_path: Path, cell: str, shakespeare: str) -> Path:
    text = tmp_path / "text.txt"
    text.write_text(shakespeare[:20_000], encoding="utf-8")
    flags = ["--text", str(text), "--cell", cell, "--hidden", "16", "--layers", "2", "--seq-len", "16"]
    assert main(["train", *flags, "--max-steps", "3", "--quiet", "--out", str(tmp_path / cell)]) == 0
    return tmp_path / cell


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru"])
def test_character_model_exports_and_streams(cell, tmp_path, shakespeare, capsys):
    run_dir = _run("charlm", tmp_path) if cell == "lstm" else _train_charlm(tmp_path, cell, shakespeare)
    capsys.readouterr()
    assert main(["export", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    difference = float(shown.split("largest difference ")[1].split()[0])
    assert difference < 1e-5 and "tokens/s" in shown
    out = run_dir / "onnx"
    meta = json.loads((out / "rnnlab.json").read_text())
    run = load(run_dir)
    assert meta["chars"] == list(run.vocab.chars) and meta["state"] == list(run.model.rnn.state_names)

    # stream 30 greedy characters through step.onnx, feeding the state back: torch's own greedy choice
    step = ort.InferenceSession(str(out / "step.onnx"))
    names, rnn = meta["state"], run.model.rnn
    feeds = {"token": np.array([0], dtype=np.int64)}
    feeds |= {n: np.zeros((rnn.num_layers, 1, rnn.hidden_size), np.float32) for n in names}
    token, state, onnx_tokens, torch_tokens = torch.tensor([0]), None, [], []
    with torch.inference_mode():
        for _ in range(30):
            logits, *new = step.run(None, feeds)
            feeds = {"token": logits.argmax(-1).astype(np.int64), **dict(zip(names, new))}
            onnx_tokens.append(int(feeds["token"][0]))
            torch_logits, state = run.model.step(token, state)
            token = torch_logits.argmax(-1)
            torch_tokens.append(int(token))
    assert onnx_tokens == torch_tokens

    # the sequence graph reads the same 30 characters in one call and ends in the same state
    sequence = ort.InferenceSession(str(out / "sequence.onnx"))
    tokens = np.array([[0, *onnx_tokens[:-1]]], dtype=np.int64)
    zeros = {n: np.zeros((rnn.num_layers, 1, rnn.hidden_size), np.float32) for n in names}
    _, *final = sequence.run(None, {"tokens": tokens, **zeros})
    for got, want in zip(final, (feeds[n] for n in names)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_classifier_exports_and_agrees_with_predict(tmp_path, capsys):
    run_dir = _run("classifier", tmp_path)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exported")]) == 0
    assert float(capsys.readouterr().out.split("largest difference ")[1].split()[0]) < 1e-5
    meta = json.loads((tmp_path / "exported/rnnlab.json").read_text())
    run = load(run_dir)
    session = ort.InferenceSession(str(tmp_path / "exported/classifier.onnx"))
    for text in ["a lovely film", "the film was awful and dull"]:
        ids = run.learned.encoder.encode(text).numpy()[None]  # (1, T)
        (probabilities,) = session.run(None, {"tokens": ids})
        ((_, label, p),) = run.predict([text])
        np.testing.assert_allclose(probabilities[0], p, atol=1e-5)
        assert meta["labels"][int(probabilities.argmax())] == label


def test_export_bad_input(tmp_path, capsys):
    forecaster = _run("forecaster", tmp_path)
    assert main(["export", str(forecaster)]) == 2
    assert "not a 'forecaster' run" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["export", str(_run("charlm", tmp_path)), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
