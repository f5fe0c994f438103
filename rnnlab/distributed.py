"""Training on several processes: torchrun starts them, DistributedDataParallel keeps them in step.

    torchrun --nproc-per-node 2 -m rnnlab train classify --csv reviews.csv --batch-size 64
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 --nproc-per-node 8 -m rnnlab train ...

With W processes, process r (its rank) trains on rows [r B / W, (r + 1) B / W) of every global
batch of B rows (``share``; for the character model, its own truncated-BPTT streams); DDP averages
the gradients, so that a step equals one process's step on the whole batch when the loss is a mean
over equal shares (the character model, the classifier, the forecaster: equal to float rounding,
tested). Every process evaluates (they hold the same weights, so they agree on the best step and on
early stopping); rank 0 alone writes the run folder and prints. The processes agree after every
step on whether to stop (a budget spent, a signal on any of them) and on whether the step's loss was
finite (``agree``), so that they stop, save once and skip together. The backend is gloo on CPU,
NCCL on CUDA.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder and prints (rank 0)."""
        return self.rank == 0


def world() -> World:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on GPUs, each process takes the CUDA device of its local rank."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def start(device: torch.device) -> World:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a no-op for one process."""
    w = world()
    if w.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return w


def share(batch, w: World):
    """This process's rows of a global batch: every tensor (and list) whose first dimension is the
    batch's, cut to rows [r B / W, (r + 1) B / W). A batch with a ``rows(slice)`` method cuts itself."""
    if w.size == 1:
        return batch
    size = batch_size(batch)
    if size % w.size:
        raise ConfigError(
            f"a batch of {size} rows cannot be shared equally by {w.size} processes; choose a batch size divisible by it"
        )
    rows = slice(w.rank * size // w.size, (w.rank + 1) * size // w.size)
    if hasattr(batch, "rows"):
        return batch.rows(rows)
    changes = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if isinstance(value, (torch.Tensor, list)) and len(value) == size:
            changes[f.name] = value[rows]
    shared = dataclasses.replace(batch, **changes)
    for key, value in vars(batch).items():  # attributes set after construction (sampling_prob...)
        if not hasattr(shared, key):
            setattr(shared, key, value)
    return shared


def batch_size(batch) -> int:
    """B: the first dimension of the batch's first tensor field."""
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value.shape[0]
    raise ConfigError(f"{type(batch).__name__} holds no tensor to share among processes")


def agree(w: World, values: list[float], op=dist.ReduceOp.MAX) -> list[float]:
    """The same numbers on every process: the maximum (or ``op``) over processes of each value."""
    if w.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=op)
    return t.cpu().tolist()


def mean(w: World, value: float) -> float:
    """The mean over processes of a number (each process's loss -> the loss of the global batch)."""
    if w.size == 1:
        return value
    return agree(w, [value], dist.ReduceOp.SUM)[0] / w.size


class LossOf(torch.nn.Module):
    """``model.loss`` as a forward pass, for DistributedDataParallel (which synchronises gradients
    through forward): ddp(batch, carry) -> (loss, carry)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, carry=None):
        return self.model.loss(batch, carry)


def engine(model: torch.nn.Module, w: World, device: torch.device):
    """What the Trainer calls for a loss: the model itself, or DDP around it with several processes."""
    if w.size == 1:
        return LossOf(model)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(LossOf(model), device_ids=ids)


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
