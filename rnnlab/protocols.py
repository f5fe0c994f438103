"""The duck-typed contracts between the Trainer, the data and the models, written down once.

Batch      what ``Batches.batch(step)`` returns: any dataclass of tensors with ``reset`` (drop the
           carried state before this batch) and ``num_tokens`` (for tokens/s)
Batches    ``batch(step)``: a deterministic function of the step (exact resume); ``len()``: batches
           per epoch
Trainable  a model the Trainer can train: ``loss(batch, carry) -> (loss, carry)``
SequenceModel
           every model's forward: ``model(inputs, lengths=None, state=None) -> (output, state)``
           (state may be None for a model that carries none)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Batch(Protocol):
    reset: bool

    @property
    def num_tokens(self) -> int: ...


@runtime_checkable
class Batches(Protocol):
    def __len__(self) -> int: ...

    def batch(self, step: int) -> Batch: ...


@runtime_checkable
class Trainable(Protocol):
    def loss(self, batch: Any, carry: Any = None) -> tuple[Tensor, Any]: ...


@runtime_checkable
class SequenceModel(Protocol):
    def __call__(self, inputs: Any, lengths: Tensor | None = None, state: Any = None) -> tuple[Any, Any]: ...
