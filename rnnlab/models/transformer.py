"""A small causal transformer language model (GPT style, pre-norm): a baseline that is not
recurrent, for ``rnnlab experiment successors``.

    tokens (B, T) -> Embedding (D) + learned position (D) -> N blocks -> LayerNorm -> Linear -> logits (B, T, V)

    block:  x = x + W_o Attention(LN(x))       Attention: softmax(Q K^T / sqrt(D/heads) + causal mask) V, per head
            x = x + W_2 gelu(W_1 LN(x))        W_1: D -> 4D, W_2: 4D -> D

Every step attends to every earlier step of its window at once: the whole window is computed in
parallel, at a cost that grows with T^2. It carries no state between windows: its context is the
window it reads (at most ``max_len`` tokens), so the state it returns is the empty tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import Config
from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class TransformerLMConfig(Config):
    vocab_size: int  # V
    model_dim: int = 128  # D
    heads: int = 4  # D must divide by it
    blocks: int = 4  # N
    max_len: int = 1024  # the longest window (learned positions)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "model_dim", "heads", "blocks", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.model_dim % self.heads:
            raise ConfigError(f"model_dim {self.model_dim} does not divide into {self.heads} heads")


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = (
            self.qkv(self.norm1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        )  # each (B, h, T, D/h)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, D/h)
        x = x + self.out(attended.transpose(1, 2).reshape(B, T, D))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class TransformerLM(nn.Module):
    def __init__(self, config: TransformerLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.position = nn.Embedding(config.max_len, config.model_dim)
        self.blocks = nn.ModuleList(Block(config.model_dim, config.heads) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.model_dim)
        self.head = nn.Linear(config.model_dim, config.vocab_size)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """tokens (B, T) -> (logits (B, T, V), ()): T at most ``max_len``; ``state`` is ignored (none is carried)."""
        if lengths is not None:
            raise ValueError("a language model reads contiguous streams; lengths must be None")
        T = inputs.shape[1]
        if T > self.config.max_len:
            raise ValueError(f"a window of {T} tokens is longer than max_len {self.config.max_len}")
        x = self.embed(inputs) + self.position(torch.arange(T, device=inputs.device))  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)), ()

    def loss(self, batch, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """Mean cross-entropy (nats per token) of ``batch.targets`` given ``batch.inputs``."""
        logits, state = self(batch.inputs)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()), state
