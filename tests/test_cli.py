"""The command line: every bad input ends with one line on stderr and exit code 2, never a traceback."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.cli import main

TINY = [
    "--hidden",
    "16",
    "--embedding",
    "8",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--eval-every",
    "5",
    "--sample-length",
    "20",
    "--quiet",
]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, shakespeare) -> Path:
    path = tmp_path_factory.mktemp("cli") / "small.txt"
    path.write_text(shakespeare[:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, text_file) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--text", str(text_file), "--max-steps", "10", "--out", str(out), *TINY]) == 0
    return out


def _fails_cleanly(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:  # argparse exits by itself
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_train_sample_eval_hello(capsys, run_dir, text_file):
    capsys.readouterr()
    assert main(["sample", str(run_dir), "--prime", "ROMEO:", "--length", "30", "--seed", "1"]) == 0
    sampled = capsys.readouterr().out
    assert sampled.startswith("ROMEO:") and len(sampled) == len("ROMEO:") + 30 + 1
    assert main(["eval", str(run_dir), "--text", str(text_file)]) == 0
    assert "nats/char" in capsys.readouterr().out
    assert main(["hello", "--steps", "100"]) == 0
    assert "accuracy 100%" in capsys.readouterr().out
    assert main(["hello", "--textbook"]) == 0
    shown = capsys.readouterr().out
    assert "accuracy 100%" in shown and "h_t" in shown and "y(o)" in shown
    after = shown.split("after 200 steps")[1].splitlines()[2:6]  # one line per step: x_t, target, h_t (3), y_t (4)
    assert [len(line.split()) for line in after] == [2 + 3 + 4 + 2] * 4
    assert main(["hello", "--textbook", "--cell", "lstm"]) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock",  # held while a process trains into the folder
        ".versions",  # the same files under content-addressed names (crash-consistent saves)
        "best.safetensors",
        "config.json",
        "curves.png",
        "explorer.html",
        "metrics.csv",
        "model.safetensors",
        "samples.txt",
        *(["tensorboard"] if (run_dir / "tensorboard").exists() else []),
        "trainer.safetensors",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        ("na\u00efve".encode("latin-1"), "not valid UTF-8"),
        (b"too short\n", "too short"),
    ],
)
def test_bad_training_text(capsys, tmp_path, content, message):
    path = tmp_path / "t.txt"
    if content is not None:
        path.write_bytes(content)
    _fails_cleanly(capsys, ["train", "--text", str(path), "--max-steps", "2", "--out", str(tmp_path / "o"), *TINY], message)
    assert not (tmp_path / "o" / "config.json").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hidden", "-5"], "hidden_size must be a positive integer"),
        (["--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["--lr", "0"], "learning rate must be positive"),
        (["--batch-size", "0"], "must be positive"),
        (["--layers", "0"], "num_layers"),
        (["--max-minutes", "-1"], "max minutes"),
        (["--cell", "transformer"], "invalid choice"),
        (["--hidden", "many"], "invalid int value"),
    ],
)
def test_nonsense_hyperparameters(capsys, tmp_path, text_file, flags, message):
    argv = ["train", "--text", str(text_file), "--max-steps", "2", "--out", str(tmp_path / "o"), *TINY, *flags]
    _fails_cleanly(capsys, argv, message)


def test_prime_outside_vocabulary(capsys, run_dir):
    _fails_cleanly(capsys, ["sample", str(run_dir), "--prime", "ROMEO: 안녕"], "never saw in training: '안' '녕'")


def test_bad_sampling_options(capsys, run_dir):
    _fails_cleanly(capsys, ["sample", str(run_dir), "--temperature", "-1"], "temperature")
    _fails_cleanly(capsys, ["sample", str(run_dir), "--top-k", "0"], "top-k")
    _fails_cleanly(capsys, ["sample", str(run_dir), "--top-p", "1.5"], "top-p")


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    dst.mkdir(parents=True)
    for p in run_dir.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_missing_corrupt_truncated_and_foreign_checkpoints(capsys, run_dir, tmp_path):
    _fails_cleanly(capsys, ["sample", str(tmp_path / "nothing")], "no such checkpoint folder")
    _fails_cleanly(capsys, ["sample", str(tmp_path)], "not an rnnlab checkpoint")

    bad = _copy(run_dir, tmp_path)
    (bad / "config.json").write_text("{not json")
    _fails_cleanly(capsys, ["sample", str(bad)], "corrupt")

    for name in ("best.safetensors", "model.safetensors"):  # what sample reads; what resume reads
        bad = _copy(run_dir, tmp_path / name)
        data = (bad / name).read_bytes()
        (bad / name).write_bytes(data[: len(data) // 2])
        argv = ["sample", str(bad)] if name.startswith("best") else ["train", "--out", str(bad), "--resume"]
        _fails_cleanly(capsys, argv, "does not match config.json")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"_name_or_path": "bert", "hidden_size": 768}))
    _fails_cleanly(capsys, ["sample", str(foreign)], "not an rnnlab checkpoint")

    other = _copy(run_dir, tmp_path / "k")
    config = json.loads((other / "config.json").read_text())
    config["kind"] = "classifier"
    (other / "config.json").write_text(json.dumps(config))
    _fails_cleanly(capsys, ["sample", str(other)], "expected a 'charlm' model")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_in_place_of_the_weights_is_never_run(capsys, run_dir, tmp_path, monkeypatch):
    bad = _copy(run_dir, tmp_path)
    payload = pickle.dumps({"weights": _Boom()})
    (bad / "best.safetensors").write_bytes(payload)
    config = json.loads((bad / "config.json").read_text())
    config["files"]["best.safetensors"] = __import__("hashlib").sha256(payload).hexdigest()
    (bad / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    _fails_cleanly(capsys, ["sample", str(bad)], "not a readable safetensors file")
    assert not (tmp_path / "pwned").exists()


def test_resume_rejects_changed_settings(capsys, run_dir):
    _fails_cleanly(capsys, ["train", "--out", str(run_dir), "--resume", "--hidden", "32"], "cannot change when resuming")


def test_explicit_out_that_holds_a_run_is_refused(capsys, run_dir, text_file):
    before = (run_dir / "model.safetensors").read_bytes()
    _fails_cleanly(
        capsys,
        ["train", "--text", str(text_file), "--max-steps", "2", "--out", str(run_dir), *TINY],
        "already holds a run",
    )
    assert (run_dir / "model.safetensors").read_bytes() == before


def test_sigterm_saves_and_resume_finishes(tmp_path, text_file):
    """A real process, stopped by SIGTERM mid-run, saves; --resume then completes the budget."""
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "--text",
        str(text_file),
        "--max-steps",
        "100000",
        "--out",
        str(out),
        *TINY,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "config.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    step = json.loads((out / "config.json").read_text())["progress"]["step"]
    assert step >= 5
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnlab",
            "train",
            "--out",
            str(out),
            "--resume",
            "--max-steps",
            str(step + 5),
            "--quiet",
            "--sample-length",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["progress"]["step"] == step + 5


HELP_COMMANDS = [
    ["train"], ["train", "lm"], ["train", "classify"], ["train", "tag"], ["train", "forecast"],
    ["train", "translate"], ["train", "caption"], ["train", "transcribe"], ["sample"], ["eval"],
    ["predict"], ["explain"], ["hello"], ["gradients"], ["experiment", "memory"], ["experiment", "exposure"],
    ["experiment", "truncation"], ["experiment", "successors"], ["translate"], ["caption"], ["transcribe"], ["export"],
]  # fmt: skip


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_help_shows_each_default_once(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    assert "(default: )" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text), "a default printed twice"
