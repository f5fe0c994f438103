"""The classic toy: a character RNN learns to continue "hell" with "ello".

Vocabulary {h, e, l, o}; input "hell", targets "ello" (each step predicts the next character).
The two steps that read "l" need different answers ("l" after "hel", "o" after "hell"), so the
network must use its memory of the earlier steps: a model of the current character alone tops
out at 3 of 4.

Two versions:

* ``train_hello``: rnnlab's character model (a learned embedding, any cell, any width).
* ``train_textbook``: the lecture's slide exactly (CS231n lecture 10): vocabulary [h, e, l, o] in
  that order, each character a one-hot vector x_t (4,), 3 hidden units, and
      h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)        y_t = W_hy h_t + b_y    (4 scores)
  with every step's h_t and y_t recorded before and after training, as the slide draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnlab.cells import RNNCell
from rnnlab.data.vocab import CharVocab
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.reference.stateful import RNN

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


TEXTBOOK_VOCAB = ("h", "e", "l", "o")  # the slide's order


@dataclass
class TextbookStep:
    input: str
    target: str
    h: list[float]  # h_t (3,)
    y: list[float]  # y_t (4,): the output layer's scores, one per character of TEXTBOOK_VOCAB

    @property
    def predicted(self) -> str:
        return TEXTBOOK_VOCAB[max(range(len(self.y)), key=self.y.__getitem__)]


@dataclass
class TextbookResult:
    before: list[TextbookStep]
    after: list[TextbookStep]
    losses: list[float]  # per training step, nats per character

    @staticmethod
    def accuracy(steps: list[TextbookStep]) -> float:
        return sum(s.predicted == s.target for s in steps) / len(steps)


def one_hot(char: str) -> torch.Tensor:
    """x_t: a 1 at the character's place in [h, e, l, o], zeros elsewhere. (4,)"""
    return torch.eye(len(TEXTBOOK_VOCAB))[TEXTBOOK_VOCAB.index(char)]


def textbook_trace(cell: RNNCell, head: torch.nn.Linear) -> list[TextbookStep]:
    """Run the lecture's stateful RNN (rnnlab.reference.stateful, the same weights) over "hell"."""
    rnn = RNN.from_cell(cell, head)
    steps = []
    for t in range(len(WORD) - 1):
        y = rnn.step(one_hot(WORD[t]).double().numpy())
        steps.append(TextbookStep(WORD[t], WORD[t + 1], rnn.h.tolist(), y.tolist()))
    return steps


def train_textbook(steps: int = 200, lr: float = 0.05, seed: int = 0, hidden_size: int = 3) -> TextbookResult:
    """Train the slide's RNN (one-hot inputs, 3 hidden units, output scores) with Adam on "hello"."""
    torch.manual_seed(seed)
    cell, head = RNNCell(len(TEXTBOOK_VOCAB), hidden_size), torch.nn.Linear(hidden_size, len(TEXTBOOK_VOCAB))
    x = torch.stack([one_hot(c) for c in WORD[:-1]])  # (T, 4), T = 4
    targets = torch.tensor([TEXTBOOK_VOCAB.index(c) for c in WORD[1:]])  # (T,)
    before = textbook_trace(cell, head)
    optimizer = torch.optim.Adam([*cell.parameters(), *head.parameters()], lr=lr)
    losses = []
    for _ in range(steps):
        state, scores = None, []
        for t in range(len(x)):  # the same W_xh, W_hh, W_hy at every step
            h, state = cell(x[t : t + 1], state)
            scores.append(head(h))
        loss = F.cross_entropy(torch.cat(scores), targets)  # summed over time by BPTT, averaged here
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return TextbookResult(before, textbook_trace(cell, head), losses)
