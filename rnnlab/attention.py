"""Attention: a query (the decoder's state) reads a weighted average of the keys (the encoder's outputs).

Shape legend: B batch, S source steps, Q query size, K key size, A attention size.

    scores   e_s = score(q, k_s)                                   (B, S)
    weights  a = softmax(e) over the real source steps only        (B, S)   padding gets weight 0
    context  c = sum_s a_s k_s                                     (B, K)

Scores:
    additive (Bahdanau et al. 2015)       score(q, k) = v . tanh(W_q q + W_k k)
    dot (Luong et al. 2015)               score(q, k) = q . k                 (needs Q = K)
    general (Luong et al. 2015)           score(q, k) = q . (W k)

``FixedContext`` is the no-attention case of Cho et al. (2014) and Sutskever et al. (2014): the same
summary of the source at every step, whatever the query (weights are None).

Every module is called as ``context, weights = attn(query, memory)``, where ``memory = attn.prepare(keys,
mask)`` does the per-source work once (the key projection of additive attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError


@dataclass
class Memory:
    keys: Tensor  # (B, S, K)
    mask: Tensor  # (B, S) True at real source steps
    projected: Tensor | None = None  # (B, S, A) or (B, S, Q): keys after the attention's own projection
    summary: Tensor | None = None  # (B, K): for FixedContext

    def expand(self, n: int) -> Memory:
        """Each source repeated n times along the batch (for beam search): (B, ...) -> (B*n, ...)."""
        rep = lambda t: None if t is None else t.repeat_interleave(n, dim=0)  # noqa: E731
        return Memory(rep(self.keys), rep(self.mask), rep(self.projected), rep(self.summary))

    def select(self, index: Tensor) -> Memory:
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return Memory(pick(self.keys), pick(self.mask), pick(self.projected), pick(self.summary))


def _softmax_over_real(scores: Tensor, mask: Tensor) -> Tensor:
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


class AdditiveAttention(nn.Module):
    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.w_query = nn.Linear(query_size, attention_size, bias=False)
        self.w_key = nn.Linear(key_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def prepare(self, keys: Tensor, mask: Tensor) -> Memory:
        return Memory(keys, mask, projected=self.w_key(keys))  # (B, S, A), once per source

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        scores = self.v(torch.tanh(memory.projected + self.w_query(query)[:, None])).squeeze(-1)  # (B, S)
        weights = _softmax_over_real(scores, memory.mask)
        return torch.bmm(weights[:, None], memory.keys).squeeze(1), weights  # (B, K), (B, S)


class DotAttention(nn.Module):
    def __init__(self, query_size: int, key_size: int, attention_size: int = 0) -> None:
        super().__init__()
        if query_size != key_size:
            raise ConfigError(f"dot attention needs equal query and key sizes, got {query_size} and {key_size}")

    def prepare(self, keys: Tensor, mask: Tensor) -> Memory:
        return Memory(keys, mask, projected=keys)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        scores = torch.bmm(memory.projected, query[:, :, None]).squeeze(-1)  # (B, S)
        weights = _softmax_over_real(scores, memory.mask)
        return torch.bmm(weights[:, None], memory.keys).squeeze(1), weights


class GeneralAttention(DotAttention):
    def __init__(self, query_size: int, key_size: int, attention_size: int = 0) -> None:
        nn.Module.__init__(self)
        self.w = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: Tensor, mask: Tensor) -> Memory:
        return Memory(keys, mask, projected=self.w(keys))  # (B, S, Q)


class FixedContext(nn.Module):
    """No attention: the context is the mean of the real source steps' encodings, at every step."""

    def __init__(self, query_size: int, key_size: int, attention_size: int = 0) -> None:
        super().__init__()

    def prepare(self, keys: Tensor, mask: Tensor) -> Memory:
        m = mask[..., None].to(keys.dtype)
        return Memory(keys, mask, summary=(keys * m).sum(1) / m.sum(1))

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, None]:
        return memory.summary, None


ATTENTIONS: dict[str, type[nn.Module]] = {
    "additive": AdditiveAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
    "none": FixedContext,
}


def make_attention(name: str, query_size: int, key_size: int, attention_size: int) -> nn.Module:
    try:
        return ATTENTIONS[name](query_size, key_size, attention_size)
    except KeyError:
        raise ConfigError(f"unknown attention {name!r}; expected one of {', '.join(ATTENTIONS)}") from None
