"""No traceback for any input: divergence caught, sizes checked against memory, bounded reads and
decoding, everyday mistakes answered in one line, and flags and config.json fields fuzzed."""

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab import checkpoint
from rnnlab.cli import main

V1 = Path(__file__).parent / "fixtures" / "v1"
TINY = ["--hidden", "8", "--embedding", "4", "--seq-len", "8", "--batch-size", "2", "--quiet", "--sample-length", "0"]


@pytest.fixture(scope="module")
def text(tmp_path_factory, shakespeare) -> Path:
    path = tmp_path_factory.mktemp("bad") / "small.txt"
    path.write_text(shakespeare[:3000], encoding="utf-8")
    return path


def _one_line(capsys, argv, code=2, message=""):
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("rnnlab: warning")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- divergence
def test_a_diverging_run_stops_and_saves_nothing_non_finite(text, tmp_path, capsys):
    out = tmp_path / "run"
    line = _one_line(capsys, ["train", "--text", text, "--lr", "1e38", "--max-steps", "40", "--out", out, *TINY])
    assert "training diverged" in line and "--lr" in line
    config = (out / "config.json").read_text() if (out / "config.json").exists() else "{}"
    assert "NaN" not in config and "Infinity" not in config
    if checkpoint.is_checkpoint(out):
        for name in ("model.safetensors", "best.safetensors"):
            weights, _ = checkpoint.load(out).tensors(name)
            assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_loss_far_above_its_start_is_warned_about(text, tmp_path, capsys):
    argv = ["train", "--text", text, "--lr", "30", "--warmup", "0", "--max-steps", "30", "--out", tmp_path / "r", *TINY]
    main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert err.count("is far above where it started") == 1 and "Traceback" not in err


def test_weights_that_are_not_finite_are_refused(tmp_path, capsys):
    run = tmp_path / "nan"
    shutil.copytree(V1 / "charlm", run)
    weights, _ = checkpoint.load(run).tensors("best.safetensors")
    weights = {k: torch.full_like(v, math.nan) for k, v in weights.items()}
    data = checkpoint.tensors_to_bytes(weights)
    (run / "best.safetensors").write_bytes(data)
    config = json.loads((run / "config.json").read_text())
    config["files"]["best.safetensors"] = __import__("hashlib").sha256(data).hexdigest()
    (run / "config.json").write_text(json.dumps(config))
    _one_line(capsys, ["eval", run, "--text", V1 / "data/shakespeare.txt"], message="NaN or infinite")


# ---------------------------------------------------------------- bounded resources
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--layers", "1000000"], "num_layers must be in [1, 64]"),
        (["--hidden", "10000000"], "parameters needs about"),
        (["--embedding", "1000000000"], "parameters needs about"),
        (["--text", "/dev/zero"], "not a regular file"),
    ],
)
def test_sizes_are_checked_before_anything_is_allocated(flags, message, tmp_path, capsys, text):
    argv = ["train", "--text", text, "--max-steps", "1", "--out", tmp_path / "o", *TINY, *flags]
    started = time.perf_counter()
    _one_line(capsys, argv, message=message)
    assert time.perf_counter() - started < 30


