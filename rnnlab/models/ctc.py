"""CTC acoustic model (unaligned labels): a label sequence much shorter than the input, no alignment given.

    features (B, T, F) -> stack every 2 frames (B, T/2, 2F) -> bidirectional Recurrent -> Linear -> (B, T/2, C)

C = number of labels + 1; class 0 is the CTC blank. ``torch.nn.CTCLoss`` sums over every path of
per-frame classes that collapses (merge repeats, drop blanks) to the target sequence (Graves et al.
2006), so the model learns where each label is on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import cell_class
from rnnlab.config import Config
from rnnlab.errors import ConfigError
from rnnlab.recurrent import Recurrent, full_lengths

BLANK = 0


@dataclass(frozen=True)
class CTCConfig(Config):
    features: int  # F per frame
    labels: int  # label classes, the blank not counted
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.2
    stack: int = 2  # frames stacked into one step (halves the steps the network runs)

    def __post_init__(self) -> None:
        cell_class(self.cell)
        if min(self.features, self.labels, self.hidden_size, self.num_layers, self.stack) < 1:
            raise ConfigError("sizes must be positive")


class CTCModel(nn.Module):
    def __init__(self, config: CTCConfig) -> None:
        super().__init__()
        self.config = c = config
        self.rnn = Recurrent(cell_class(c.cell), c.features * c.stack, c.hidden_size, c.num_layers, True, c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(self.rnn.output_size, c.labels + 1)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths + self.config.stack - 1, self.config.stack, rounding_mode="floor")

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        """features (B, T, F), lengths (B,) -> (log-probabilities (B, T', C), None); each utterance's
        T' is ``output_lengths(lengths)``."""
        s = self.config.stack
        lengths = full_lengths(inputs) if lengths is None else lengths
        x = inputs
        pad = (-x.shape[1]) % s
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        x = x.reshape(x.shape[0], x.shape[1] // s, s * x.shape[2])  # (B, T/s, s*F)
        y, _ = self.rnn(x, state, self.output_lengths(lengths))
        return self.head(self.drop(y)).log_softmax(-1), None

    def loss(self, batch, carry=None):
        log_probs, _ = self(batch.inputs, batch.lengths)
        out_lengths = self.output_lengths(batch.lengths)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch.labels, out_lengths, batch.label_lengths, blank=BLANK, zero_infinity=True
        )
        return loss, None
