"""Character (or any token) language model: many-to-many, aligned, generative.

    tokens (B, T) -> Embedding -> dropout -> Recurrent (L layers) -> dropout -> Linear -> logits (B, T, V)

Trained to predict token t+1 from tokens 0..t, with cross-entropy in nats per token. Dropout is
applied to the embeddings, between recurrent layers and before the output layer (Zaremba et al.
2014: dropout on the non-recurrent connections only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import State, cell_class
from rnnlab.errors import ConfigError
from rnnlab.recurrent import Recurrent


@dataclass(frozen=True)
class CharLMConfig:
    vocab_size: int  # V, number of distinct tokens
    cell: str = "lstm"  # rnn | lstm | gru
    embedding_dim: int = 64  # E, size of each token's learned vector
    hidden_size: int = 512  # H, units per recurrent layer
    num_layers: int = 1  # L
    dropout: float = 0.0  # on embeddings, between layers and before the output layer

    def __post_init__(self) -> None:
        cell_class(self.cell)
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class CharLM(nn.Module):
    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.rnn = Recurrent(
            cell_class(config.cell),
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """tokens (B, T) -> (logits (B, T, V), state tuple of (L, B, H))."""
        x = self.drop(self.embed(tokens))  # (B, T, E)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(y)), state  # (B, T, V)

    def loss(self, batch, state: State | None = None) -> tuple[Tensor, State]:
        """Mean cross-entropy (nats per token) of ``batch.targets`` given ``batch.inputs``."""
        logits, state = self(batch.inputs, state)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()), state

    def stepper(self, batch_size: int = 1) -> LMStepper:
        return LMStepper(self, batch_size)


class LMStepper:
    """Generates one token at a time: ``logits = stepper.step(token_ids)`` with (B,) -> (B, V).

    Runs the explicit cells (faster than the fused kernel's per-call set-up at one step), and
    looks the first layer's input projection up in a (V, G*H) table instead of multiplying the
    embedding by W_ih at every step. Meant for inference (``torch.inference_mode``).
    """

    def __init__(self, model: CharLM, batch_size: int = 1) -> None:
        self.model = model
        rnn = model.rnn
        self.cells = list(rnn.cells)
        with torch.no_grad():
            self.first_projection = self.cells[0].project(model.embed.weight)  # (V, G*H)
        state = rnn.initial_state(batch_size)
        self.states = [tuple(s[k] for s in state) for k in range(rnn.num_layers)]

    def step(self, tokens: Tensor) -> Tensor:
        xw = self.first_projection[tokens]  # (B, G*H)
        for k, cell in enumerate(self.cells):
            if k > 0:
                xw = cell.project(self.states[k - 1][0])
            self.states[k] = cell.recur(xw, self.states[k])
        return self.model.head(self.states[-1][0])  # (B, V)
