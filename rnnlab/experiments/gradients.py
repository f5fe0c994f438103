"""Gradient flow through time, measured: ``rnnlab gradients``.

Three experiments on character models fed real text (Tiny Shakespeare's held-out part):

1. ||dL/ds_t|| for every t of a length-T sequence (L reads the last hidden state; s_t is the whole
   state, h_t and for an LSTM c_t): for untrained vanilla RNNs whose W_hh is rescaled to spectral
   radius 0.5, 0.9, 1.0, 1.1, 1.5 and 2.0; for a vanilla RNN and the chosen cell after the same short
   training run; for the chosen cell untrained; and for any trained model given. Each curve gets a
   fitted rate per step (the factor by which the gradient shrinks or grows per step back in time).
2. The spectral radius and largest singular value of each model's W_hh.
3. Clipping: a vanilla RNN started at radius 1.5, trained by plain SGD (lr 0.5) with and without
   gradient-norm clipping, five seeds each: the loss and the gradient norm before clipping at every
   step, how often the loss shot up above where it started, and where it ended.

The untrained models read their embeddings scaled by ``INPUT_SCALE`` = 0.3: at the embedding's
full N(0, 1) scale the inputs alone hold many tanh units in saturation, where tanh' is small, and
that hides the dependence on W_hh that the experiment is about (measured with the full scale,
radius 1.5 still shrinks the gradient, at 0.99 per step).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.data.text import bundled_corpus
from rnnlab.data.vocab import CharVocab
from rnnlab.diagnostics import Fit, fit_rate, largest_singular_value, set_spectral_radius, state_gradient_norms
from rnnlab.diagnostics import spectral_radius as radius_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.models.lm import CharLM, CharLMConfig
from rnnlab.tasks import charlm, load, make_options, train

RADII = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0)
INPUT_SCALE = 0.3
CLIP_SEEDS = 5


@dataclass
class Curve:
    label: str
    norms: np.ndarray  # (T,) ||dL/dh_t||, t = 0..T-1
    fit: Fit
    radius: float | None  # spectral radius of W_hh (square only: the vanilla RNN)
    sigma_max: float  # largest singular value of W_hh (all gates stacked)


@dataclass
class ClipRun:
    label: str
    seed: int
    losses: list[float]
    norms: list[float]  # before clipping

    @property
    def blew_up(self) -> bool:
        """Did the loss ever rise above where training started (after the first 10 steps)?"""
        return not all(np.isfinite(self.losses)) or max(self.losses[10:]) > self.losses[0]


@dataclass
class GradientReport:
    curves: list[Curve]
    clipping: list[ClipRun]
    steps: int


def _windows(vocab: CharVocab, text: str, batch: int, steps: int) -> torch.Tensor:
    """(batch, steps) token windows spread evenly over ``text``."""
    tokens = vocab.encode(text)
    starts = np.linspace(0, len(tokens) - steps - 1, batch).astype(int)
    return torch.stack([tokens[s : s + steps] for s in starts])


def _curve(label: str, model: CharLM, windows: torch.Tensor, input_scale: float = 1.0) -> Curve:
    model = model.double().eval()
    cell = model.rnn.cells[0]
    with torch.no_grad():
        x = model.embed(windows) * input_scale  # (B, T, E)
    norms = state_gradient_norms(cell, x).numpy()
    w = cell.weight_hh
    radius = radius_of(w) if w.shape[0] == w.shape[1] else None
    model.float()
    return Curve(label, norms, fit_rate(norms), radius, largest_singular_value(w))


def _trained(cell: str, hidden: int, train_steps: int, seed: int) -> CharLM:
    options = make_options(
        charlm.TASK,
        model={"cell": cell, "hidden_size": hidden},
        data={"seq_len": 100, "batch_size": 32},
        train={"max_steps": train_steps, "eval_every": train_steps, "seed": seed},
    )
    with tempfile.TemporaryDirectory() as tmp:
        return train(charlm.TASK, options, Path(tmp) / "run", progress=False).run.model


def gradient_flow(
    cell: str = "lstm",
    steps: int = 100,
    hidden: int = 128,
    train_steps: int = 300,
    seed: int = 0,
    run: str | None = None,
) -> GradientReport:
    if steps < 2 or hidden < 1 or train_steps < 0:
        raise ConfigError(f"need steps >= 2, hidden >= 1, train steps >= 0; got {steps}, {hidden}, {train_steps}")
    corpus = bundled_corpus()
    vocab = CharVocab.from_text(corpus)
    windows = _windows(vocab, corpus[int(len(corpus) * 0.9) :], batch=16, steps=steps)

    def fresh(kind: str) -> CharLM:
        torch.manual_seed(seed)
        return CharLM(CharLMConfig(len(vocab), cell=kind, hidden_size=hidden))

    curves = []
    for r in RADII:
        model = fresh("rnn")
        set_spectral_radius(model.rnn.cells[0].weight_hh, r)
        curves.append(_curve(f"rnn untrained, W_hh radius {r}", model, windows, INPUT_SCALE))
    curves.append(_curve(f"{cell} untrained", fresh(cell), windows, INPUT_SCALE))
    if train_steps:
        for kind in dict.fromkeys(["rnn", cell]):
            curves.append(_curve(f"{kind} trained {train_steps} steps", _trained(kind, hidden, train_steps, seed), windows))
    if run is not None:
        trained = load(run, charlm.TASK.kind)
        if trained.vocab.chars != vocab.chars:
            raise DataError(f"{run}: not a model of the bundled corpus (its vocabulary differs)")
        c = trained.model.config
        curves.append(_curve(f"{c.cell} {c.hidden_size} from {Path(run).name}", trained.model, windows))
    clipping = [_clip_run(vocab, corpus, hidden, clip, seed + k) for clip in (None, 1.0) for k in range(CLIP_SEEDS)]
    return GradientReport(curves, clipping, steps)


def _clip_run(vocab: CharVocab, corpus: str, hidden: int, clip: float | None, seed: int, steps: int = 150) -> ClipRun:
    """Plain SGD (lr 0.5) on a vanilla RNN character model started at W_hh radius 1.5, 100-character BPTT."""
    torch.manual_seed(seed)
    model = CharLM(CharLMConfig(len(vocab), cell="rnn", hidden_size=hidden))
    set_spectral_radius(model.rnn.cells[0].weight_hh, 1.5)
    with torch.no_grad():
        model.embed.weight.mul_(INPUT_SCALE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    windows = _windows(vocab, corpus[: int(len(corpus) * 0.9)], batch=steps * 16, steps=101)
    order = np.random.default_rng(seed).permutation(len(windows))  # the same batches with and without clipping
    losses, norms = [], []
    for i in range(steps):
        batch = windows[order[i * 16 : (i + 1) * 16]]
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip else float("inf"))
        losses.append(loss.item())
        norms.append(norm.item())
        if not np.isfinite(loss.item()):
            break
        optimizer.step()
    return ClipRun("no clipping" if clip is None else f"clip norm {clip:g}", seed, losses, norms)
