"""Batches made ahead of training in worker processes, for data that is expensive to prepare
(audio features, image augmentation) while the model trains on a GPU.

    batches = Prefetched(SpeechBatches(...), workers=4)    # batch(step) as before, made in advance

A Batches object's ``batch(step)`` is a deterministic function of the step (that is what makes a
resumed run exact), so workers can compute any step's batch ahead of time and the result is the
same tensors as computed in place: training gives the same weights with and without workers
(tested). The workers start with a copy of the Batches object (spawned processes, so no thread
state is inherited) and always work ``ahead`` steps in front of the step being trained.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

_batches = None  # in a worker: its copy of the Batches object


def _start(batches) -> None:
    global _batches
    import torch

    torch.set_num_threads(1)  # the trainer's process has the cores; a worker makes one batch at a time
    _batches = batches


def _make(step: int):
    return _batches.batch(step)


class Prefetched:
    """``batches`` with its batches made by ``workers`` processes, ``ahead`` steps in advance."""

    def __init__(self, batches, workers: int, ahead: int | None = None) -> None:
        self.batches, self.ahead = batches, ahead or 2 * workers
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(batches,))
        self.pending: dict[int, Future] = {}

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, step: int):
        for ahead in range(step, step + self.ahead + 1):
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(_make, ahead)
        for old in [s for s in self.pending if s < step]:  # a resumed run starts elsewhere
            self.pending.pop(old).cancel()
        return self.pending.pop(step).result()

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
