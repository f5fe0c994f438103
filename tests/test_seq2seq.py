"""Attention, the encoder-decoder, and greedy / beam search decoding."""

import itertools
import math

import pytest
import torch

from rnnlab.attention import ATTENTIONS, Memory, make_attention
from rnnlab.data.tokens import BOS, EOS, PAD
from rnnlab.decoding import Hypothesis, beam_search, greedy_decode
from rnnlab.errors import ConfigError
from rnnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_attention_ignores_padding(name):
    torch.manual_seed(0)
    attn = make_attention(name, 6, 6, 5)
    keys = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    query = torch.randn(2, 6)
    context, weights = attn(query, attn.prepare(keys, mask))
    junk = keys.clone()
    junk[1, 2:] = 100.0  # padding content must not matter
    context2, _ = attn(query, attn.prepare(junk, mask))
    torch.testing.assert_close(context, context2)
    if weights is not None:
        assert torch.all(weights[1, 2:] == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2))
        torch.testing.assert_close(context, torch.bmm(weights[:, None], keys).squeeze(1))
    else:  # no attention: the mean of the real steps, whatever the query
        torch.testing.assert_close(context[1], keys[1, :2].mean(0))


def test_dot_attention_needs_equal_sizes():
    with pytest.raises(ConfigError, match="equal query and key sizes"):
        make_attention("dot", 4, 6, 5)


class MarkovModel:
    """A decoder whose next-token distribution depends only on the previous token: log P[y_prev]."""

    def __init__(self, log_p: torch.Tensor):
        self.log_p = log_p

    def encode(self, src, lengths):
        b = src.shape[0]
        return Memory(torch.zeros(b, 1, 1), torch.ones(b, 1, dtype=torch.bool)), (torch.zeros(b, 1),)

    def step(self, y_prev, state, memory):
        return self.log_p[y_prev], state, None


def _brute_force(log_p, max_len, alpha):
    best = None
    V = log_p.shape[0]
    for n in range(max_len + 1):
        for seq in itertools.product([t for t in range(V) if t not in (BOS, EOS)], repeat=n):
            path = [BOS, *seq, EOS] if n < max_len else [BOS, *seq]
            if n == max_len:  # out of steps without EOS
                path = [BOS, *seq]
            score = sum(float(log_p[a, b]) for a, b in zip(path, path[1:]))
            h = Hypothesis(list(seq), score)
            if best is None or h.normalised(alpha) > best.normalised(alpha):
                best = h
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_finds_the_best_sequence(alpha):
    torch.manual_seed(3)
    V = 6
    log_p = torch.randn(V, V).mul(2).log_softmax(-1)
    model = MarkovModel(log_p)
    src, lengths = torch.zeros(1, 1, dtype=torch.long), torch.tensor([1])
    wide = beam_search(model, src, lengths, beam=V**3, max_len=3, bos=BOS, eos=EOS, alpha=alpha)[0]
    best = _brute_force(log_p, 3, alpha)
    assert wide.tokens == best.tokens
    assert math.isclose(wide.score, best.score, rel_tol=1e-5)


def test_beam_of_one_is_greedy_and_wider_is_never_worse():
    torch.manual_seed(4)
    log_p = torch.randn(7, 7).mul(2).log_softmax(-1)
    model = MarkovModel(log_p)
    src, lengths = torch.zeros(3, 1, dtype=torch.long), torch.tensor([1, 1, 1])
    greedy = greedy_decode(model, src, lengths, 6, BOS, EOS)
    one = beam_search(model, src, lengths, 1, 6, BOS, EOS, alpha=0.0)
    five = beam_search(model, src, lengths, 5, 6, BOS, EOS, alpha=0.0)
    for g, o, f in zip(greedy, one, five):
        assert g.tokens == o.tokens and math.isclose(g.score, o.score, rel_tol=1e-5)
        assert f.score >= o.score - 1e-6
    with pytest.raises(ConfigError, match="beam width"):
        beam_search(model, src, lengths, 0, 6, BOS, EOS)


def _reverse_batch(g, batch=32, vocab=12):
    lengths = torch.randint(3, 7, (batch,), generator=g)
    src = torch.zeros(batch, 6, dtype=torch.long)
    tgt_in = torch.zeros(batch, 7, dtype=torch.long)
    tgt_out = torch.full((batch, 7), -100)
    for b, n in enumerate(lengths.tolist()):
        seq = torch.randint(4, vocab, (n,), generator=g)
        src[b, :n] = seq
        rev = seq.flip(0)
        tgt_in[b, : n + 1] = torch.cat([torch.tensor([BOS]), rev])
        tgt_out[b, : n + 1] = torch.cat([rev, torch.tensor([EOS])])
    return src, lengths, tgt_in, tgt_out


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_seq2seq_learns_to_reverse(attention):
    """Reversing 3-6 symbols: with attention it is solved in a few hundred steps; without, the fixed
    context vector (trained just as long) does clearly worse."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Seq2Seq(
        Seq2SeqConfig(
            12,
            12,
            cell="gru",
            embedding_dim=32,
            hidden_size=32,
            encoder_layers=1,
            attention=attention,
            attention_size=32,
            dropout=0.0,
            label_smoothing=0.0,
        )
    )
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    from types import SimpleNamespace

    for _ in range(500):
        src, lengths, tgt_in, tgt_out = _reverse_batch(g)
        loss, _ = model.loss(SimpleNamespace(src=src, src_lengths=lengths, tgt_in=tgt_in, tgt_out=tgt_out))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as the trainer does: no late Adam spikes
        opt.step()
    model.eval()
    src, lengths, _, _ = _reverse_batch(torch.Generator().manual_seed(99), batch=200)
    with torch.no_grad():
        hyps = beam_search(model, src, lengths, 3, 10, BOS, EOS, record_attention=True)
        greedy = greedy_decode(model, src, lengths, 10, BOS, EOS)
        one = beam_search(model, src, lengths, 1, 10, BOS, EOS)
    assert [h.tokens for h in one] == [h.tokens for h in greedy]  # a beam of one is greedy decoding
    exact = sum(h.tokens == src[b, : lengths[b]].flip(0).tolist() for b, h in enumerate(hyps)) / len(hyps)
    if attention == "additive":  # 0.89-0.995 over seeds 0-3 and both training paths (fused, hand-written)
        assert exact > 0.85
        att = hyps[0].attention  # (len + 1, S): the first output word looks at the last input word
        assert att.shape == (len(hyps[0].tokens) + 1, 6)
        assert int(att[0].argmax()) == int(lengths[0]) - 1
    else:
        assert exact < 0.9
    assert PAD not in hyps[0].tokens
