"""How long can each cell remember? ``rnnlab experiment memory``.

The task (a noisy "copy the first symbol" task): a sequence of ``lag + 1`` steps starts with a
signal symbol drawn from K = 8, continues with ``lag - 1`` random distractor symbols (from another
8) and ends with a query marker; the network must answer the signal symbol at the query. Chance is
1/8. Only the state carried through ``lag`` steps can hold the answer, and the gradient that teaches
the network to keep it must travel back the same distance.

Every cell gets the same parameter budget (the hidden size is chosen per cell to match the LSTM's
parameter count), the same optimiser, batch and number of steps, and is scored on fresh sequences.
Each gated cell is run twice: with torch's initialisation (every bias near 0, so its forget or update
gate starts half open and a signal fades like 0.5^k), and with that gate biased to remember
(``rnnlab.cells.bias_to_remember``, bias 3: 0.95^k).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnlab.cells import cell_class
from rnnlab.errors import ConfigError
from rnnlab.models.recall import Recaller

SIGNALS = 8  # K: symbols to remember (chance = 1/K)
DISTRACTORS = 8
QUERY = SIGNALS + DISTRACTORS  # the last input symbol
SYMBOLS = QUERY + 1
LAGS = (5, 10, 20, 50, 100, 200)
VARIANTS = (("rnn", None), ("lstm", None), ("gru", None), ("lstm", 3.0), ("gru", 3.0))  # (cell, gate bias)


def make_batch(batch: int, lag: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (B, lag + 1) symbol ids, targets (B,) signal ids)."""
    signal = torch.randint(0, SIGNALS, (batch,), generator=generator)
    noise = torch.randint(SIGNALS, SIGNALS + DISTRACTORS, (batch, lag - 1), generator=generator)
    query = torch.full((batch, 1), QUERY)
    return torch.cat([signal[:, None], noise, query], dim=1), signal


def parameter_count(cell: str, hidden: int) -> int:
    gates = cell_class(cell).num_gates
    return gates * (hidden * (SYMBOLS + hidden) + 2 * hidden) + hidden * SIGNALS + SIGNALS


def matched_hidden(cell: str, budget: int) -> int:
    """The hidden size whose parameter count is closest to ``budget``."""
    return min(range(1, 4096), key=lambda h: abs(parameter_count(cell, h) - budget))


@dataclass
class Result:
    cell: str  # the cell, and how it was initialised, e.g. "lstm, forget bias 3"
    hidden: int
    params: int
    lag: int
    accuracy: float  # on 2,000 fresh sequences
    final_loss: float
    seconds: float


def variant_name(cell: str, remember_bias: float | None) -> str:
    if remember_bias is None:
        return cell
    return f"{cell}, {'forget' if cell == 'lstm' else 'update'} bias {remember_bias:g}"


def train_one(
    cell: str,
    hidden: int,
    lag: int,
    steps: int,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    remember_bias: float | None = None,
) -> Result:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Recaller(cell, hidden, SYMBOLS, SIGNALS, remember_bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    started = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        ids, targets = make_batch(batch, lag, g)
        loss = F.cross_entropy(model(ids)[0], targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - started
    test = torch.Generator().manual_seed(10_000 + seed)
    with torch.inference_mode():
        ids, targets = make_batch(2000, lag, test)
        accuracy = float((model(ids)[0].argmax(-1) == targets).float().mean())
    name = variant_name(cell, remember_bias)
    return Result(name, hidden, parameter_count(cell, hidden), lag, accuracy, loss.item(), seconds)


def memory_experiment(
    lags=LAGS, variants=VARIANTS, lstm_hidden: int = 64, steps: int = 1000, seed: int = 0, on_result=None
) -> list[Result]:
    if steps < 1 or lstm_hidden < 1 or any(lag < 2 for lag in lags):
        raise ConfigError(f"need steps >= 1, hidden >= 1 and lags >= 2; got {steps}, {lstm_hidden}, {list(lags)}")
    budget = parameter_count("lstm", lstm_hidden)
    results = []
    for cell, remember_bias in variants:
        hidden = matched_hidden(cell, budget)
        for lag in lags:
            result = train_one(cell, hidden, lag, steps, seed=seed, remember_bias=remember_bias)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def table(results: list[Result]) -> str:
    lags = sorted({r.lag for r in results})
    cells = list(dict.fromkeys(r.cell for r in results))
    lines = [
        "| cell (hidden, params) | " + " | ".join(f"lag {lag}" for lag in lags) + " | falls to chance at |",
        "|---|" + "---|" * len(lags) + "---|",
    ]
    for cell in cells:
        rows = {r.lag: r for r in results if r.cell == cell}
        first = next(iter(rows.values()))
        chance_at = next((lag for lag in lags if rows[lag].accuracy < 1 / SIGNALS + 0.05), None)
        cells_text = " | ".join(f"{100 * rows[lag].accuracy:.0f}%" for lag in lags)
        lines.append(
            f"| {cell} ({first.hidden}, {first.params:,}) | {cells_text} | "
            f"{'lag ' + str(chance_at) if chance_at else 'never (up to ' + str(lags[-1]) + ')'} |"
        )
    return "\n".join(lines)
