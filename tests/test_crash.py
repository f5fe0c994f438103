"""A run folder survives anything: a kill at every point of a save, kill -9 at random moments, a full
disk, two processes training into one folder. Whatever happens, the folder loads, and resuming it
ends with exactly the weights of a run that was never interrupted."""

import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.callbacks import MetricsLog
from rnnlab.cli import main
from rnnlab.io import RunLock
from rnnlab.tasks import get, load, make_options, train

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
TINY = ["--hidden", "8", "--embedding", "4", "--seq-len", "8", "--batch-size", "2", "--eval-every", "1"]
TINY += ["--warmup", "1", "--quiet", "--sample-length", "0"]


@pytest.fixture(scope="module")
def text(tmp_path_factory, shakespeare) -> Path:
    path = tmp_path_factory.mktemp("crash") / "small.txt"
    path.write_text(shakespeare[:3000], encoding="utf-8")
    return path


def _argv(text: Path, out, steps: int = STEPS) -> list[str]:
    return ["train", "--text", str(text), "--max-steps", str(steps), *TINY, "--out", str(out)]


@pytest.fixture(scope="module")
def reference(text, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("crash") / "whole"
    assert main(_argv(text, out)) == 0
    return checkpoint.load(out).model_state()


def _resume_argv(out, steps: int = STEPS) -> list[str]:
    return ["train", "--out", str(out), "--resume", "--max-steps", str(steps), *TINY[-3:]]


def _recovers(out: Path, text: Path, reference: dict, steps: int = STEPS) -> None:
    """The folder holds a complete checkpoint or none; training picks up and ends as if never stopped."""
    resume = checkpoint.is_checkpoint(out)
    if resume:
        ckpt = checkpoint.load(out)
        load(out)  # the best weights, the model, what it learned: all readable
        ckpt.trainer_state()
    options = make_options(
        get("charlm"),
        model={"hidden_size": 8, "embedding_dim": 4},
        data={"text": str(text), "seq_len": 8, "batch_size": 2},
        train={"max_steps": steps, "eval_every": 1, "warmup_steps": 1},
    )  # what _argv asks for; trained through the library (no plots, no explorer page): the same weights
    train(get("charlm"), options, out, resume=resume, budget=(steps, None), progress=False, callbacks=[MetricsLog()])
    final = checkpoint.load(out).model_state()
    assert all(torch.equal(final[k], reference[k]) for k in reference), out
    versions = {p.name for p in (out / checkpoint.VERSIONS).iterdir()}
    assert len(versions) == len(checkpoint.load(out).files) and not list(out.glob(".*.tmp")), versions


def test_a_kill_at_every_point_of_a_save(text, reference, tmp_path):
    """60 real processes, each killed (SIGKILL) at one of the first 60 crash points of a training
    run that saves after every step: inside the first saves, between the files and the manifest,
    after it, while the plain names move and old files go."""
    points = list(range(1, 61))
    spec = {"argv": _argv(text, "{out}"), "points": points, "root": str(tmp_path)}
    harness = ROOT / "tests" / "support" / "crash_harness.py"
    done = subprocess.run(
        [sys.executable, str(harness), json.dumps(spec)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    codes = {int(k): v for k, v in json.loads(done.stdout).items()}
    assert sum(code == -signal.SIGKILL for code in codes.values()) >= 50, codes
    for k in points:
        _recovers(tmp_path / f"k{k}", text, reference)


def test_kill_minus_9_at_random_moments(text, tmp_path):
    """A run that saves after every one of its 60 steps, killed (SIGKILL) after a random 2-4 s, three
    times over, resumed each time: it ends with the weights of a run never killed."""
    steps, rng, out = 60, random.Random(0), tmp_path / "run"
    assert main(_argv(text, tmp_path / "whole", steps)) == 0
    reference = checkpoint.load(tmp_path / "whole").model_state()
    for _ in range(3):
        argv = _resume_argv(out, steps) if checkpoint.is_checkpoint(out) else _argv(text, out, steps)
        proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *argv], cwd=ROOT, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 4.0))
        proc.kill()
        proc.wait()
        if checkpoint.is_checkpoint(out):
            load(out)
    _recovers(out, text, reference, steps)


class _FullDisk:
    """os.fdopen whose files accept ``room`` bytes in all, then fail with ENOSPC."""

    def __init__(self, room: int):
        self.room = room
        self.real = __import__("os").fdopen

    def __call__(self, fd, mode="r", *args, **kwargs):
        f = self.real(fd, mode, *args, **kwargs)
        disk = self

        class File:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                if len(data) > disk.room:
                    raise OSError(errno.ENOSPC, "No space left on device")
                disk.room -= len(data)
                return f.write(data)

            def __getattr__(self, name):
                return getattr(f, name)

        return File()


def test_a_full_disk_keeps_the_previous_checkpoint(text, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(_argv(text, out, steps=1)) == 0
    before = checkpoint.load(out).config["progress"]["step"]
    monkeypatch.setattr("rnnlab.io.os.fdopen", _FullDisk(room=5000))  # the next save runs out of space
    assert main(["train", "--out", str(out), "--resume", "--max-steps", str(STEPS), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "previous checkpoint is intact" in err and len(err.splitlines()) == 1
    assert checkpoint.load(out).config["progress"]["step"] == before
    load(out)
    monkeypatch.undo()
    _recovers(out, text, reference)
    monkeypatch.setattr("rnnlab.io.os.fdopen", _FullDisk(room=0))  # a new run on a full disk: one line, no run
    assert main(_argv(text, tmp_path / "new")) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not checkpoint.is_checkpoint(tmp_path / "new")


def test_one_writer_per_run_folder(text, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):  # another process (here: another open of the lock) is training into it
        assert main(_argv(text, out)) == 2
        assert "is being trained by process" in capsys.readouterr().err
    assert not checkpoint.is_checkpoint(out)
    out.mkdir()
    (out / ".lock").write_text("process 999999")  # left by a process that died: taken over
    assert main(_argv(text, out)) == 0


def test_a_second_process_on_the_same_folder_is_refused(text, tmp_path):
    out = tmp_path / "run"
    slow = [sys.executable, "-m", "rnnlab", *_argv(text, out, steps=100_000)]
    first = subprocess.Popen(slow, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not checkpoint.is_checkpoint(out) and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run(
            [sys.executable, "-m", "rnnlab", "train", "--out", str(out), "--resume", "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and f"being trained by process {first.pid}" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    load(out)
