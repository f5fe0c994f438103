"""The trainer and the character-model task: it learns, it is deterministic, resume is exact."""

import os
import signal
from pathlib import Path

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.data.streams import StreamBatches
from rnnlab.decoding import SamplingOptions
from rnnlab.errors import ConfigError, DataError
from rnnlab.experiments.hello import HelloResult, TextbookResult, train_hello, train_textbook
from rnnlab.io import atomic_write
from rnnlab.tasks import charlm, load, make_options, train
from rnnlab.train import TrainConfig, lr_at

KOREAN = "동해 물과 백두산이 마르고 닳도록 하느님이 보우하사 우리나라 만세.\n" * 40


@pytest.fixture(scope="module")
def small_text(tmp_path_factory, shakespeare) -> Path:
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(shakespeare[:200_000], encoding="utf-8")
    return path


def _options(text, steps, **train_options):
    return make_options(
        charlm.TASK,
        model={"hidden_size": 48, "embedding_dim": 16, "num_layers": 2, "dropout": 0.1},
        data={"text": str(text), "seq_len": 32, "batch_size": 8},
        train={"max_steps": steps, "eval_every": 5, "warmup_steps": 3, "lr": 3e-3, **train_options},
    )


def _train(options, out, resume=False):
    """(TrainResult, the loaded run) of training the character model; resuming keeps ``options``' budget."""
    budget = (options.train.max_steps, options.train.max_minutes) if resume else None
    trained = train(charlm.TASK, options, out, resume=resume, budget=budget, progress=False)
    return trained.result, trained.run


def _weights(run_dir) -> dict:
    return checkpoint.load(run_dir).model_state()


def test_hello_reaches_100_percent():
    result = train_hello()
    assert HelloResult.accuracy(result.before) < 1.0
    assert HelloResult.accuracy(result.after) == 1.0
    assert result.losses[-1] < 0.05 < result.losses[0]


def test_textbook_hello_reaches_100_percent():
    """The slide's RNN: one-hot [h, e, l, o], 3 hidden units; 25% before training, 100% after."""
    result = train_textbook()
    assert TextbookResult.accuracy(result.before) < 1.0
    assert TextbookResult.accuracy(result.after) == 1.0
    assert result.losses[-1] < 0.05 < result.losses[0]
    assert [len(s.h) for s in result.after] == [3] * 4 and [len(s.y) for s in result.after] == [4] * 4
    assert [s.predicted for s in result.after] == list("ello")


def test_character_model_learns_real_text(small_text, tmp_path):
    """200k characters of Shakespeare, 300 steps of a small LSTM: well below the ~3.3 nats/char of
    letter frequencies alone (measured 2.03)."""
    options = make_options(
        charlm.TASK,
        model={"hidden_size": 128},
        data={"text": str(small_text), "seq_len": 64, "batch_size": 32},
        train={"max_steps": 300, "eval_every": 100, "lr": 5e-3},
    )
    result, run = _train(options, tmp_path / "run")
    assert result.metrics["val_loss"] < 2.2
    rows = checkpoint.load(tmp_path / "run").metrics()
    assert len(rows) == 300 and rows[0]["loss"] > 3.5 and "grad_norm" in rows[0]
    assert {"val_loss", "val_bpc", "tokens_per_s"} <= set(rows[99])


def test_same_seed_same_weights(small_text, tmp_path):
    _train(_options(small_text, 12), tmp_path / "a")
    _train(_options(small_text, 12), tmp_path / "b")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


class _SignalAt:
    """Batches that deliver a real SIGINT to this process when a given step is requested."""

    def __init__(self, inner: StreamBatches, step: int, signum=signal.SIGINT):
        self.inner, self.step, self.signum = inner, step, signum

    def __len__(self):
        return len(self.inner)

    def batch(self, step):
        if step == self.step:
            os.kill(os.getpid(), self.signum)
        return self.inner.batch(step)


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-interval, and right on an evaluation step
def test_interrupted_and_resumed_equals_uninterrupted(small_text, tmp_path, monkeypatch, stop_at):
    steps = 16
    _train(_options(small_text, steps), tmp_path / "whole")

    real = charlm.StreamBatches
    monkeypatch.setattr(charlm, "StreamBatches", lambda *a, **k: _SignalAt(real(*a, **k), stop_at))
    result, _ = _train(_options(small_text, steps), tmp_path / "split")
    assert result.interrupted == signal.SIGINT
    assert result.step == stop_at + 1  # the step in flight finishes, then it saves
    monkeypatch.setattr(charlm, "StreamBatches", real)

    result, _ = _train(_options(small_text, steps), tmp_path / "split", resume=True)
    assert result.step == steps and result.interrupted is None
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    rows = checkpoint.load(tmp_path / "split").metrics()
    assert [r["step"] for r in rows] == list(range(1, steps + 1))


