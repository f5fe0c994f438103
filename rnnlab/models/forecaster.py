"""Forecaster (regression over time): read a window of the past, predict the next k steps at once.

    window (B, W, F) -> Recurrent -> last step's h -> dropout -> Linear -> (B, k)

The task scales the series (statistics of the training part only) and asks the model for the change
from the last observed value, y_{t+h} - y_t for h = 1..k, so that predicting zero is the naive
(random-walk) forecast and the network only has to learn what improves on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import cell_class
from rnnlab.config import Config
from rnnlab.errors import ConfigError
from rnnlab.recurrent import Recurrent


@dataclass(frozen=True)
class ForecasterConfig(Config):
    input_size: int  # F features per step
    horizon: int  # k steps predicted at once
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1
    recurrent: bool = True  # False: an MLP on the flattened window (the non-recurrent baseline)
    window: int = 0  # W, needed by the MLP baseline

    def __post_init__(self) -> None:
        cell_class(self.cell)
        if self.input_size < 1 or self.horizon < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ConfigError("input size, horizon, hidden size and layers must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.recurrent and self.window < 1:
            raise ConfigError("the MLP baseline needs the window length")


def build_forecaster(config: ForecasterConfig) -> nn.Module:
    return Forecaster(config) if config.recurrent else WindowMLP(config)


class Forecaster(nn.Module):
    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.rnn = Recurrent(
            cell_class(config.cell), config.input_size, config.hidden_size, config.num_layers, dropout=config.dropout
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.horizon)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        """window (B, W, F) -> (the next k scaled changes (B, k), None)."""
        y, _ = self.rnn(inputs, state)  # (B, W, H)
        return self.head(self.drop(y[:, -1])), None  # (B, k)

    def loss(self, batch, carry=None):
        return F.mse_loss(self(batch.inputs)[0], batch.targets), None


class WindowMLP(nn.Module):
    """The window flattened into one vector, two hidden layers: no notion of order or recurrence."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.window * config.input_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Linear(config.hidden_size, config.horizon),
        )

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        return self.mlp(inputs), None

    def loss(self, batch, carry=None):
        return F.mse_loss(self(batch.inputs)[0], batch.targets), None
