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
model's own previous prediction (scheduled sampling, Bengio et al. 2015). Decoding (greedy, beam
search) lives in ``rnnlab.decoding`` and uses ``encode`` and ``step`` only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.attention import Memory, make_attention
from rnnlab.cells import State, cell_class
from rnnlab.errors import ConfigError
from rnnlab.models.tagger import IGNORE
from rnnlab.recurrent import Recurrent

PAD, UNK, BOS, EOS = 0, 1, 2, 3


@dataclass(frozen=True)
class Seq2SeqConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.cell = cell(embedding_dim + key_size, size)
        self.readout = nn.Linear(size + key_size + embedding_dim, embedding_dim)
        self.out_bias = nn.Parameter(torch.zeros(vocab))
        self.drop = nn.Dropout(dropout)

    def features(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        """One step before the output layer: (o_t (B, E), s_t, attention weights (B, S) or None)."""
        emb = self.drop(self.embed(y_prev))  # (B, E)
        context, weights = self.attention(state[0], memory)  # (B, K), (B, S)
        state = self.cell.recur(self.cell.project(torch.cat([emb, context], dim=-1)), state)
        o = torch.tanh(self.readout(self.drop(torch.cat([state[0], context, emb], dim=-1))))
        return self.drop(o), state, weights

    def logits(self, o: Tensor) -> Tensor:
        return F.linear(o, self.embed.weight, self.out_bias)  # tied output layer: (..., V)

    def step(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        o, state, weights = self.features(y_prev, state, memory)
        return self.logits(o).log_softmax(-1), state, weights

    def forward(self, memory: Memory, state: State, tgt_in: Tensor, sampling_prob: float = 0.0) -> Tensor:
        """Teacher-forced (or scheduled-sampling) logits (B, T, V) for target inputs tgt_in (B, T) = BOS y_1 ..."""
        outputs, y_prev = [], tgt_in[:, 0]
        coins = torch.rand(tgt_in.shape) < sampling_prob if sampling_prob > 0 else None
        for t in range(tgt_in.shape[1]):
            o, state, _ = self.features(y_prev, state, memory)
            outputs.append(o)
            if t + 1 < tgt_in.shape[1]:
                y_prev = tgt_in[:, t + 1]
                if coins is not None:  # feed back the model's own guess where the coin says so
                    guess = self.logits(o.detach()).argmax(-1)
                    y_prev = torch.where(coins[:, t + 1] & (y_prev != PAD), guess, y_prev)
        return self.logits(torch.stack(outputs, dim=1))  # one big product for all steps: (B, T, V)


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
        mask = torch.arange(src.shape[1])[None, :] < lengths[:, None]  # (B, S)
        state = tuple(
            torch.tanh(bridge(torch.cat([f[-2], f[-1]], dim=-1)))  # last layer, both directions: (B, D)
            for bridge, f in zip(self.bridge, final)
        )
        return self.decoder.attention.prepare(keys, mask), state

    def step(self, y_prev: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        """(log-probabilities of the next token (B, V), new state, attention weights) for decoding."""
        return self.decoder.step(y_prev, state, memory)

    def forward(self, src: Tensor, lengths: Tensor, tgt_in: Tensor, sampling_prob: float = 0.0) -> Tensor:
        memory, state = self.encode(src, lengths)
        return self.decoder(memory, state, tgt_in, sampling_prob)

    def loss(self, batch, carry=None):
        """Cross-entropy (with label smoothing) of batch.tgt_out given batch.src and batch.tgt_in."""
        logits = self(batch.src, batch.src_lengths, batch.tgt_in, getattr(batch, "sampling_prob", 0.0))
        return sequence_loss(logits, batch.tgt_out, self.config.label_smoothing), None
