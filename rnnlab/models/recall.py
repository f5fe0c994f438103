"""The recall model of the memory experiment: one-hot symbols in, the remembered symbol out.

symbols (B, T) -> one-hot (B, T, S) -> Recurrent -> the last step's h -> Linear -> (B, K) scores
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import bias_to_remember, cell_class
from rnnlab.recurrent import Recurrent


class Recaller(nn.Module):
    def __init__(self, cell: str, hidden: int, symbols: int, answers: int, remember_bias: float | None = None) -> None:
        super().__init__()
        self.symbols = symbols
        self.rnn = Recurrent(cell_class(cell), symbols, hidden)
        if remember_bias is not None:
            bias_to_remember(self.rnn.cells[0], remember_bias)
        self.head = nn.Linear(hidden, answers)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        y, _ = self.rnn(F.one_hot(inputs, self.symbols).float(), state)  # (B, T, H)
        return self.head(y[:, -1]), None
