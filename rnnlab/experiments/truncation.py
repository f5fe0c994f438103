"""How far back does truncated BPTT reach? ``rnnlab experiment truncation``.

The lectures: with truncated backpropagation through time the forward pass carries the hidden state
from chunk to chunk (it sees the whole past), but the gradient stops at each chunk's start, so a
dependency longer than the chunk length k is never *taught*.

The task: the memory experiment's "copy the first symbol" episodes (a signal symbol, L - 1
distractors, a query; the answer at the query is the signal, chance 1/8), laid end to end into one
endless stream per batch row, each row at its own phase. Training reads the stream in chunks of k
steps with the state carried across chunks and detached, as the character model trains; every k
gets the same number of steps. The gated cells start with the gate that keeps the state biased to
remember (bias 3: the memory experiment shows that without it they do not bridge 20 steps even
untruncated). Evaluation runs a long fresh stream with the state carried and no truncation, and
scores every query.

If the claim holds: a query whose signal lies inside its chunk teaches the network (a share
(k - L) / k of the queries, for L < k), and once it has learned to keep the signal it answers the
others too, whose signal was read in an earlier chunk; for L >= k no query is ever taught, and the
accuracy stays at chance whatever the forward state carries.

Second part: the character model (the bundled Tiny Shakespeare) at equal wall time for several k.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.cells import bias_to_remember
from rnnlab.data.streams import StreamBatches
from rnnlab.data.text import bundled_corpus
from rnnlab.data.tokens import IGNORE
from rnnlab.data.vocab import CharVocab
from rnnlab.errors import ConfigError
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.tasks.charlm import score_tokens, split_tokens
from rnnlab.train import TrainConfig, Trainer, detach_state

SIGNALS = 8  # chance = 1/8
DISTRACTORS = 8
QUERY = SIGNALS + DISTRACTORS
SYMBOLS = QUERY + 1
CHUNKS = (10, 25, 50, 100, 200)
LAGS = (5, 10, 20, 40, 80, 160)
CELLS = ("lstm", "gru")
REMEMBER_BIAS = 3.0


def episode_stream(rows: int, length: int, lag: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Episodes [signal, lag - 1 distractors, query] end to end, each row at a random phase:
    (inputs (rows, length), targets (rows, length): the signal at each query, IGNORE elsewhere)."""
    period = lag + 1
    episodes = length // period + 2
    signal = torch.randint(0, SIGNALS, (rows, episodes, 1), generator=generator)
    noise = torch.randint(SIGNALS, QUERY, (rows, episodes, lag - 1), generator=generator)
    query = torch.full((rows, episodes, 1), QUERY)
    inputs = torch.cat([signal, noise, query], dim=2).flatten(1)  # (rows, episodes * period)
    targets = torch.cat([torch.full((rows, episodes, lag), IGNORE), signal], dim=2).flatten(1)
    phase = torch.randint(0, period, (rows,), generator=generator)
    index = phase[:, None] + torch.arange(length)  # (rows, length)
    targets = targets.gather(1, index)
    targets[:, :lag] = IGNORE  # a query this early had its signal cut off by the phase
    return inputs.gather(1, index), targets


@dataclass
class DelayResult:
    cell: str
    chunk: int  # k, the truncation length
    lag: int  # L
    accuracy: float  # on a fresh stream, every query scored, state carried, no truncation
    seconds: float


@dataclass
class CharResult:
    chunk: int
    steps: int
    val_loss: float  # nats per character on the whole validation split
    minutes: float


def train_delay(cell: str, chunk: int, lag: int, steps: int, hidden: int, batch: int, seed: int) -> DelayResult:
    """Train on the episode stream for ``steps`` chunks of ``chunk`` steps (state carried, detached);
    score every query of a fresh stream read untruncated."""
    if lag < 2:
        raise ConfigError(f"a lag is at least 2 (a signal, distractors, a query); got {lag}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = CharLM(CharLMConfig(SYMBOLS, cell=cell, embedding_dim=16, hidden_size=hidden))
    bias_to_remember(model.rnn.cells[0], REMEMBER_BIAS)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    inputs, targets = episode_stream(batch, steps * chunk, lag, g)  # (B, steps * k)
    state = None
    for x, y in zip(inputs.split(chunk, dim=1), targets.split(chunk, dim=1)):
        logits, state = model(x, state=state)
        if (y != IGNORE).any():
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        state = detach_state(state)  # carried forward, cut for the gradient: truncated BPTT
    seconds = time.perf_counter() - started
    with torch.inference_mode():
        x, y = episode_stream(64, max(2000, 20 * (lag + 1)), lag, torch.Generator().manual_seed(10_000 + seed))
        predicted = model(x)[0].argmax(-1)  # one pass over the whole stream: no truncation
        queries = y != IGNORE
        accuracy = float((predicted[queries] == y[queries]).float().mean())
    return DelayResult(cell, chunk, lag, accuracy, seconds)


def charlm_at_chunk(chunk: int, minutes: float, hidden: int, seed: int) -> CharResult:
    """The character model trained ``minutes`` with truncation length ``chunk`` (batch 32)."""
    corpus = bundled_corpus()
    vocab = CharVocab.from_text(corpus)
    train_tokens, val_tokens = split_tokens(vocab.encode(corpus), 0.1)
    torch.manual_seed(seed)
    model = CharLM(CharLMConfig(len(vocab), hidden_size=hidden))
    config = TrainConfig(max_minutes=minutes, eval_every=10**9, seed=seed, lr=3e-3)
    with tempfile.TemporaryDirectory() as tmp:
        result = Trainer(
            model,
            batches=StreamBatches(train_tokens, 32, chunk, seed=seed),
            evaluate=lambda m: {"val_loss": score_tokens(m, val_tokens).nats_per_char},
            config=config,
            run_dir=Path(tmp),
            kind="truncation",
            describe=lambda: {},
        ).fit()
    return CharResult(chunk, result.step, result.metrics["val_loss"], result.elapsed / 60)


def truncation_experiment(
    cells=CELLS,
    chunks=CHUNKS,
    lags=LAGS,
    steps: int = 600,
    hidden: int = 64,
    batch: int = 64,
    seed: int = 0,
    on_result=None,
) -> list[DelayResult]:
    if steps < 1 or hidden < 1 or batch < 1 or min(chunks) < 1 or min(lags) < 2:
        raise ConfigError(f"need positive steps, hidden, batch and chunks, and lags >= 2; got {steps}, {hidden}, {batch}")
    results = []
    for cell in cells:
        for chunk in chunks:
            for lag in lags:
                result = train_delay(cell, chunk, lag, steps, hidden, batch, seed)
                results.append(result)
                if on_result:
                    on_result(result)
    return results


def table(results: list[DelayResult]) -> str:
    lags = sorted({r.lag for r in results})
    lines = ["| cell | truncation k | " + " | ".join(f"L = {lag}" for lag in lags) + " |", "|---|---|" + "---|" * len(lags)]
    for cell in dict.fromkeys(r.cell for r in results):
        for chunk in sorted({r.chunk for r in results if r.cell == cell}):
            row = {r.lag: r for r in results if r.cell == cell and r.chunk == chunk}
            lines.append(f"| {cell} | {chunk} | " + " | ".join(f"{100 * row[lag].accuracy:.0f}%" for lag in lags) + " |")
    return "\n".join(lines)


def charlm_table(results: list[CharResult]) -> str:
    lines = ["| truncation k | steps | minutes | validation nats/char |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.chunk} | {r.steps:,} | {r.minutes:.1f} | {r.val_loss:.4f} |")
    return "\n".join(lines)
