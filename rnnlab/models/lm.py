"""Character (or any token) language model: many-to-many, aligned, generative.

    tokens (B, T) -> Embedding -> dropout -> Recurrent (L layers) -> dropout -> Linear -> logits (B, T, V)

Trained to predict token t+1 from tokens 0..t, with cross-entropy in nats per token. Dropout is
applied to the embeddings, between recurrent layers and before the output layer (Zaremba et al.
2014: dropout on the non-recurrent connections only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import State, cell_class
from rnnlab.config import Config
from rnnlab.errors import ConfigError
from rnnlab.models.unroll import sampling_coins, unroll
from rnnlab.recurrent import STEP_KERNELS, Recurrent


@dataclass(frozen=True)
class CharLMConfig(Config):
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

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state: State | None = None) -> tuple[Tensor, State]:
        """tokens (B, T) -> (logits (B, T, V), state tuple of (L, B, H)). A stream has no padding:
        ``lengths`` is accepted for the common contract and must be None."""
        if lengths is not None:
            raise ValueError("a language model reads contiguous streams; lengths must be None")
        x = self.drop(self.embed(inputs))  # (B, T, E)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(y)), state  # (B, T, V)

    def step(self, token: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One token (B,) -> (logits (B, V), state): the same maths as ``forward``, one step."""
        y, state = self.rnn.step(self.drop(self.embed(token)), state)  # (B, H)
        return self.head(self.drop(y)), state

    def loss(self, batch, state: State | None = None) -> tuple[Tensor, State]:
        """Mean cross-entropy (nats per token) of ``batch.targets`` given ``batch.inputs``.

        A batch may carry ``sampling_prob`` p > 0: then at each step the model reads, with
        probability p, a character sampled from its own previous prediction instead of the true one
        (scheduled sampling; ``rnnlab.models.unroll``). Gradients do not flow through the samples.
        """
        p = getattr(batch, "sampling_prob", 0.0)
        if p > 0:
            coins = sampling_coins(batch.inputs, p)
            sample = lambda logits: torch.multinomial(logits.softmax(-1), 1).squeeze(-1)  # noqa: E731
            logits, state = unroll(self.step, sample, batch.inputs, state, coins)  # (B, T, V)
        else:
            logits, state = self(batch.inputs, state=state)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()), state

    def stepper(self, batch_size: int = 1) -> LMStepper:
        return LMStepper(self, batch_size)


class LMStepper:
    """Generates one token at a time: ``logits = stepper.step(token_ids)`` with (B,) -> (B, V).

    For the LSTM, GRU and vanilla RNN it calls torch's one-step kernels directly (``torch.lstm_cell``...:
    a layer's two products and all its gate arithmetic in one C++ call), with every weight bound once
    and the output layer as one ``addmm``: no module calls and no Python per gate, which is what a
    step at batch 1 is made of. For the other cells, ``Recurrent.step_projected`` with the first
    layer's input projection looked up in a (V, G*H) table instead of multiplying the embedding by
    W_ih at every step. Meant for inference (``torch.inference_mode``; the model in eval mode).
    """

    def __init__(self, model: CharLM, batch_size: int = 1) -> None:
        self.model = model
        rnn = model.rnn
        initial = rnn.initial_state(batch_size)  # tuple of (L, B, H)
        self.kernel = STEP_KERNELS.get(rnn.cells[0].fused_kernel()) if rnn.fused and not rnn.bidirectional else None
        if self.kernel is not None:
            self.layers = [(c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh) for c in rnn.cells]
            self.embedding, self.head_t, self.head_bias = model.embed.weight, model.head.weight.t(), model.head.bias
            self.per_layer = [tuple(s[k] for s in initial) for k in range(rnn.num_layers)]  # each (h,) or (h, c)
        else:
            self._state = initial
            with torch.no_grad():
                self.first_projection = rnn.cells[0].project(model.embed.weight)  # (V, G*H)

    @property
    def state(self) -> State:
        """The state after the last step: a tuple of (L, B, H), as ``Recurrent.forward`` returns it."""
        if self.kernel is None:
            return self._state
        return tuple(torch.stack([layer[i] for layer in self.per_layer]) for i in range(len(self.per_layer[0])))

    def step(self, tokens: Tensor) -> Tensor:
        if self.kernel is None:
            y, self._state = self.model.rnn.step_projected(self.first_projection[tokens], self._state)  # (B, H)
            return self.model.head(y)  # (B, V)
        y = self.embedding[tokens]  # (B, E), then each layer's h_t
        for k, weights in enumerate(self.layers):
            state = self.per_layer[k]
            new = self.kernel(y, state if len(state) == 2 else state[0], *weights)
            self.per_layer[k] = new if isinstance(new, tuple) else (new,)
            y = self.per_layer[k][0]
        return torch.addmm(self.head_bias, y, self.head_t)  # (B, V)
