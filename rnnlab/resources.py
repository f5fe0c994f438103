"""Sizes checked against the memory they need, before anything is allocated.

    check_fits(task.build, config, training=True)   # ResourceError: what it would need, what the machine has

The model is built on PyTorch's "meta" device, which records shapes without allocating, to count
its parameters (in about a millisecond). Training holds each parameter about five times in float32 (the weights, their
gradients, AdamW's two moments, the copy of the best weights); using a model, about twice (the
weights and the state they are loaded from). Activations come on top and are not counted.
"""

from __future__ import annotations

import os

import torch

from rnnlab.errors import RnnlabError

BYTES_PER_PARAMETER = {True: 4 * 5, False: 4 * 2}  # training, using


class ResourceError(RnnlabError):
    """A size that cannot fit in this machine's memory."""


def available_bytes() -> int | None:
    """The memory the system can give a new process now (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parameter_count(build, config) -> int:
    """The parameters of ``build(config)``, counted without allocating them (on the meta device,
    with torch.nn.init's initialisers idle: on meta tensors they would only cost time)."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, _idle)
        with torch.device("meta"):
            model = build(config)
    except (RuntimeError, OverflowError) as e:  # "numel overflowed": sizes past what a tensor can hold
        raise ResourceError(f"the model's sizes are too large for any machine ({str(e).splitlines()[0]})") from None
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
    return sum(p.numel() for p in model.parameters())


def _idle(tensor, *args, **kwargs):
    return tensor


def check_fits(build, config, training: bool) -> int:
    """Refuse a model whose parameters (and, to train it, their gradients and optimiser moments) would
    not fit in the memory available; returns the parameter count."""
    count = parameter_count(build, config)
    need, have = count * BYTES_PER_PARAMETER[training], available_bytes()
    if have is not None and need > have:
        what = "train" if training else "load"
        raise ResourceError(
            f"a model of {count:,} parameters needs about {_size(need)} to {what}, but this machine has "
            f"{_size(have)} available; choose smaller sizes"
        )
    return count


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)