def test_resume_can_extend_the_budget(small_text, tmp_path):
    _train(_options(small_text, 6), tmp_path / "run")
    result, _ = _train(_options(small_text, 9), tmp_path / "run", resume=True)
    assert result.step == 9


def test_existing_run_is_never_overwritten(small_text, tmp_path):
    _train(_options(small_text, 3), tmp_path / "run")
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        _train(_options(small_text, 3), tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_resume_refuses_a_changed_text(small_text, tmp_path):
    _train(_options(small_text, 3), tmp_path / "run")
    config = checkpoint.load(tmp_path / "run").config
    changed = tmp_path / "changed.txt"
    changed.write_text(small_text.read_text()[:-10])
    config["options"]["data"]["text"] = str(changed)
    atomic_write(tmp_path / "run" / "config.json", __import__("json").dumps(config).encode())
    with pytest.raises(DataError, match="changed since the run"):
        _train(_options(small_text, 6), tmp_path / "run", resume=True)


def test_korean_text_trains_samples_and_scores(tmp_path):
    path = tmp_path / "ko.txt"
    path.write_text(KOREAN, encoding="utf-8")
    options = make_options(
        charlm.TASK,
        model={"hidden_size": 64, "embedding_dim": 16},
        data={"text": str(path), "seq_len": 16, "batch_size": 4},
        train={"max_steps": 150, "eval_every": 50, "lr": 1e-2},
    )
    result, _ = _train(options, tmp_path / "run")
    run = load(tmp_path / "run")
    text = run.sample("동해 물과", 40, SamplingOptions(temperature=0), seed=0)
    assert text.startswith(" 백두산이"), text  # a repeated line is learned exactly
    assert all(c in run.vocab for c in text)
    score = run.score_text(KOREAN[:200])
    assert score.chars == 199 and score.nats_per_char < 1.0  # uniform over the symbols: 3.4
    assert result.metrics["val_loss"] < 1.0


def test_sampling_is_repeatable_and_respects_top_k(small_text, tmp_path):
    _train(_options(small_text, 5), tmp_path / "run")
    run = load(tmp_path / "run")
    a = run.sample("ROMEO:", 50, SamplingOptions(0.9, top_k=5), seed=1)
    b = run.sample("ROMEO:", 50, SamplingOptions(0.9, top_k=5), seed=1)
    assert a == b and len(a) == 50


def test_learning_rate_schedule():
    c = TrainConfig(lr=1.0, warmup_steps=10, final_lr_ratio=0.1, max_steps=100)
    assert lr_at(c, 1, 0.0) == pytest.approx(0.1)
    assert lr_at(c, 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + __import__("math").cos(0.1 * 3.141592653589793)))
    assert lr_at(c, 100, 1.0) == pytest.approx(0.1)
    assert lr_at(c, 50, 0.5) == pytest.approx(0.55)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "learning rate"),
        ({"max_steps": 0}, "max steps"),
        ({"clip_norm": -1.0}, "clip"),
        ({"max_steps": None}, "budget"),
    ],
)
def test_bad_training_config(kwargs, message):
    base = {"max_steps": 10}
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{**base, **kwargs})


class _ToyBatches:
    def __len__(self):
        return 10

    def batch(self, step):
        g = torch.Generator().manual_seed(step)
        from types import SimpleNamespace

        return SimpleNamespace(x=torch.randn(4, 3, generator=g), reset=True, num_tokens=4)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def loss(self, batch, carry=None):
        return self.lin(batch.x).pow(2).mean(), None


def test_best_weights_are_kept_and_patience_stops(tmp_path):
    from rnnlab.train import Trainer

    torch.manual_seed(0)
    model = _Toy()
    scripted = iter([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])
    seen = {}

    def evaluate(m):
        seen[len(seen) + 1] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"val_loss": next(scripted)}

    config = TrainConfig(max_steps=100, eval_every=2, patience=2, warmup_steps=0)
    trainer = Trainer(
        model, batches=_ToyBatches(), evaluate=evaluate, config=config, run_dir=tmp_path, kind="toy", describe=lambda: {}
    )
    result = trainer.fit()
    assert result.step == 10 and result.best_step == 4  # evaluations at 2, 4 (best), 6, 8, 10: 3 without a best
    assert result.best_metrics == {"val_loss": 2.0}
    ckpt = checkpoint.load(tmp_path)
    best, last = ckpt.best_state(), ckpt.model_state()
    assert all(torch.equal(best[k], seen[2][k]) for k in best)
    assert all(torch.equal(last[k], seen[5][k]) for k in last)


def test_tensorboard_events_are_written(small_text, tmp_path):
    pytest.importorskip("tensorboard")  # a test dependency: installed in CI
    _train(_options(small_text, 5), tmp_path / "run")
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000
