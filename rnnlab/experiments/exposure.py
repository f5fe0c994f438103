"""Teacher forcing against scheduled sampling: ``rnnlab experiment exposure``.

A character model trained with teacher forcing only ever reads true text, yet it generates by reading
its own samples ("exposure bias"). Scheduled sampling (Bengio et al. 2015) feeds the model, at each
step of training, its own sampled previous character instead of the true one with probability p,
ramped from 0 to ``max_p`` over training.

Both models get the same architecture, data, optimiser, schedule and number of steps (through the
same Trainer). Then:

* teacher-forced validation loss (nats/char on the held-out 10%);
* free-running text: samples from each model, scored by the other model (nats/char: how plausible
  one model finds the other's text) and by itself;
* n-gram statistics of the samples against the training text: the share of generated words that
  occur in the corpus, and the Jensen-Shannon divergence between the samples' character-trigram
  distribution and the corpus's.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.data.streams import StreamBatches
from rnnlab.data.text import bundled_corpus
from rnnlab.data.vocab import CharVocab
from rnnlab.decoding import SamplingOptions
from rnnlab.errors import ConfigError
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.tasks.charlm import generate, score_tokens, split_tokens
from rnnlab.train import TrainConfig, Trainer


class ScheduledBatches:
    """StreamBatches whose batches also carry ``sampling_prob``: 0 at step 0, ``max_p`` at ``steps``."""

    def __init__(self, inner: StreamBatches, max_p: float, steps: int) -> None:
        self.inner, self.max_p, self.steps = inner, max_p, steps

    def __len__(self) -> int:
        return len(self.inner)

    def batch(self, step: int):
        b = self.inner.batch(step)
        b.sampling_prob = self.max_p * min(1.0, step / self.steps)
        return b


@dataclass
class ModelReport:
    name: str
    val_loss: float  # teacher-forced, nats/char
    self_score: float  # its own samples, scored by itself
    cross_score: float  # its own samples, scored by the other model
    corpus_words: float  # share of sampled words found in the training text
    trigram_js: float  # Jensen-Shannon divergence (bits) of sampled vs corpus character trigrams
    sample: str


def _trigrams(text: str) -> Counter:
    return Counter(text[i : i + 3] for i in range(len(text) - 2))


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence in bits between two count distributions (0 = same, 1 = disjoint)."""
    np_, nq = sum(p.values()), sum(q.values())
    total = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0) / np_, q.get(key, 0) / nq
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0) + (b * math.log2(b / m) if b else 0)
    return total / 2


def exposure_experiment(
    steps: int = 600, hidden: int = 256, max_p: float = 0.25, samples: int = 8, sample_length: int = 1000, seed: int = 0
) -> list[ModelReport]:
    if steps < 1 or hidden < 1 or not 0 < max_p < 1 or samples < 1 or sample_length < 10:
        raise ConfigError("need steps >= 1, hidden >= 1, 0 < max-p < 1, samples >= 1, sample length >= 10")
    corpus = bundled_corpus()
    vocab = CharVocab.from_text(corpus)
    train_tokens, val_tokens = split_tokens(vocab.encode(corpus), 0.1)
    config = TrainConfig(max_steps=steps, eval_every=steps, seed=seed, lr=3e-3)
    runs = {}
    for name, p in (("teacher forcing", 0.0), (f"scheduled sampling (p up to {max_p:g})", max_p)):
        torch.manual_seed(seed)
        lm = CharLM(CharLMConfig(len(vocab), hidden_size=hidden))  # reads its own samples when a batch says so
        batches = ScheduledBatches(StreamBatches(train_tokens, 32, 64, seed=seed), p, steps)
        with tempfile.TemporaryDirectory() as tmp:
            result = Trainer(
                lm,
                batches=batches,
                evaluate=lambda m: {"val_loss": score_tokens(m, val_tokens).nats_per_char},
                config=config,
                run_dir=Path(tmp),
                kind="exposure",
                describe=lambda: {},
            ).fit()
        runs[name] = (lm.eval(), result.metrics["val_loss"])
    corpus_trigrams = _trigrams(corpus)
    corpus_words = set(re.findall(r"[A-Za-z']+", corpus))
    names = list(runs)
    reports = []
    for name in names:
        model, val = runs[name]
        other = runs[names[1 - names.index(name)]][0]
        texts = [
            "".join(generate(model, vocab, "", sample_length, SamplingOptions(1.0), seed=seed + i)) for i in range(samples)
        ]
        joined = "\n".join(texts)
        words = re.findall(r"[A-Za-z']+", joined)
        reports.append(
            ModelReport(
                name=name,
                val_loss=val,
                self_score=_score_texts(model, vocab, texts),
                cross_score=_score_texts(other, vocab, texts),
                corpus_words=sum(w in corpus_words for w in words) / max(1, len(words)),
                trigram_js=js_divergence(_trigrams(joined), corpus_trigrams),
                sample=texts[0][:300],
            )
        )
    return reports


def _score_texts(model: CharLM, vocab: CharVocab, texts: list[str]) -> float:
    scores = [score_tokens(model, vocab.encode("\n" + t)) for t in texts]
    return sum(s.nats_per_char * s.chars for s in scores) / sum(s.chars for s in scores)


def table(reports: list[ModelReport]) -> str:
    lines = [
        "| training | validation loss (teacher-forced) | own samples scored by itself | "
        "own samples scored by the other model | sampled words found in the corpus | trigram JS divergence vs corpus |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r.name} | {r.val_loss:.4f} | {r.self_score:.4f} | {r.cross_score:.4f} | "
            f"{100 * r.corpus_words:.1f}% | {r.trigram_js:.4f} |"
        )
    return "\n".join(lines)