def test_a_config_json_declaring_a_huge_model_is_refused(tmp_path, capsys):
    run = tmp_path / "huge"
    shutil.copytree(V1 / "charlm", run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden_size"] = 10**7
    (run / "config.json").write_text(json.dumps(config))
    _one_line(capsys, ["sample", run], message="parameters needs about")


def test_beams_are_bounded(capsys):
    _one_line(capsys, ["translate", V1 / "translator", "ein Mann", "--beam", "1000000"], message="beam width")
    _one_line(
        capsys, ["transcribe", V1 / "transcriber", V1 / "data/fsdd/3_yweweler_0.wav", "--beam", "1000000"], message="beam"
    )


def test_a_very_long_text_is_translated_in_bounded_time(capsys):
    sentence = ("ein Mann fährt Fahrrad und eine Frau liest ein Buch " * 1000).strip()  # 10,000 words, no stop
    started = time.perf_counter()
    assert main(["translate", str(V1 / "translator"), sentence]) == 0
    assert time.perf_counter() - started < 120  # about 20 s here alone; a hang or a quadratic cost would take far longer
    assert len(capsys.readouterr().out.split()) > 100


def test_long_audio_is_transcribed_in_time_linear_in_its_length(tmp_path, capsys):
    import soundfile as sf

    rng = np.random.default_rng(0)
    times = {}
    for minutes in (1, 4):
        path = tmp_path / f"{minutes}.wav"
        sf.write(path, (rng.standard_normal(8000 * 60 * minutes) * 0.05).astype(np.float32), 8000)
        started = time.perf_counter()
        assert main(["transcribe", str(V1 / "transcriber"), str(path)]) == 0
        times[minutes] = time.perf_counter() - started
    capsys.readouterr()
    assert times[4] < 8 * times[1] + 5 and times[4] < 60, times  # linear (4x the audio), not quadratic


# ---------------------------------------------------------------- everyday mistakes
def test_everyday_mistakes(tmp_path, capsys, text):
    train = ["train", "--text", text, "--max-steps", "1", *TINY]
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line(capsys, [*train, "--out", afile], message="is a file")
    _one_line(capsys, [*train, "--out", afile / "run"], message="cannot write the run folder")
    _one_line(capsys, [*train, "--seed", "-1", "--out", tmp_path / "o"], message="seed must be >= 0")
    _one_line(capsys, [*train, "--val-fraction", "nan", "--out", tmp_path / "o"], message="expected a finite number")
    _one_line(capsys, [*train, "--weight-decay", "nan", "--out", tmp_path / "o"], message="expected a finite number")
    _one_line(capsys, ["explain", V1 / "charlm", "--text", text, "--out", afile], message="is a file")
    _one_line(capsys, ["experiment", "memory", "--out", afile], message="is a file")
    one_each = tmp_path / "one_each.csv"
    one_each.write_text("text,label\na good film,pos\na bad film,neg\n")
    code = main(["train", "classify", "--csv", str(one_each), "--max-steps", "2", "--out", str(tmp_path / "c"), "--quiet"])
    assert code in (0, 2) and "Traceback" not in capsys.readouterr().err
    series = tmp_path / "s.csv"
    series.write_text("t,v\n" + "\n".join(f"{i},{(i % 7) + 1}" for i in range(60)) + "\n")
    argv = ["train", "forecast", "--csv", series, "--season", "500", "--window", "4", "--max-steps", "2", "--quiet"]
    _one_line(capsys, [*argv, "--out", tmp_path / "f"], message="season")
    series.write_text("t,v\n" + "\n".join(f"{i},{1e308 * (-1) ** i}" for i in range(60)) + "\n")
    _one_line(capsys, [*argv[:4], "--window", "4", "--max-steps", "2", "--out", tmp_path / "g"], message="overflow")
    import soundfile as sf

    sf.write(tmp_path / "nan.wav", np.full(8000, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    _one_line(capsys, ["transcribe", V1 / "transcriber", tmp_path / "nan.wav"], message="NaN")
    bomb = tmp_path / "bomb.png"  # a tiny PNG whose header claims 40000 x 40000 pixels
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    _one_line(capsys, ["caption", V1 / "captioner", bomb], message="bomb")
    run = tmp_path / "listfiles"
    shutil.copytree(V1 / "charlm", run)
    config = json.loads((run / "config.json").read_text())
    config["files"] = list(config["files"])
    (run / "config.json").write_text(json.dumps(config))
    _one_line(capsys, ["sample", run], message="checkpoint has no")


def test_an_unexpected_error_is_one_line_and_a_log(monkeypatch, tmp_path, capsys, text):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("rnnlab.tasks.charlm.CharLMTask.fit", broken)
    out = tmp_path / "run"
    line = _one_line(capsys, ["train", "--text", text, "--max-steps", "1", "--out", out, *TINY], code=1, message="internal")
    log = Path(line.split("traceback in ")[1].split(";")[0])
    assert "ZeroDivisionError: a bug" in log.read_text()
    log.unlink()


# ---------------------------------------------------------------- fuzzing
NUMBERS = st.sampled_from(["-1", "0", "1", "2", "3", "1e-9", "0.5", "nan", "inf", "-inf", "1e38", "1000000000000", "x", ""])
PATHS = st.sampled_from(["/dev/zero", "/nonexistent/file", "/", "tests", "README.md", "pyproject.toml"])


def _flags(task: str):
    from rnnlab.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices[task]
    return [a for a in sub._actions if a.option_strings and a.dest not in ("help", "out", "resume", "quiet")]


def _value(action):
    if action.nargs == 0:
        return st.just([])
    values = PATHS if (action.metavar or "") in ("FILE", "DIR", "TAR") else NUMBERS
    if action.choices:
        values = st.sampled_from([*action.choices, "bogus"])
    count = action.nargs if isinstance(action.nargs, int) else 1
    return st.lists(values, min_size=count, max_size=count)


@st.composite
def train_argv(draw, task: str, base: list[str]):
    chosen = draw(st.lists(st.sampled_from(_flags(task)), max_size=4, unique_by=lambda a: a.dest))
    argv = ["train", task, *base]
    for action in chosen:
        argv += [action.option_strings[0], *draw(_value(action))]
    return argv + ["--max-steps", "1", "--eval-every", "1", "--quiet"]  # whatever else was drawn: one step


BASES = {
    "charlm": ["--text", "{text}", "--hidden", "8", "--embedding", "4", "--seq-len", "8", "--batch-size", "2"],
    "classify": ["--csv", str(V1 / "data/reviews.csv"), "--hidden", "4", "--embedding", "4"],
    "tag": ["--conll", str(V1 / "data/chunks.txt"), "--hidden", "4", "--embedding", "4"],
    "forecast": ["--csv", str(V1 / "data/airline.csv"), "--hidden", "4"],
}


@pytest.mark.parametrize("task", list(BASES))
def test_fuzzed_training_flags_exit_0_or_2(task, text, tmp_path_factory, capsys):
    base = [a.replace("{text}", str(text)) for a in BASES[task]]

    @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(train_argv(task, base))
    def check(argv):
        out = tmp_path_factory.mktemp("fuzz") / "run"
        try:
            code = main([*argv, "--out", str(out)])
        except SystemExit as e:  # argparse's own refusals
            code = e.code
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err and "internal error" not in err, (argv, err)

    check()


def _paths(value, prefix=()):
    """Every (path, leaf) of a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list) and value and not isinstance(value[0], str):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix, value


LEAVES = st.sampled_from([None, "x", -1, 0, 10**12, 1.5, math.inf, True, [], {}, [1, "a"]])


@pytest.mark.parametrize("kind", ["charlm", "classifier", "forecaster"])
def test_fuzzed_config_json_fields_exit_0_or_2(kind, tmp_path_factory, capsys):
    commands = {
        "charlm": ["sample", "{run}", "--length", "5"],
        "classifier": ["eval", "{run}", "--csv", str(V1 / "data/reviews.csv")],
        "forecaster": ["predict", "{run}", "--csv", str(V1 / "data/airline.csv")],
    }[kind]
    original = json.loads((V1 / kind / "config.json").read_text())
    paths = [p for p, _ in _paths(original) if p]

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(paths), LEAVES)
    def check(path, leaf):
        run = tmp_path_factory.mktemp("cfg") / kind
        shutil.copytree(V1 / kind, run)
        config = json.loads(json.dumps(original))
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = leaf
        (run / "config.json").write_text(json.dumps(config, allow_nan=True))
        code = main([a.replace("{run}", str(run)) for a in commands])
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err and "internal error" not in err, (path, leaf, err)

    check()


@pytest.fixture(autouse=True)
def _no_crash_logs_left(tmp_path):
    yield
    for log in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"rnnlab-crash-{os.getpid()}.log"):
        log.unlink()
