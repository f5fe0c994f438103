"""Timing helpers for the benchmarks: interleaved repeats and medians (the machine is shared and noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _wait() -> None:
    """Wait for queued GPU work (CUDA runs kernels asynchronously: without this a call would be timed
    when its kernels were queued, not when they finished)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def interleaved_medians(fns: dict[str, Callable[[], None]], repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn so that load spikes hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _wait()
            t0 = time.perf_counter()
            fn()
            _wait()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
