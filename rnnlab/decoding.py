"""Choosing the next token from a model's scores: greedy, temperature, top-k and nucleus (top-p) sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 1.0  # divides the logits; < 1 is more conservative, 0 means greedy (argmax)
    top_k: int | None = None  # keep only the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top-k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top-p must be in (0, 1], got {self.top_p}")


def sample_next(logits: Tensor, options: SamplingOptions, generator: torch.Generator | None = None) -> Tensor:
    """logits (B, V) -> token ids (B,)."""
    if options.temperature == 0:
        return logits.argmax(-1)
    logits = logits / options.temperature
    if options.top_k is not None and options.top_k < logits.shape[-1]:
        kth = logits.topk(options.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if options.top_p is not None and options.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= options.top_p  # mass before this token already reaches p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
