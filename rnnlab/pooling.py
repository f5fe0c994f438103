"""Pooling a recurrent encoder's outputs over time into one vector per sequence (many-to-one).

Every pooling takes the outputs y (B, T, D*H) with zeros past each length, the lengths (B,), and
the final state h_n (L*D, B, H), and returns (B, P). Padding never reaches the result: mean divides
by the real length, max ignores padded steps, attention gives them zero weight.

    last       [h_fwd(T_b - 1); h_bwd(0)]: the final hidden state of each direction   P = D*H
    mean       sum_t y_t / T_b                                                          P = D*H
    max        max_t y_t over real steps                                                P = D*H
    meanmax    [mean; max]                                                              P = 2*D*H
    attention  sum_t a_t y_t,  a = softmax_t(v . tanh(W y_t)) over real steps           P = D*H
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError


def step_mask(y: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, 1) True at real steps."""
    steps = torch.arange(y.shape[1], device=y.device)
    return (steps[None, :] < lengths.to(y.device)[:, None]).unsqueeze(-1)


class LastPool(nn.Module):
    def __init__(self, size: int, directions: int) -> None:
        super().__init__()
        self.directions, self.out_size = directions, size

    def forward(self, y: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        return torch.cat(list(h_n[-self.directions :]), dim=-1)  # last layer's directions: (B, D*H)


class MeanPool(nn.Module):
    def __init__(self, size: int, directions: int) -> None:
        super().__init__()
        self.out_size = size

    def forward(self, y: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        return y.sum(1) / lengths.to(y.device, y.dtype)[:, None]  # y is zero past each length


class MaxPool(nn.Module):
    def __init__(self, size: int, directions: int) -> None:
        super().__init__()
        self.out_size = size

    def forward(self, y: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        return y.masked_fill(~step_mask(y, lengths), float("-inf")).amax(1)


class MeanMaxPool(nn.Module):
    def __init__(self, size: int, directions: int) -> None:
        super().__init__()
        self.mean, self.max = MeanPool(size, directions), MaxPool(size, directions)
        self.out_size = 2 * size

    def forward(self, y: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        return torch.cat([self.mean(y, lengths, h_n), self.max(y, lengths, h_n)], dim=-1)


class AttentionPool(nn.Module):
    def __init__(self, size: int, directions: int) -> None:
        super().__init__()
        self.proj = nn.Linear(size, size)
        self.score = nn.Linear(size, 1, bias=False)
        self.out_size = size

    def forward(self, y: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        scores = self.score(torch.tanh(self.proj(y)))  # (B, T, 1)
        weights = scores.masked_fill(~step_mask(y, lengths), float("-inf")).softmax(1)
        return (weights * y).sum(1)


POOLINGS: dict[str, type[nn.Module]] = {
    "last": LastPool,
    "mean": MeanPool,
    "max": MaxPool,
    "meanmax": MeanMaxPool,
    "attention": AttentionPool,
}


def make_pooling(name: str, size: int, directions: int) -> nn.Module:
    try:
        return POOLINGS[name](size, directions)
    except KeyError:
        raise ConfigError(f"unknown pooling {name!r}; expected one of {', '.join(POOLINGS)}") from None
