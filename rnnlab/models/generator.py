"""Conditional generator (one-to-many): a caption from an image.

    image (B, 3, 64, 64) -> small CNN trained from scratch -> grid features (B, P, C), P = 4 x 4 places
        their mean -> tanh(Linear) -> the decoder's initial state (h, and c for an LSTM)
    decoder: the attention decoder of ``rnnlab.models.seq2seq`` (``attention="none"``: the image's mean
        feature is the context at every step; ``"additive"``: attend over the P places, "show, attend
        and tell", Xu et al. 2015)

No pretrained weights can be downloaded here, so the CNN learns from the captions alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.attention import Memory
from rnnlab.cells import State, cell_class
from rnnlab.config import Config
from rnnlab.data.images import IMAGE_SIZE  # noqa: F401  (the CNN reads 64 x 64 images)
from rnnlab.data.tokens import BOS, PAD, UNK
from rnnlab.errors import ConfigError
from rnnlab.models.seq2seq import Decoder, sequence_loss


@dataclass(frozen=True)
class CaptionerConfig(Config):
    vocab: int
    cell: str = "lstm"
    channels: int = 128  # C, the CNN's output features per place
    embedding_dim: int = 128
    hidden_size: int = 256  # the decoder's state
    attention: str = "none"
    attention_size: int = 128
    dropout: float = 0.3
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        cell_class(self.cell)
        if min(self.vocab, self.channels, self.embedding_dim, self.hidden_size) < 1:
            raise ConfigError("sizes must be positive")


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Captioner(nn.Module):
    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.cnn = nn.Sequential(_block(3, 32), _block(32, 64), _block(64, c.channels), _block(c.channels, c.channels))
        self.bridge = nn.ModuleList(nn.Linear(c.channels, c.hidden_size) for _ in cell_class(c.cell).state_names)
        self.decoder = Decoder(
            c.cell, c.vocab, c.embedding_dim, c.hidden_size, c.channels, c.attention, c.attention_size, c.dropout
        )
        self.drop = nn.Dropout(c.dropout)

    def encode(self, images: Tensor, lengths: Tensor | None = None) -> tuple[Memory, State]:
        """images (B, 3, 64, 64) -> (memory over the P places' features, decoder state s_0)."""
        grid = self.cnn(images)  # (B, C, 4, 4)
        places = grid.flatten(2).transpose(1, 2)  # (B, P, C)
        mean = self.drop(places.mean(1))  # (B, C)
        state = tuple(torch.tanh(bridge(mean)) for bridge in self.bridge)
        mask = torch.ones(places.shape[:2], dtype=torch.bool, device=places.device)
        return self.decoder.attention.prepare(places, mask), state

    def step(self, y_prev: Tensor, state: State, memory: Memory):
        """One decoding step; padding, <unk> and <s> are never emitted (their log-probability is -inf)."""
        log_probs, state, weights = self.decoder.step(y_prev, state, memory)
        never = torch.tensor([PAD, UNK, BOS], device=log_probs.device)
        return log_probs.index_fill(-1, never, float("-inf")), state, weights

    def forward(self, inputs: tuple[Tensor, Tensor], lengths: Tensor | None = None, state=None, *, sampling_prob=0.0):
        """inputs (images (B, 3, 64, 64), tgt_in (B, T)) -> (logits (B, T, V), None)."""
        images, tgt_in = inputs
        memory, s0 = self.encode(images)
        return self.decoder(memory, s0, tgt_in, sampling_prob), None

    def loss(self, batch, carry=None):
        logits, _ = self((batch.images, batch.tgt_in), sampling_prob=getattr(batch, "sampling_prob", 0.0))
        return sequence_loss(logits, batch.tgt_out, self.config.label_smoothing), None
