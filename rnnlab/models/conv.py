"""A causal dilated convolution language model (TCN / WaveNet style): a baseline that is not
recurrent, for ``rnnlab experiment successors``.

    tokens (B, T) -> Embedding (E) -> 1x1 conv to C channels -> N residual blocks -> Linear -> logits (B, T, V)

    block n (dilation d = 2^(n mod cycle)):   y = x + W_2 * gelu(causal_conv_{k, d}(x))

``causal_conv_{k, d}`` sees x_t, x_{t-d}, ..., x_{t-(k-1)d}: every output step is computed at once
(all T in parallel), and the receptive field is 1 + (k-1) * sum(d) steps, fixed by the architecture.

The "state" a convolution carries over a stream is its left context: each block's last (k-1)d
input frames, a tuple of tensors (P_n, B, C), time first so that the batch is dimension 1 as in a
recurrent state. Fed back in, the next chunk continues exactly where the last one stopped (the
chunks together equal one pass over the whole stream), so truncated training and streamed
evaluation work as for the recurrent models; without a state, the left context is zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import Config
from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class ConvLMConfig(Config):
    vocab_size: int  # V
    embedding_dim: int = 64  # E
    channels: int = 192  # C, channels of every block
    kernel_size: int = 3  # k
    blocks: int = 6  # N residual blocks
    dilation_cycle: int = 6  # dilations 1, 2, 4, ... 2^(cycle-1), then again from 1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_dim", "channels", "blocks", "dilation_cycle"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 2:
            raise ConfigError(f"kernel_size must be an integer >= 2, got {self.kernel_size!r}")

    def dilations(self) -> list[int]:
        return [2 ** (n % self.dilation_cycle) for n in range(self.blocks)]

    def receptive_field(self) -> int:
        """How many tokens, the current one included, an output step depends on."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations())


class CausalBlock(nn.Module):
    """y = x + W_2 gelu(causal_conv(x)), on (B, C, T); ``context`` (P, B, C) is the left context."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # P
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        B, C, T = x.shape
        if context is None:
            context = x.new_zeros(self.pad, B, C)
        padded = torch.cat([context.permute(1, 2, 0), x], dim=2)  # (B, C, P + T)
        y = x + self.mix(F.gelu(self.conv(padded)))  # (B, C, T)
        return y, padded[:, :, -self.pad :].permute(2, 0, 1)  # the next chunk's left context (P, B, C)


class ConvLM(nn.Module):
    def __init__(self, config: ConvLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.input = nn.Conv1d(config.embedding_dim, config.channels, 1)
        self.blocks = nn.ModuleList(CausalBlock(config.channels, config.kernel_size, d) for d in config.dilations())
        self.head = nn.Linear(config.channels, config.vocab_size)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """tokens (B, T) -> (logits (B, T, V), each block's left context (P_n, B, C))."""
        if lengths is not None:
            raise ValueError("a language model reads contiguous streams; lengths must be None")
        x = self.input(self.embed(inputs).transpose(1, 2))  # (B, C, T)
        contexts = []
        for n, block in enumerate(self.blocks):
            x, context = block(x, state[n] if state else None)
            contexts.append(context)
        return self.head(x.transpose(1, 2)), tuple(contexts)  # (B, T, V)

    def loss(self, batch, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """Mean cross-entropy (nats per token) of ``batch.targets`` given ``batch.inputs``."""
        logits, state = self(batch.inputs, state=state)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()), state
