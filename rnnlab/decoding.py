"""Decoding: turning a model's scores into tokens.

* sampling the next token of a language model: greedy, temperature, top-k, nucleus (top-p);
* sequence decoders for encoder-decoders: greedy and batched beam search with length normalisation;
* CTC decoders: best path (greedy) and prefix beam search.
"""

from __future__ import annotations

import math
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


# ---------------------------------------------------------------------- sequence decoders
#
# These work with any model that offers
#     memory, state = model.encode(src, lengths)
#     log_probs, state, weights = model.step(y_prev, state, memory)      # (B, V), tuple of (B, D), (B, S) | None
# and memory.expand(n) / memory.select(index) to follow beams.


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # sum of log-probabilities, EOS included
    attention: Tensor | None = None  # (len(tokens) + 1, S) when recorded

    def normalised(self, alpha: float) -> float:
        return self.score / ((len(self.tokens) + 1) ** alpha)


def greedy_decode(
    model, src: Tensor, lengths: Tensor, max_len: int, bos: int, eos: int, record_attention: bool = False
) -> list[Hypothesis]:
    """The most likely next token at every step, for a whole batch at once."""
    memory, state = model.encode(src, lengths)
    batch = src.shape[0]
    y = torch.full((batch,), bos, dtype=torch.int64)
    done = torch.zeros(batch, dtype=torch.bool)
    tokens, scores, weights = [], torch.zeros(batch), []
    for _ in range(max_len):
        log_probs, state, w = model.step(y, state, memory)
        best, y = log_probs.max(-1)
        scores += torch.where(done, 0.0, best)
        tokens.append(y)
        if record_attention and w is not None:
            weights.append(w)
        done |= y == eos
        if bool(done.all()):
            break
    tokens = torch.stack(tokens, 1).tolist()  # (B, steps)
    out = []
    for b in range(batch):
        seq = tokens[b][: tokens[b].index(eos)] if eos in tokens[b] else tokens[b]
        att = torch.stack([w[b] for w in weights])[: len(seq) + 1] if weights else None
        out.append(Hypothesis(seq, float(scores[b]), att))
    return out


def beam_search(
    model,
    src: Tensor,
    lengths: Tensor,
    beam: int,
    max_len: int,
    bos: int,
    eos: int,
    alpha: float = 1.0,
    record_attention: bool = False,
) -> list[Hypothesis]:
    """Beam search for a batch of sources, ``beam`` hypotheses each.

    At every step each live hypothesis is extended by every token, and per source the 2*beam best
    extensions are taken in order of score: those among the first ``beam`` that end in EOS become
    finished hypotheses, and the first ``beam`` that do not end in EOS live on. A source stops once
    it has ``beam`` finished hypotheses (or at ``max_len``, when its live ones count as finished).
    The answer is the finished hypothesis with the best length-normalised score,
    score / (length + 1)^alpha (alpha 0: the raw log-probability, 1: the mean per token).
    """
    if beam < 1:
        raise ConfigError(f"beam width must be at least 1, got {beam}")
    memory, state = model.encode(src, lengths)
    B, K = src.shape[0], beam
    memory = memory.expand(K)
    state = tuple(s.repeat_interleave(K, dim=0) for s in state)
    scores = torch.full((B, K), float("-inf"))
    scores[:, 0] = 0.0  # at first one live hypothesis per source (the K copies are identical)
    y = torch.full((B * K,), bos, dtype=torch.int64)
    history = torch.zeros(B * K, 0, dtype=torch.int64)  # tokens so far, per live hypothesis
    attention = None  # (B*K, steps, S) attention so far, per live hypothesis, when recorded
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]

    def attention_of(row: int, weights):
        if not record_attention or weights is None:
            return None
        now = weights[row][None]  # (1, S)
        return now if attention is None else torch.cat([attention[row], now])

    for _ in range(max_len):
        log_probs, state, weights = model.step(y, state, memory)  # (B*K, V)
        V = log_probs.shape[-1]
        top_scores, top_index = (scores[:, :, None] + log_probs.view(B, K, V)).view(B, K * V).topk(2 * K, dim=-1)
        origin, token = top_index // V, top_index % V  # (B, 2K): the hypothesis extended, the token added
        # an EOS extension finishes a hypothesis only if it ranks among the K best (as in fairseq):
        # a worse one would fill the finished list before better live hypotheses end
        is_eos = (token == eos) & (top_scores > float("-inf"))
        is_eos[:, K:] = False
        for b, j in torch.nonzero(is_eos, as_tuple=False).tolist():
            if len(finished[b]) < K:
                row = b * K + int(origin[b, j])
                finished[b].append(Hypothesis(history[row].tolist(), float(top_scores[b, j]), attention_of(row, weights)))
        live = ~(token == eos)
        pick = (live & ((live.cumsum(-1) - 1) < K)).float().argsort(dim=-1, descending=True, stable=True)[:, :K]
        picked_live = live.gather(1, pick)  # False where fewer than K non-EOS extensions exist
        scores = torch.where(picked_live, top_scores.gather(1, pick), torch.tensor(float("-inf")))
        done = torch.tensor([len(f) >= K for f in finished])
        scores[done] = float("-inf")
        rows = (torch.arange(B)[:, None] * K + origin.gather(1, pick)).view(-1)  # (B*K,) parent of each new one
        new_tokens = token.gather(1, pick).view(-1)
        if record_attention and weights is not None:
            now = weights[rows][:, None]  # (B*K, 1, S)
            attention = now if attention is None else torch.cat([attention[rows], now], dim=1)
        history = torch.cat([history[rows], new_tokens[:, None]], dim=1)
        state = tuple(s.index_select(0, rows) for s in state)
        memory = memory.select(rows)
        y = new_tokens
        if bool(done.all()):
            break
    for b in range(B):  # out of steps: live hypotheses count as finished
        for k in range(K):
            if len(finished[b]) < K and scores[b, k] > float("-inf"):
                row = b * K + k
                finished[b].append(
                    Hypothesis(history[row].tolist(), float(scores[b, k]), None if attention is None else attention[row])
                )
    return [max(f, key=lambda h: h.normalised(alpha)) for f in finished]


