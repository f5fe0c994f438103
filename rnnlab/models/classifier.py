"""Sequence classifier (many-to-one) and its non-recurrent baseline (one-to-one per token, pooled).

    SequenceClassifier:  input (B, T[, K]) -> embeddings or features -> Recurrent (optionally
                         bidirectional) -> pooling over real steps -> dropout -> Linear -> (B, C)
    BagClassifier:       the same input and pooling straight over the embeddings, no recurrence
                         (a bag of embeddings): what the order of the tokens adds, measured

Padded batches do not leak: the Recurrent returns zeros past each length and final states at each
sequence's last real step, and every pooling ignores padded steps, so padding a sequence never
changes its prediction (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import cell_class
from rnnlab.config import Config
from rnnlab.errors import ConfigError
from rnnlab.models.inputs import make_input
from rnnlab.pooling import make_pooling, step_mask
from rnnlab.recurrent import Recurrent, full_lengths


@dataclass(frozen=True)
class ClassifierConfig(Config):
    num_classes: int  # C
    vocab_sizes: tuple[int, ...] = ()  # token input: one vocabulary per field (id 0 = padding)
    embedding_dims: tuple[int, ...] = ()  # embedding size per token field
    feature_size: int = 0  # numeric input: F features per step (instead of tokens)
    cell: str = "lstm"
    hidden_size: int = 128  # H
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "meanmax"  # last | mean | max | meanmax | attention
    dropout: float = 0.3  # on the input, between layers and before the output layer
    recurrent: bool = True  # False: the bag-of-embeddings baseline (no Recurrent)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_sizes", tuple(self.vocab_sizes))
        object.__setattr__(self, "embedding_dims", tuple(self.embedding_dims))
        cell_class(self.cell)
        if self.num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {self.num_classes}")
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ConfigError(f"hidden size and layers must be positive, got {self.hidden_size}, {self.num_layers}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def build_classifier(config: ClassifierConfig) -> nn.Module:
    return SequenceClassifier(config) if config.recurrent else BagClassifier(config)


class SequenceClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
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
        self.pool = make_pooling(config.pooling, self.rnn.output_size, self.rnn.num_directions)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.pool.out_size, config.num_classes)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        """inputs (B, T[, K]) ids or (B, T, F) features, lengths (B,) (None: all T) -> (logits (B, C), None)."""
        lengths = full_lengths(inputs) if lengths is None else lengths
        y, final = self.rnn(self.input(inputs), state, lengths)  # y (B, T, D*H)
        return self.head(self.drop(self.pool(y, lengths, final[0]))), None

    def loss(self, batch, carry=None):
        return F.cross_entropy(self(batch.inputs, batch.lengths)[0], batch.labels), None


class BagClassifier(nn.Module):
    """No recurrence: pool the per-step inputs directly (mean and max of the embeddings), then an MLP."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.input = make_input(config.vocab_sizes, config.embedding_dims, config.feature_size, config.dropout)
        self.pool = make_pooling("meanmax", self.input.out_size, 1)
        self.mlp = nn.Sequential(
            nn.Linear(self.pool.out_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.num_classes),
        )

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        lengths = full_lengths(inputs) if lengths is None else lengths
        x = self.input(inputs)  # (B, T, E)
        x = x * step_mask(x, lengths)  # zero past each length, as the Recurrent's outputs are
        return self.mlp(self.pool(x, lengths, None)), None

    def loss(self, batch, carry=None):
        return F.cross_entropy(self(batch.inputs, batch.lengths)[0], batch.labels), None
