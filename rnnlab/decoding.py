"""Decoding: turning a model's scores into tokens.

* sampling the next token of a language model: greedy, temperature, top-k, nucleus (top-p);
* sequence decoders for encoder-decoders: greedy and batched beam search with length normalisation;
* CTC decoders: best path (greedy) and prefix beam search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.device import device_of
from rnnlab.errors import ConfigError

MAX_BEAM = 100  # the widest beam the tasks accept: wider ones find nothing better and cost memory in proportion


def check_beam(beam: int) -> int:
    """``beam`` if it is a usable beam width, else one clear ConfigError."""
    if not 1 <= beam <= MAX_BEAM:
        raise ConfigError(f"beam width must be in [1, {MAX_BEAM}], got {beam}")
    return beam


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
    """logits (B, V) -> token ids (B,); a ``generator`` must be on the logits' device."""
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
    batch, device = src.shape[0], src.device
    y = torch.full((batch,), bos, dtype=torch.int64, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, scores, weights = [], torch.zeros(batch, device=device), []
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
    B, K, device = src.shape[0], beam, src.device
    memory = memory.expand(K)
    state = tuple(s.repeat_interleave(K, dim=0) for s in state)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # at first one live hypothesis per source (the K copies are identical)
    y = torch.full((B * K,), bos, dtype=torch.int64, device=device)
    history = torch.zeros(B * K, 0, dtype=torch.int64, device=device)  # tokens so far, per live hypothesis
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
        scores = torch.where(picked_live, top_scores.gather(1, pick), torch.tensor(float("-inf"), device=device))
        done = torch.tensor([len(f) >= K for f in finished], device=device)
        scores[done] = float("-inf")
        rows = (torch.arange(B, device=device)[:, None] * K + origin.gather(1, pick)).view(-1)  # (B*K,) parents
        new_tokens = token.gather(1, pick).view(-1)
        if record_attention and weights is not None:
            now = weights[rows][:, None]  # (B*K, 1, S)
            attention = now if attention is None else torch.cat([attention[rows], now], dim=1)
        history = torch.cat([history[rows], new_tokens[:, None]], dim=1)
        state = tuple(s.index_select(0, rows) for s in state)
        # the memory needs no reordering: every parent row is a hypothesis of the same source, and the
        # K copies of a source's memory are the same
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
            src = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad).to(device_of(model))
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

    Each prefix keeps two log-probabilities: of the paths so far that end in a blank (p_b), and of
    those that end in its last label (p_l); both are needed because a repeated label only counts
    twice when a blank separates the two. At each frame with log-probabilities f, a prefix y
    (total t = logaddexp(p_b, p_l)) stays y through a blank (p_b' = t + f_blank) or by repeating its
    last label (p_l' = p_l + f_last), and becomes y + c through any other label (p_l' = t + f_c; for
    c = last, only from p_b). The ``beam`` best of these are kept.

    The extensions are scored for the whole beam at once (NumPy), and prefixes are nodes of a trie
    (parent, label), so each frame costs the same whatever the length of the prefixes: the time is
    linear in the number of frames (about 15,000 frames/s here at beam 8, 11 labels).
    """
    if beam < 1:
        raise ConfigError(f"beam width must be at least 1, got {beam}")
    lp = log_probs.detach().double().cpu().numpy()  # (T, C)
    classes = lp.shape[1]
    parent, label, child = [-1], [-1], {}  # the trie: node 0 is the empty prefix
    nodes, pb, pl = np.array([0]), np.array([0.0]), np.array([-np.inf])
    for f in lp:
        total = np.logaddexp(pb, pl)  # (K,)
        last = np.array([label[n] for n in nodes])  # (K,): -1 for the empty prefix
        stay_pb = total + f[blank]
        stay_pl = np.where(last >= 0, pl + f[np.maximum(last, 0)], -np.inf)
        ext = np.where(np.arange(classes)[None, :] == last[:, None], pb[:, None], total[:, None]) + f[None, :]  # (K, C)
        ext[:, blank] = -np.inf
        row = {n: j for j, n in enumerate(nodes.tolist())}
        for j, n in enumerate(nodes.tolist()):  # an extension that is already in the beam adds to it
            k = row.get(parent[n])
            if k is not None:
                stay_pl[j] = np.logaddexp(stay_pl[j], ext[k, label[n]])
                ext[k, label[n]] = -np.inf
        scores = np.concatenate([np.logaddexp(stay_pb, stay_pl), ext.ravel()])
        top = np.argsort(-scores, kind="stable")[:beam]
        top = top[np.isfinite(scores[top])]
        new_nodes, new_pb, new_pl = [], [], []
        for i in top.tolist():
            if i < len(nodes):
                new_nodes.append(int(nodes[i]))
                new_pb.append(stay_pb[i])
                new_pl.append(stay_pl[i])
                continue
            k, c = divmod(i - len(nodes), classes)
            key = (int(nodes[k]), c)
            if key not in child:
                child[key] = len(parent)
                parent.append(key[0])
                label.append(c)
            new_nodes.append(child[key])
            new_pb.append(-np.inf)
            new_pl.append(ext[k, c])
        nodes, pb, pl = np.array(new_nodes), np.array(new_pb), np.array(new_pl)
    node = int(nodes[np.argmax(np.logaddexp(pb, pl))])
    out = []
    while node > 0:
        out.append(label[node])
        node = parent[node]
    return out[::-1]


def ctc_decode(log_probs: Tensor, lengths: Tensor, beam: int = 1, blank: int = 0) -> list[list[int]]:
    """Labels of each utterance of a batch: log_probs (B, T, C), lengths (B,); beam 1 is best path."""
    out = []
    for lp, n in zip(log_probs, lengths.tolist()):
        out.append(ctc_greedy(lp[:n], blank) if beam == 1 else ctc_prefix_beam_search(lp[:n], beam, blank))
    return out
