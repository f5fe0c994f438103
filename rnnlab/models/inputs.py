"""What a sequence model reads at each step: token ids through embeddings, or numeric features.

TokenInput     ids (B, T) or (B, T, K) for K token fields (word, POS tag...)  -> (B, T, sum of E_k)
FeatureInput   features (B, T, F)                                             -> (B, T, F)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError


class TokenInput(nn.Module):
    """One embedding table per token field, concatenated. Id 0 of every field is padding."""

    def __init__(self, vocab_sizes: tuple[int, ...], dims: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        if not vocab_sizes or len(vocab_sizes) != len(dims) or min(vocab_sizes) < 2 or min(dims) < 1:
            raise ConfigError(f"need one positive embedding size per token field, got {vocab_sizes} and {dims}")
        self.tables = nn.ModuleList(nn.Embedding(v, d, padding_idx=0) for v, d in zip(vocab_sizes, dims))
        self.drop = nn.Dropout(dropout)
        self.out_size = sum(dims)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dim() == 2:
            ids = ids.unsqueeze(-1)  # (B, T) -> (B, T, 1)
        if ids.shape[-1] != len(self.tables):
            raise ValueError(f"expected {len(self.tables)} token field(s), got {ids.shape[-1]}")
        return self.drop(torch.cat([table(ids[..., k]) for k, table in enumerate(self.tables)], dim=-1))


class FeatureInput(nn.Module):
    def __init__(self, size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"feature size must be positive, got {size}")
        self.out_size = size
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.out_size:
            raise ValueError(f"expected {self.out_size} features per step, got {x.shape[-1]}")
        return self.drop(x)


def make_input(
    vocab_sizes: tuple[int, ...], embedding_dims: tuple[int, ...], feature_size: int, dropout: float
) -> nn.Module:
    """Token input when ``vocab_sizes`` is given, feature input otherwise (exactly one of the two)."""
    if bool(vocab_sizes) == bool(feature_size):
        raise ConfigError("a model reads either tokens (vocab_sizes) or numeric features (feature_size), not both")
    if vocab_sizes:
        return TokenInput(tuple(vocab_sizes), tuple(embedding_dims), dropout)
    return FeatureInput(feature_size, dropout)


def set_word_vectors(table: nn.Embedding, words: tuple[str, ...], vectors) -> int:
    """Copy pretrained vectors (``vectors[word]``, e.g. gensim KeyedVectors) of the vocabulary's
    ``words`` into the embedding table, rescaled to the table's initial spread. Rows 0 and 1
    (<pad>, <unk>) and words without a vector keep their values. Returns how many rows were set."""
    rows = [(i, word) for i, word in enumerate(words) if i > 1 and word in vectors]
    if not rows:
        return 0
    with torch.no_grad():
        found = torch.from_numpy(np.stack([vectors[word] for _, word in rows]))  # (N, E)
        scale = table.weight[2:].std() / found.std()  # keep the table's initial scale
        table.weight[[i for i, _ in rows]] = found * scale
    return len(rows)
