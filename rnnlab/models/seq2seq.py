"""Encoder-decoder (many-to-many, unaligned): translation, and the decoder that captioning reuses.

Shape legend: B batch, S source steps, T target steps, E embedding, H encoder units per direction,
D = 2H the decoder's size (the encoder is bidirectional), V target vocabulary.

    encoder   src (B, S) -> embeddings -> bidirectional Recurrent -> keys (B, S, D)
              the last layer's final states [h_fwd; h_bwd] -> tanh(Linear) -> decoder state s_0
    decoder   at each step t, with y_{t-1} the previous target token (BOS at t = 0):
              c_t = attention(s_{t-1}, keys)                            context (B, D); weights (B, S)
              s_t = cell([emb(y_{t-1}); c_t], s_{t-1})                  (Bahdanau et al. 2015)
              o_t = tanh(W_o [s_t; c_t; emb(y_{t-1})])                  (B, E) the "deep output"
              logits_t = W_emb o_t                                      (B, V), tied to the target embeddings

Without attention (``attention="none"``) c_t is the same summary of the source at every step: the
fixed context vector of Cho et al. (2014).

Training feeds the true previous token (teacher forcing), or with probability ``sampling_prob`` the
model's own previous prediction (scheduled sampling, Bengio et al. 2015; ``rnnlab.models.unroll``).
Decoding (greedy, beam search) lives in ``rnnlab.decoding`` and uses ``encode`` and ``step`` only.

The decoder's recurrence is a one-layer ``Recurrent`` stepped with ``Recurrent.step``; its state at
the decoder's boundary is a tuple of (B, D) (the layer axis dropped), as ``encode`` makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.attention import Memory, make_attention
from rnnlab.cells import State, cell_class
from rnnlab.config import Config
from rnnlab.data.tokens import EOS, IGNORE, PAD
from rnnlab.errors import ConfigError
from rnnlab.models.unroll import sampling_coins, unroll
from rnnlab.recurrent import Recurrent, full_lengths


@dataclass(frozen=True)
class Seq2SeqConfig(Config):
    src_vocab: int
    tgt_vocab: int
    cell: str = "lstm"
    embedding_dim: int = 256
    hidden_size: int = 256  # H per encoder direction; the decoder has 2H
    encoder_layers: int = 2
    attention: str = "additive"  # additive | dot | general | none
    attention_size: int = 256
    dropout: float = 0.3
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        cell_class(self.cell)
        if min(self.src_vocab, self.tgt_vocab) <= EOS:
            raise ConfigError("vocabularies need at least the four special tokens")
        if min(self.embedding_dim, self.hidden_size, self.encoder_layers, self.attention_size) < 1:
            raise ConfigError("sizes and layers must be positive")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("dropout and label smoothing must be in [0, 1)")


class Decoder(nn.Module):
    """The attention decoder shared by translation and captioning (see the module docstring).

    ``memory`` is what it attends to (an ``rnnlab.attention.Memory`` of keys (B, S, D)); its state
    starts from whatever the encoder provides.
    """

    def __init__(
        self,
        cell_name: str,
        vocab: int,
        embedding_dim: int,
        size: int,
        key_size: int,
        attention: str,
        attention_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        cell = cell_class(cell_name)
        self.embed = nn.Embedding(vocab, embedding_dim, padding_idx=PAD)
        self.attention = make_attention(attention, size, key_size, attention_size)
        self.cell = Recurrent(cell, embedding_dim + key_size, size)  # one layer, stepped
        self.readout = nn.Linear(size + key_size + embedding_dim, embedding_dim)
        self.out_bias = nn.Parameter(torch.zeros(vocab))
        self.drop = nn.Dropout(dropout)
        self.register_load_state_dict_pre_hook(_cell_names_of_format_1)

    def features(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        """One step before the output layer: (o_t (B, E), s_t, attention weights (B, S) or None)."""
        emb = self.drop(self.embed(y_prev))  # (B, E)
        context, weights = self.attention(state[0], memory)  # (B, K), (B, S)
        _, state = self.cell.step(torch.cat([emb, context], dim=-1), tuple(s.unsqueeze(0) for s in state))
        state = tuple(s.squeeze(0) for s in state)  # (1, B, D) -> (B, D)
        o = torch.tanh(self.readout(self.drop(torch.cat([state[0], context, emb], dim=-1))))
        return self.drop(o), state, weights

    def logits(self, o: Tensor) -> Tensor:
        return F.linear(o, self.embed.weight, self.out_bias)  # tied output layer: (..., V)

    def step(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        o, state, weights = self.features(y_prev, state, memory)
        return self.logits(o).log_softmax(-1), state, weights

    def forward(self, memory: Memory, state: State, tgt_in: Tensor, sampling_prob: float = 0.0) -> Tensor:
        """Teacher-forced (or scheduled-sampling) logits (B, T, V) for target inputs tgt_in (B, T) = BOS y_1 ..."""
        coins = sampling_coins(tgt_in, sampling_prob)
        if coins is not None:
            coins &= tgt_in != PAD  # padding stays padding
        step = lambda y, s: self.features(y, s, memory)[:2]  # noqa: E731
        outputs, _ = unroll(step, lambda o: self.logits(o).argmax(-1), tgt_in, state, coins)  # (B, T, E)
        return self.logits(outputs)  # one big product for all steps: (B, T, V)


def sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=IGNORE, label_smoothing=label_smoothing)


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        cell = cell_class(c.cell)
        d = 2 * c.hidden_size
        self.src_embed = nn.Embedding(c.src_vocab, c.embedding_dim, padding_idx=PAD)
        self.encoder = Recurrent(cell, c.embedding_dim, c.hidden_size, c.encoder_layers, True, c.dropout)
        self.bridge = nn.ModuleList(nn.Linear(d, d) for _ in cell.state_names)  # one per state: h (and c)
        self.decoder = Decoder(c.cell, c.tgt_vocab, c.embedding_dim, d, d, c.attention, c.attention_size, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Memory, State]:
        """src (B, S) ids, lengths (B,) -> (the attention's memory over the keys (B, S, D), decoder state s_0)."""
        keys, final = self.encoder(self.drop(self.src_embed(src)), lengths=lengths)  # (B, S, D)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]  # (B, S)
        state = tuple(
            torch.tanh(bridge(torch.cat([f[-2], f[-1]], dim=-1)))  # last layer, both directions: (B, D)
            for bridge, f in zip(self.bridge, final)
        )
        return self.decoder.attention.prepare(keys, mask), state

    def step(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        """(log-probabilities of the next token (B, V), new state, attention weights) for decoding."""
        return self.decoder.step(y_prev, state, memory)

    def forward(self, inputs: tuple[Tensor, Tensor], lengths: Tensor | None = None, state=None, *, sampling_prob=0.0):
        """inputs (src (B, S), tgt_in (B, T)), lengths (B,) of the sources -> (logits (B, T, V), None)."""
        src, tgt_in = inputs
        memory, s0 = self.encode(src, full_lengths(src) if lengths is None else lengths)
        return self.decoder(memory, s0, tgt_in, sampling_prob), None

    def loss(self, batch, carry=None):
        """Cross-entropy (with label smoothing) of batch.tgt_out given batch.src and batch.tgt_in."""
        logits, _ = self((batch.src, batch.tgt_in), batch.src_lengths, sampling_prob=getattr(batch, "sampling_prob", 0.0))
        return sequence_loss(logits, batch.tgt_out, self.config.label_smoothing), None


def _cell_names_of_format_1(module, state_dict, prefix, *args) -> None:
    """Checkpoints of format 1 held the decoder's cell as a bare cell (``cell.weight_ih``); it is
    now a one-layer Recurrent (``cell.weight_ih_l0``)."""
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if prefix + "cell." + name in state_dict:
            state_dict[prefix + "cell." + name + "_l0"] = state_dict.pop(prefix + "cell." + name)
