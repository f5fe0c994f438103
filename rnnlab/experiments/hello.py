"""The classic toy: a character RNN learns to continue "hell" with "ello".

Vocabulary {h, e, l, o}; input "hell", targets "ello" (each step predicts the next character).
The two steps that read "l" need different answers ("l" after "hel", "o" after "hell"), so the
network must use its memory of the earlier steps: a model of the current character alone tops
out at 3 of 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnlab.data.vocab import CharVocab
from rnnlab.models.lm import CharLM, CharLMConfig

WORD = "hello"


@dataclass
class StepPrediction:
    input: str
    target: str
    predicted: str
    p_target: float  # the probability the model gives the right answer


@dataclass
class HelloResult:
    before: list[StepPrediction]
    after: list[StepPrediction]
    losses: list[float]  # per training step, nats per character

    @staticmethod
    def accuracy(steps: list[StepPrediction]) -> float:
        return sum(s.predicted == s.target for s in steps) / len(steps)


def predictions(model: CharLM, vocab: CharVocab) -> list[StepPrediction]:
    inputs = vocab.encode(WORD[:-1])
    with torch.no_grad():
        probs = model(inputs[None])[0][0].softmax(-1)  # (T, V)
    return [
        StepPrediction(
            WORD[t], WORD[t + 1], vocab.chars[int(probs[t].argmax())], float(probs[t, vocab.encode(WORD[t + 1])[0]])
        )
        for t in range(len(WORD) - 1)
    ]


def train_hello(cell: str = "rnn", hidden_size: int = 8, steps: int = 100, lr: float = 0.05, seed: int = 0) -> HelloResult:
    torch.manual_seed(seed)
    vocab = CharVocab.from_text(WORD)  # e, h, l, o
    model = CharLM(CharLMConfig(len(vocab), cell=cell, embedding_dim=len(vocab), hidden_size=hidden_size))
    inputs, targets = vocab.encode(WORD[:-1])[None], vocab.encode(WORD[1:])[None]  # (1, 4)
    before = predictions(model, vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits[0], targets[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return HelloResult(before, predictions(model, vocab), losses)