def decode_sequences(
    model,
    items: list[Tensor],
    beam: int,
    alpha: float,
    bos: int,
    eos: int,
    pad: int,
    batch_size: int = 64,
    record_attention=False,
) -> list[Hypothesis]:
    """Decode every source (a 1-D tensor of ids), in length-sorted batches padded with ``pad``; beam 1
    is greedy search. Each output is at most twice its source's length plus 10 tokens."""
    model.eval()
    out: list = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seqs = [items[i] for i in idx]
            lengths = torch.tensor([len(s) for s in seqs])
            src = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad)
            max_len = int(lengths.max()) * 2 + 10
            if beam == 1:
                hyps = greedy_decode(model, src, lengths, max_len, bos, eos, record_attention)
            else:
                hyps = beam_search(model, src, lengths, beam, max_len, bos, eos, alpha, record_attention)
            for i, h in zip(idx, hyps):
                out[i] = h
    return out


# ---------------------------------------------------------------------- CTC decoders
#
# log_probs (T, C) per utterance, class 0 the CTC blank. A label sequence is read off a path of
# per-frame classes by merging repeats and then dropping blanks: "aa-ab-" -> "aab".


def ctc_greedy(log_probs: Tensor, blank: int = 0) -> list[int]:
    """Best path: the likeliest class at every frame, repeats merged, blanks dropped."""
    path = log_probs.argmax(-1).tolist()
    out, previous = [], blank
    for c in path:
        if c != previous and c != blank:
            out.append(c)
        previous = c
    return out


def ctc_prefix_beam_search(log_probs: Tensor, beam: int = 8, blank: int = 0) -> list[int]:
    """The label sequence with the highest total probability over all its paths, searched with
    prefix beam search (Hannun et al. 2014, without a language model).

    Each prefix keeps two log-probabilities: of the paths so far that end in a blank, and of those
    that end in its last label; both are needed because a repeated label only counts twice when a
    blank separates the two.
    """
    if beam < 1:
        raise ConfigError(f"beam width must be at least 1, got {beam}")
    neg_inf = float("-inf")
    lp = log_probs.double().tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}  # prefix -> (log p_blank, log p_label)
    for frame in lp:
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, blank_lp, label_lp, nxt=nxt):
            old = nxt.setdefault(prefix, [neg_inf, neg_inf])
            old[0] = _logaddexp(old[0], blank_lp)
            old[1] = _logaddexp(old[1], label_lp)

        for prefix, (pb, pl) in beams.items():
            total = _logaddexp(pb, pl)
            add(prefix, total + frame[blank], neg_inf)  # a blank: the prefix stays
            last = prefix[-1] if prefix else None
            for c, lc in enumerate(frame):
                if c == blank:
                    continue
                if c == last:
                    add(prefix, neg_inf, pl + lc)  # the same label again, merged
                    add(prefix + (c,), neg_inf, pb + lc)  # a new copy, after a blank
                else:
                    add(prefix + (c,), neg_inf, total + lc)
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    best = max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))
    return list(best[0])


def _logaddexp(a: float, b: float) -> float:
    if a == float("-inf"):
        return b
    if b == float("-inf"):
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_decode(log_probs: Tensor, lengths: Tensor, beam: int = 1, blank: int = 0) -> list[list[int]]:
    """Labels of each utterance of a batch: log_probs (B, T, C), lengths (B,); beam 1 is best path."""
    out = []
    for lp, n in zip(log_probs, lengths.tolist()):
        out.append(ctc_greedy(lp[:n], blank) if beam == 1 else ctc_prefix_beam_search(lp[:n], beam, blank))
    return out
