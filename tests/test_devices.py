"""Devices, precision and several processes: what a CPU-only machine can check (tests/test_gpu.py
holds the rest, on CUDA)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.device import resolve_device, to_device
from rnnlab.errors import ConfigError
from rnnlab.tasks import load

ROOT = Path(__file__).resolve().parents[1]
V1 = Path(__file__).parent / "fixtures" / "v1"
TINY = ["--hidden", "16", "--embedding", "8", "--seq-len", "16", "--batch-size", "4", "--quiet", "--sample-length", "0"]


@pytest.fixture(scope="module")
def text(tmp_path_factory, shakespeare) -> Path:
    path = tmp_path_factory.mktemp("dev") / "small.txt"
    path.write_text(shakespeare[:20_000], encoding="utf-8")
    return path


def test_cpu_and_auto_say_which_device_first(text, tmp_path, capsys):
    for name in ("cpu", "auto"):
        argv = ["train", "--text", str(text), "--max-steps", "2", "--device", name, "--out", str(tmp_path / name), *TINY]
        assert main(argv) == 0
        first = capsys.readouterr().out.splitlines()[0]
        expected = "cpu" if name == "cpu" else str(resolve_device("auto"))
        assert first.startswith(f"device: {expected}")
    assert main(["eval", str(tmp_path / "cpu"), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("device: cpu\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_that_is_not_there_is_one_line(text, tmp_path, capsys):
    for argv in (
        ["train", "--text", str(text), "--max-steps", "1", "--device", "cuda", "--out", str(tmp_path / "o"), *TINY],
        ["sample", str(V1 / "charlm"), "--device", "cuda:3"],
        ["eval", str(V1 / "charlm"), "--device", "tpu"],
        ["train", "--text", str(text), "--max-steps", "1", "--precision", "fp16", "--out", str(tmp_path / "o"), *TINY],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("rnnlab: error:") and ("device" in err or "fp16" in err), err


def test_bf16_mixed_precision_trains_on_the_cpu(text, tmp_path):
    argv = ["train", "--text", str(text), "--max-steps", "60", "--eval-every", "60", "--lr", "1e-2", "--warmup", "5"]
    argv += ["--precision", "bf16"]
    assert main([*argv, "--out", str(tmp_path / "bf16"), *TINY]) == 0
    rows = checkpoint.load(tmp_path / "bf16").metrics()
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5  # it learns (from about 4.1 nats/char)
    weights = checkpoint.load(tmp_path / "bf16").model_state()
    assert all(w.dtype == torch.float32 for w in weights.values())  # the weights stay float32


def test_a_checkpoint_moves_between_devices(tmp_path):
    run = load(V1 / "charlm", device="cpu")
    assert next(run.model.parameters()).device.type == "cpu"
    assert run.sample("ROMEO:", 10, seed=1) == load(V1 / "charlm", device=resolve_device("cpu")).sample("ROMEO:", 10, seed=1)


def test_batches_move_with_what_was_added_to_them():
    from rnnlab.data.streams import StreamBatch

    batch = StreamBatch(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), reset=True)
    batch.sampling_prob = 0.25
    moved = to_device(batch, torch.device("cpu"))
    assert moved.sampling_prob == 0.25 and moved.inputs.device.type == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")


# ---------------------------------------------------------------- torchrun
def _torchrun(nproc: int, argv: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "rnnlab"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize(
    "task, flags",
    [
        ("charlm", ["--text", "{text}", "--hidden", "16", "--embedding", "8", "--seq-len", "16", "--sample-length", "0"]),
        ("classify", ["--csv", str(V1 / "data/reviews.csv"), "--hidden", "8", "--embedding", "8", "--dropout", "0"]),
    ],
)
def test_two_processes_train_as_one(task, flags, text, tmp_path):
    """torchrun with 2 processes (gloo on the CPU), each on half of every batch of 8: the per-step
    losses equal those of one process with the whole batch; resuming under 2 processes goes on; only
    rank 0 writes (one TensorBoard log, one metrics row per step)."""
    flags = [f.replace("{text}", str(text)) for f in flags]
    common = ["train", task, *flags, "--batch-size", "8", "--eval-every", "6", "--quiet", "--device", "cpu"]
    one = subprocess.run(
        [sys.executable, "-m", "rnnlab", *common, "--max-steps", "12", "--out", str(tmp_path / "one")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(2, [*common, "--max-steps", "12", "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 12
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5, (a, b)
    assert two.stdout.count("saved ") == 1  # rank 0 alone reports
    assert len(list((tmp_path / "two" / "tensorboard").glob("events.*"))) <= 1
    resumed = _torchrun(2, ["train", task, "--out", str(tmp_path / "two"), "--resume", "--max-steps", "16", "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["step"] for r in checkpoint.load(tmp_path / "two").metrics()] == list(range(1, 17))


def test_batches_made_by_workers_are_the_same(tmp_path, shakespeare):
    """Worker processes make each step's batch ahead; training gives bit-identical weights."""
    from rnnlab.data.prefetch import Prefetched
    from rnnlab.data.streams import StreamBatches
    from rnnlab.data.vocab import CharVocab

    tokens = CharVocab.from_text(shakespeare).encode(shakespeare[:20_000])
    direct, ahead = StreamBatches(tokens, 4, 16, seed=3), Prefetched(StreamBatches(tokens, 4, 16, seed=3), workers=2)
    try:
        for step in (0, 1, 2, 7, 8, 300):  # in order, then a jump (a resumed run)
            a, b = direct.batch(step), ahead.batch(step)
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) and a.reset == b.reset
    finally:
        ahead.close()
    text = tmp_path / "t.txt"
    text.write_text(shakespeare[:20_000])
    common = ["train", "--text", str(text), "--max-steps", "8", "--eval-every", "4", *TINY]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--workers", "2", "--out", str(tmp_path / "workers")]) == 0
    a, b = (checkpoint.load(tmp_path / name).model_state() for name in ("plain", "workers"))
    assert all(torch.equal(a[k], b[k]) for k in a)
