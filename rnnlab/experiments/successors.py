"""Recurrent networks against their successors, at equal parameters and equal wall time:
``rnnlab experiment successors``.

The lectures: "RNNs cannot be parallelised over time; convolutional and attention models replaced
them." Measured here on the character-model task (the bundled Tiny Shakespeare, the first 90% to
train, the rest to validate), on this machine, through the same Trainer:

* the vanilla RNN, LSTM and GRU (one layer), minGRU (three layers: its recurrence is linear in h,
  so it gets its non-linearity from depth), a causal dilated convolution network
  (``rnnlab.models.conv``) and a small causal transformer (``rnnlab.models.transformer``);
* each sized (hidden units, channels, model width) to the same number of parameters;
* each trained for the same minutes with the same batches (32 rows of 128 characters, state
  carried between chunks where the model has one; the transformer reads each 128-character
  window on its own), the same AdamW, warm-up and cosine schedule, and clipping;
* validation loss (nats/char over the whole held-out part, read in windows of 128 as in training)
  about every 20 seconds, so the curve gives the loss after 2, 5 and 10 minutes of one run;
* the time of one training step (forward + backward, batch 16) as the window grows from 64 to
  1,024 characters: where "parallel over time" shows.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.data.streams import StreamBatches
from rnnlab.data.text import bundled_corpus
from rnnlab.data.vocab import CharVocab
from rnnlab.errors import ConfigError
from rnnlab.evaluation import score_tokens
from rnnlab.models.conv import ConvLM, ConvLMConfig
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.models.transformer import TransformerLM, TransformerLMConfig
from rnnlab.tasks.charlm import split_tokens
from rnnlab.train import TrainConfig, Trainer

MODELS = ("rnn", "lstm", "gru", "mingru", "conv", "transformer")
SEQ_LEN, BATCH = 128, 32
LENGTHS = (64, 128, 256, 512, 1024)


def _builder(name: str, vocab_size: int) -> tuple[Callable[[int], nn.Module], str, int]:
    """A function size -> model, what the size means, and the size's granularity."""
    if name in ("rnn", "lstm", "gru"):
        return lambda h: CharLM(CharLMConfig(vocab_size, cell=name, hidden_size=h)), "hidden", 1
    if name == "mingru":
        return lambda h: CharLM(CharLMConfig(vocab_size, cell="mingru", hidden_size=h, num_layers=3)), "hidden x3", 1
    if name == "conv":
        return lambda c: ConvLM(ConvLMConfig(vocab_size, channels=c)), "channels", 1
    if name == "transformer":
        return lambda d: TransformerLM(TransformerLMConfig(vocab_size, model_dim=d, heads=2)), "width", 2
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sized(name: str, vocab_size: int, params: int, seed: int = 0) -> tuple[nn.Module, str]:
    """The model ``name`` whose size puts its parameter count nearest ``params`` (a bisection: the
    count grows with the size), initialised from ``seed``, and a description such as "hidden 408"."""
    build, what, step = _builder(name, vocab_size)
    hi = 1  # in units of step: double until big enough, then bisect (no huge model is ever built)
    while parameters(build(hi * step)) < params:
        if hi * step >= 8192:
            raise ConfigError(f"{params:,} parameters is too many for this experiment")
        hi *= 2
    lo = max(1, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if parameters(build(mid * step)) < params:
            lo = mid + 1
        else:
            hi = mid
    candidates = [s for s in (lo - 1, lo) if s >= 1]
    best = min(candidates, key=lambda s: abs(parameters(build(s * step)) - params)) * step
    torch.manual_seed(seed)
    return build(best), f"{what} {best}"


def step_seconds(model: nn.Module, length: int, batch: int = 16, repeats: int = 5) -> float:
    """Median seconds of one training step (forward, cross-entropy, backward) on a (batch, length)
    window of random tokens."""
    vocab = model.head.out_features
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, vocab, (batch, length), generator=g)
    targets = torch.randint(0, vocab, (batch, length), generator=g)
    times = []
    for i in range(repeats + 1):
        started = time.perf_counter()
        logits, _ = model(inputs)
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        if i:  # the first call warms up
            times.append(time.perf_counter() - started)
    model.zero_grad(set_to_none=True)
    return statistics.median(times)


