"""How far back does truncated BPTT reach? ``rnnlab experiment truncation``.

The lectures: with truncated backpropagation through time the forward pass carries the hidden state
from chunk to chunk (it sees the whole past), but the gradient stops at each chunk's start, so a
dependency longer than the chunk length k is never *taught*.

The task: an endless stream of random symbols (one of 8); at every step the answer is the symbol
read L steps earlier (chance 1/8). Training reads the stream in chunks of k steps with the state
carried across chunks and detached, as the character model trains; every k gets the same number of
training symbols. Evaluation runs one long fresh stream with the state carried and no truncation,
scoring every step, so a network that has learned "say what you read L steps ago" is right also
where the symbol was read in an earlier chunk.

If the claim holds: the answer at step j of a chunk has its symbol inside the chunk only when
j >= L, so for L < k some of each chunk's answers teach the delay (and the delay, once learned,
works at every step); for L >= k none does, and the accuracy stays at chance whatever the forward
state carries.

Second part: the character model (the bundled Tiny Shakespeare) at equal wall time for several k.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnlab.data.streams import StreamBatches
from rnnlab.data.text import bundled_corpus
from rnnlab.data.tokens import IGNORE
from rnnlab.data.vocab import CharVocab
from rnnlab.errors import ConfigError
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.tasks.charlm import score_tokens, split_tokens
from rnnlab.train import TrainConfig, Trainer, detach_state

SYMBOLS = 8
CHUNKS = (10, 25, 50)
LAGS = (5, 10, 20, 40, 80)
CELLS = ("lstm", "gru")


@dataclass
class DelayResult:
    cell: str
    chunk: int  # k, the truncation length
    lag: int  # L
    accuracy: float  # on a fresh stream, every step scored, state carried, no truncation
    seconds: float


@dataclass
class CharResult:
    chunk: int
    steps: int
    val_loss: float  # nats per character on the whole validation split
    minutes: float


def train_delay(cell: str, chunk: int, lag: int, tokens: int, hidden: int, batch: int, seed: int) -> DelayResult:
    """Train an LM-shaped recaller on the delay task with truncation length ``chunk``; score it untruncated."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = CharLM(CharLMConfig(SYMBOLS, cell=cell, embedding_dim=16, hidden_size=hidden))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    history = torch.full((batch, lag), IGNORE)  # the last `lag` symbols read (IGNORE before the stream starts)
    state = None
    for _ in range(max(1, tokens // (batch * chunk))):
        x = torch.randint(0, SYMBOLS, (batch, chunk), generator=g)
        with_history = torch.cat([history, x], dim=1)  # (B, lag + k)
        targets = with_history[:, :chunk]  # the symbol `lag` steps before each step
        logits, state = model(x, state=state)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = detach_state(state)  # carried forward, cut for the gradient: truncated BPTT
        history = with_history[:, -lag:] if lag else history
    seconds = time.perf_counter() - started
    test = torch.Generator().manual_seed(10_000 + seed)
    with torch.inference_mode():
        x = torch.randint(0, SYMBOLS, (64, 2000), generator=test)
        predicted = model(x)[0].argmax(-1)  # one pass over the whole stream: no truncation
        accuracy = float((predicted[:, lag:] == x[:, : x.shape[1] - lag]).float().mean())
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
    tokens: int = 400_000,
    hidden: int = 64,
    batch: int = 32,
    seed: int = 0,
    on_result=None,
) -> list[DelayResult]:
    if tokens < 1 or hidden < 1 or batch < 1 or min(chunks) < 1 or min(lags) < 1:
        raise ConfigError(f"need positive tokens, hidden, batch, chunks and lags; got {tokens}, {hidden}, {batch}")
    results = []
    for cell in cells:
        for chunk in chunks:
            for lag in lags:
                result = train_delay(cell, chunk, lag, tokens, hidden, batch, seed)
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
