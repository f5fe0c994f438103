"""Teacher forcing and scheduled sampling: the one loop that feeds a generative model its inputs.

A model that generates reads its own previous output at inference time. In training it can read
the true previous token instead (teacher forcing), or, with probability p at each step, its own
guess (scheduled sampling, Bengio et al. 2015)::

    y_0 = tokens[:, 0]
    out_t, state = step(y_t, state)
    y_{t+1} = guess(out_t)     where coins[:, t+1]      (the model's own, no gradient through it)
              tokens[:, t+1]   elsewhere

``step`` and ``guess`` are the model's: a language model's step returns logits and guesses by
sampling from them; the translation decoder's returns its output features and guesses their argmax.
With teacher forcing only (p = 0) models run their whole-sequence path instead of this loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def sampling_coins(tokens: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor | None:
    """(B, T) True where the model reads its own guess, each with probability ``p`` (None if p is 0)."""
    if p <= 0:
        return None
    return torch.rand(tokens.shape, generator=generator, device=tokens.device) < p


def unroll(step: Callable, guess: Callable[[Tensor], Tensor], tokens: Tensor, state, coins: Tensor | None):
    """Run ``step`` over the T steps of ``tokens`` (B, T); returns (outputs stacked (B, T, ...), state)."""
    outputs, y = [], tokens[:, 0]
    for t in range(tokens.shape[1]):
        out, state = step(y, state)
        outputs.append(out)
        if t + 1 < tokens.shape[1]:
            y = tokens[:, t + 1]
            if coins is not None:
                y = torch.where(coins[:, t + 1], guess(out.detach()), y)
    return torch.stack(outputs, dim=1), state