@dataclass
class Trained:
    name: str
    size: str  # e.g. "hidden 408"
    params: int
    steps: int
    tokens_per_second: float  # training, evaluation excluded
    curve: list[tuple[float, float]] = field(default_factory=list)  # (minutes, validation nats/char)
    step_seconds: dict[int, float] = field(default_factory=dict)  # window length -> one step, batch 16
    evaluation_seconds: float = 0.0  # spent evaluating, inside the wall-time budget
    budget_minutes: float = float("inf")

    def loss_at(self, minutes: float) -> float | None:
        """The validation loss of the last evaluation at or before ``minutes``; at the whole budget
        or beyond, the final one (which comes a moment after the budget runs out)."""
        if minutes >= self.budget_minutes and self.curve:
            return self.curve[-1][1]
        before = [loss for m, loss in self.curve if m <= minutes]
        return before[-1] if before else None


def train_one(
    name: str, params: int, minutes: float, seed: int = 0, max_steps: int | None = None, lengths=LENGTHS
) -> Trained:
    """Size ``name`` to ``params``, time its step over ``lengths``, then train it for ``minutes``
    (or ``max_steps``) on the bundled corpus, evaluating about every 20 seconds."""
    corpus = bundled_corpus()
    vocab = CharVocab.from_text(corpus)
    train_tokens, val_tokens = split_tokens(vocab.encode(corpus), 0.1)
    model, size = sized(name, len(vocab), params)
    timings = {length: step_seconds(model, length) for length in lengths}
    per_step = step_seconds(model, SEQ_LEN, batch=BATCH, repeats=2)
    model, _ = sized(name, len(vocab), params, seed)  # fresh weights, without the timing's gradients
    config = TrainConfig(
        max_minutes=minutes, max_steps=max_steps, eval_every=max(1, round(20 / per_step)), seed=seed, warmup_steps=100
    )
    result = Trained(name, size, parameters(model), 0, 0.0, step_seconds=timings, budget_minutes=minutes)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model,
            batches=StreamBatches(train_tokens, BATCH, SEQ_LEN, seed=seed),
            evaluate=lambda m: _evaluate(m, val_tokens, trainer, result),
            config=config,
            run_dir=Path(tmp),
            kind="successors",
            describe=lambda: {},
        )
        fitted = trainer.fit()
    result.steps = fitted.step
    result.tokens_per_second = fitted.step * BATCH * SEQ_LEN / max(fitted.elapsed - result.evaluation_seconds, 1e-9)
    return result


def _evaluate(model: nn.Module, val_tokens, trainer: Trainer, result: Trained) -> dict:
    started = time.perf_counter()
    loss = score_tokens(model, val_tokens, seq_len=SEQ_LEN).nats_per_char
    result.evaluation_seconds += time.perf_counter() - started
    result.curve.append((trainer.elapsed / 60, loss))
    return {"val_loss": loss}


def successors_experiment(
    models=MODELS, params: int = 800_000, minutes: float = 10.0, seed: int = 0, on_result=None
) -> list[Trained]:
    if params < 10_000 or not minutes > 0:
        raise ConfigError(f"need at least 10,000 parameters and positive minutes; got {params} and {minutes}")
    results = []
    for name in models:
        results.append(train_one(name, params, minutes, seed))
        if on_result:
            on_result(results[-1])
    return results


def table(results: list[Trained], marks=(2, 5, 10)) -> str:
    def loss(r, m):
        value = r.loss_at(m)
        return "-" if value is None else f"{value:.4f}"

    lines = [
        "| model | size | parameters | steps | training tokens/s | "
        + " | ".join(f"validation after {m:g} min" for m in marks)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(marks),
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.size} | {r.params:,} | {r.steps:,} | {r.tokens_per_second:,.0f} | "
            + " | ".join(loss(r, m) for m in marks)
            + " |"
        )
    return "\n".join(lines)


def length_table(results: list[Trained]) -> str:
    lengths = sorted({n for r in results for n in r.step_seconds})
    lines = [
        "| model | " + " | ".join(f"T = {n}" for n in lengths) + f" | T = {lengths[-1]} / T = {lengths[0]} |",
        "|---|" + "---|" * (len(lengths) + 1),
    ]
    for r in results:
        cells = [f"{1000 * r.step_seconds[n]:.0f} ms" for n in lengths]
        growth = r.step_seconds[lengths[-1]] / r.step_seconds[lengths[0]]
        lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {growth:.1f}x |")
    return "\n".join(lines)
