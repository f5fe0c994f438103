"""Where a model runs and in what precision.

    device = resolve_device("auto")          # cuda, then mps, then cpu; "cuda:1", "cpu"... as asked
    batch = to_device(batch, device)         # every tensor field of a batch (a dataclass), moved
    with autocast(device, "bf16"):           # mixed precision: matrix products in bfloat16
        loss, carry = model.loss(batch, carry)

Precision: ``fp32`` (the default everywhere: float32 throughout), ``bf16`` (autocast to bfloat16,
on CUDA devices that support it and on CPU) or ``fp16`` (autocast to float16 with a gradient scaler,
CUDA only). Weights, optimiser moments and checkpoints stay float32 in every case.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Literal

import torch

from rnnlab.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]


def resolve_device(name: str = "auto") -> torch.device:
    """The device named ``auto`` (CUDA if present, then Apple's MPS, then the CPU), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``; one clear ConfigError when it is not on this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA device on this machine (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: no Apple MPS device on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    return device


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's weights are (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def describe(device: torch.device) -> str:
    """A line for the start of a run: which device, and what it is."""
    if device.type == "cuda":
        return f"device: {device} ({torch.cuda.get_device_name(device)})"
    return f"device: {device}"


def to_device(batch, device: torch.device):
    """``batch`` with every tensor (in a dataclass's fields, a tuple or a list) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: to_device(getattr(batch, f.name), device) for f in dataclasses.fields(batch)}
        changes = {k: v for k, v in changes.items() if v is not getattr(batch, k)}
        if not changes:  # already there (on the CPU, always)
            return batch
        moved = dataclasses.replace(batch, **changes)
        for key, value in vars(batch).items():  # attributes set after construction (sampling_prob...)
            if not hasattr(moved, key):
                setattr(moved, key, value)
        return moved
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(x, device) for x in batch)
    return batch


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA device (its gradient scaler); use bf16 on this machine")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use fp16")


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    """A gradient scaler for fp16 (small gradients would underflow in float16), else None."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The random states to save with a checkpoint: the CPU's, and the CUDA device's when it is used."""
    states = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["rng.cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in states:
        torch.cuda.set_rng_state(states["rng.cuda"], device)
