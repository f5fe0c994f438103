"""Padded, length-bucketed batches for whole sequences (classification, tagging).

Sequences of different lengths go into one (B, T_max[, ...]) tensor padded with zeros, with their
lengths beside them. Sorting the data into buckets of similar length keeps padding small; the
order of buckets and of sequences inside them is reshuffled every epoch from (seed, epoch), so the
batch for a step is a deterministic function of the step (exact resume).

With ``crop`` (for training), each sequence of a batch is instead cut to the batch's shortest
length, keeping its end: the batch then has no padding at all, and the recurrent layer runs its
fastest kernel rather than the packed one for ragged batches; as a batch holds sequences of nearly
equal length, little is cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import DataError


@dataclass
class PaddedBatch:
    inputs: Tensor  # (B, T[, K]) ids or (B, T, F) features, zero-padded
    lengths: Tensor  # (B,) int64
    labels: Tensor | None = None  # (B,) class per sequence (classification)
    targets: Tensor | None = None  # (B, T) label per step, IGNORE where there is none (tagging)
    index: Tensor | None = None  # (B,) position of each sequence in the dataset
    reset: bool = True  # no state is carried between these batches

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def pad(sequences: Sequence[Tensor], fill: float = 0) -> Tensor:
    """[(T_i, ...)] -> (B, T_max, ...) padded with ``fill``."""
    longest = max(len(s) for s in sequences)
    out = torch.full((len(sequences), longest, *sequences[0].shape[1:]), fill, dtype=sequences[0].dtype)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def make_batch(items: Sequence[Tensor], index: Sequence[int], labels=None, targets=None, ignore=-100) -> PaddedBatch:
    return PaddedBatch(
        inputs=pad(items),
        lengths=torch.tensor([len(s) for s in items], dtype=torch.int64),
        labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
        targets=None if targets is None else pad(targets, fill=ignore),
        index=torch.as_tensor(index, dtype=torch.int64),
    )


class BucketBatches:
    """Training batches over a list of sequences, bucketed by length and reshuffled per epoch.

    ``labels``: one class per sequence; ``targets``: one (T_i,) label tensor per sequence.
    """

    def __init__(
        self,
        items: Sequence[Tensor],
        batch_size: int,
        labels=None,
        targets=None,
        seed: int = 0,
        bucket_factor: int = 50,
        crop: bool = False,
    ) -> None:
        if len(items) == 0:
            raise DataError("no training sequences")
        if batch_size < 1:
            raise DataError(f"batch size must be positive, got {batch_size}")
        self.items, self.labels, self.targets = items, labels, targets
        self.batch_size, self.seed, self.bucket_factor, self.crop = batch_size, seed, bucket_factor, crop
        self.lengths = np.array([len(s) for s in items])
        self.per_epoch = max(1, len(items) // batch_size)  # drop the remainder: equal-sized steps
        self._epoch, self._order = -1, None

    def __len__(self) -> int:
        return self.per_epoch

    def _batches_of_epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.items))
        chunk = self.batch_size * self.bucket_factor  # sort by length inside chunks of many batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        batches = [b for b in batches if len(b) == self.batch_size][: self.per_epoch]
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, step: int) -> PaddedBatch:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._batches_of_epoch(epoch)
        idx = self._order[k % len(self._order)]
        items = [self.items[i] for i in idx]
        targets = None if self.targets is None else [self.targets[i] for i in idx]
        if self.crop:  # every sequence cut to the batch's shortest, keeping its end: no padding at all
            shortest = min(len(x) for x in items)
            items = [x[len(x) - shortest :] for x in items]
            targets = None if targets is None else [t[len(t) - shortest :] for t in targets]
        return make_batch(items, idx, labels=None if self.labels is None else [self.labels[i] for i in idx], targets=targets)


def eval_batches(items: Sequence[Tensor], batch_size: int, labels=None, targets=None) -> Iterator[PaddedBatch]:
    """Every sequence once, sorted by length (little padding), in batches; ``batch.index`` says which."""
    order = np.argsort([len(s) for s in items], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield make_batch(
            [items[i] for i in idx],
            idx,
            labels=None if labels is None else [labels[i] for i in idx],
            targets=None if targets is None else [targets[i] for i in idx],
        )
