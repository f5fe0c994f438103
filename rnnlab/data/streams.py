"""Contiguous batches of a token stream, for truncated backpropagation through time.

The stream of N tokens is cut into B rows that each continue where the row's previous batch
stopped, so the hidden state left by batch k is the right starting state for batch k+1::

    stream:  t0 t1 t2 ... t_{N-1}
    rows:    row b holds tokens [o + b*S, o + (b+1)*S)        S = tokens per row, o = epoch offset
    batch k: inputs  = rows[:, k*T : (k+1)*T]                 (B, T)
             targets = the same positions shifted one token on (B, T)

The trainer carries the state from batch to batch and detaches it (gradients stop at the batch
boundary: that is the truncation), and resets it when ``batch.reset`` says a new epoch started.
Each epoch starts at a random offset o in [0, T), so batch boundaries fall in new places.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from rnnlab.errors import DataError


@dataclass
class StreamBatch:
    inputs: Tensor  # (B, T) token ids
    targets: Tensor  # (B, T) the next token at every position
    reset: bool  # True when rows start afresh: the carried state must be dropped
    keep_rows: slice | None = None  # if set, only these rows of the carried state go on

    @property
    def num_tokens(self) -> int:
        return self.targets.numel()


class StreamBatches:
    """Training batches as a deterministic function of the step number (so a resumed run sees
    exactly the batches an uninterrupted one would)."""

    def __init__(self, tokens: Tensor, batch_size: int, seq_len: int, seed: int = 0) -> None:
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
        self.row_len = (len(tokens) - 1 - (seq_len - 1)) // batch_size  # S, leaving room for offsets
        self.per_epoch = self.row_len // seq_len
        if self.per_epoch < 1:
            need = batch_size * seq_len + seq_len
            raise DataError(
                f"the training text is too short for one batch: {len(tokens)} characters, need at "
                f"least {need} for --batch-size {batch_size} and --seq-len {seq_len}; "
                "use a longer text or smaller values"
            )
        self._epoch, self._rows = -1, None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.per_epoch

    def offset(self, epoch: int) -> int:
        return int(np.random.default_rng([self.seed, epoch]).integers(0, self.seq_len))

    def batch(self, step: int) -> StreamBatch:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            o, n = self.offset(epoch), self.batch_size * self.row_len
            inputs = self.tokens[o : o + n].view(self.batch_size, self.row_len)  # (B, S)
            targets = self.tokens[o + 1 : o + n + 1].view(self.batch_size, self.row_len)
            self._epoch, self._rows = epoch, (inputs, targets)
        inputs, targets = self._rows
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return StreamBatch(inputs[:, cols], targets[:, cols], reset=k == 0)


def eval_batches(tokens: Tensor, batch_size: int, seq_len: int) -> Iterator[StreamBatch]:
    """The whole stream once, in order, as (B, <=T) batches with the state meant to be carried.

    Every token but the first is a target exactly once. The few tokens (< B) that do not fill a
    row come last, as a one-row batch that continues the last row (``keep_rows``).
    """
    batch_size = max(1, min(batch_size, len(tokens) - 1))
    row_len = (len(tokens) - 1) // batch_size
    n = batch_size * row_len
    inputs = tokens[:n].view(batch_size, row_len)
    targets = tokens[1 : n + 1].view(batch_size, row_len)
    for start in range(0, row_len, seq_len):
        cols = slice(start, start + seq_len)
        yield StreamBatch(inputs[:, cols], targets[:, cols], reset=start == 0)
    if n + 1 < len(tokens):
        last = slice(batch_size - 1, batch_size)
        yield StreamBatch(tokens[n:-1][None], tokens[n + 1 :][None], reset=False, keep_rows=last)
