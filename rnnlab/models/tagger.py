"""Sequence tagger (many-to-many, aligned): one label per step, and its per-step baseline.

    SequenceTagger:  input (B, T[, K]) -> embeddings or features -> Recurrent -> dropout -> Linear -> (B, T, C)
    FrameMLP:        the same input, an MLP applied to each step alone (one-to-one: no context at all)

A unidirectional tagger is causal: its output at step t depends on inputs 0..t only, so it can run
online, one step at a time (``stepper``). A bidirectional tagger also reads steps t+1..T-1, which
usually helps, but needs the whole sequence first. Both are tested for exactly that.

Targets use -100 (``IGNORE``) for steps without a label (padding, unlabelled frames); they count in
neither the loss nor the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import cell_class
from rnnlab.config import Config
from rnnlab.data.tokens import IGNORE
from rnnlab.errors import ConfigError
from rnnlab.models.inputs import make_input
from rnnlab.recurrent import Recurrent


@dataclass(frozen=True)
class TaggerConfig(Config):
    num_tags: int  # C
    vocab_sizes: tuple[int, ...] = ()  # token input: one vocabulary per field (id 0 = padding)
    embedding_dims: tuple[int, ...] = ()
    feature_size: int = 0  # numeric input: F features per step
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True  # False: causal, usable online
    dropout: float = 0.3
    recurrent: bool = True  # False: the per-step MLP baseline

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_sizes", tuple(self.vocab_sizes))
        object.__setattr__(self, "embedding_dims", tuple(self.embedding_dims))
        cell_class(self.cell)
        if self.num_tags < 2:
            raise ConfigError(f"a tagger needs at least 2 tags, got {self.num_tags}")
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ConfigError(f"hidden size and layers must be positive, got {self.hidden_size}, {self.num_layers}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def build_tagger(config: TaggerConfig) -> nn.Module:
    return SequenceTagger(config) if config.recurrent else FrameMLP(config)


def tagging_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled steps; logits (B, T, C), targets (B, T) with IGNORE."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


class SequenceTagger(nn.Module):
    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.input = make_input(config.vocab_sizes, config.embedding_dims, config.feature_size, config.dropout)
        self.rnn = Recurrent(
            cell_class(config.cell),
            self.input.out_size,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.rnn.output_size, config.num_tags)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, tuple]:
        """inputs (B, T[, K]) or (B, T, F) -> (logits (B, T, C), state)."""
        y, state = self.rnn(self.input(inputs), state, lengths)
        return self.head(self.drop(y)), state

    def loss(self, batch, carry=None):
        logits, _ = self(batch.inputs, batch.lengths)
        return tagging_loss(logits, batch.targets), None

    def stepper(self, batch_size: int = 1) -> TaggerStepper:
        return TaggerStepper(self, batch_size)


class TaggerStepper:
    """Online tagging with a causal tagger: ``logits = stepper.step(x_t)``, x_t (B[, K]) or (B, F)."""

    def __init__(self, tagger: SequenceTagger, batch_size: int = 1) -> None:
        self.tagger = tagger
        self.inner = tagger.rnn.stepper(batch_size)  # refuses a bidirectional network

    def step(self, x: Tensor) -> Tensor:
        features = self.tagger.input(x.unsqueeze(1)).squeeze(1)  # (B, E)
        return self.tagger.head(self.inner.step(features))


class FrameMLP(nn.Module):
    """Each step classified alone from its own input: no recurrence, no context."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.input = make_input(config.vocab_sizes, config.embedding_dims, config.feature_size, config.dropout)
        self.mlp = nn.Sequential(
            nn.Linear(self.input.out_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.num_tags),
        )

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        return self.mlp(self.input(inputs)), None

    def loss(self, batch, carry=None):
        logits, _ = self(batch.inputs, batch.lengths)
        return tagging_loss(logits, batch.targets), None
