"""Time series from CSV files, and what a forecaster reads of them.

    df = read_series("msft_daily.csv", values=["Close"], index="Date")
    p = prepare_series("airline.csv", None, None, None, log=True, window=24, horizon=12, ...)
    x, y = windows(p.z, p.scaling, origins, window=24, horizon=12)

A series is optionally log-transformed (growth that multiplies, like passengers or prices), then
differenced; differences are scaled by their standard deviation on the training part only. A
forecaster reads the last ``window`` scaled differences of every value column and predicts the
change of the target from its last value for each of the next ``horizon`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.text import check_regular_file
from rnnlab.errors import DataError
from rnnlab.extras import require


def read_series(path: str | Path, values: list[str] | None = None, index: str | None = None):
    """A pandas DataFrame of float64 value columns indexed by ``index`` (the first column by default).

    ``values`` defaults to every column except the index. Errors name the column and row.
    """
    pd = require("pandas", "text")

    p = check_regular_file(path)
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    if df.empty:
        raise DataError(f"{path}: no rows")
    columns = list(df.columns)
    index = index or columns[0]
    if index not in columns:
        raise DataError(f"{path}: no column {index!r}; columns are {', '.join(map(str, columns))}")
    if values is None:
        values = [c for c in columns if c != index]
        if not values:
            raise DataError(f"{path}: no value column besides {index!r}")
    for c in values:
        if c not in columns:
            raise DataError(f"{path}: no column {c!r}; columns are {', '.join(map(str, columns))}")
    out = df.set_index(index)[values]
    for c in values:
        numeric = pd.to_numeric(out[c], errors="coerce")
        bad = numeric.isna() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {c!r} row {row + 2} is {out[c].iloc[row]!r}, not a number "
                "(fill or drop missing values first)"
            )
        out[c] = numeric.astype(float)
    return out


@dataclass
class Scaling:
    """Per column: log or not, and the standard deviation of the differences on the training part."""

    log: bool
    diff_std: np.ndarray  # (F,)
    target: int  # which column is forecast

    def transform(self, values: np.ndarray) -> np.ndarray:
        return np.log(values) if self.log else values

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z) if self.log else z

    def to_dict(self) -> dict:
        return {"log": self.log, "diff_std": self.diff_std.tolist(), "target": self.target}

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        return cls(bool(d["log"]), np.array(d["diff_std"], dtype=np.float64), int(d["target"]))


@dataclass
class Prepared:
    values: np.ndarray  # (T, F) in the series' units
    z: np.ndarray  # transformed (log or not)
    scaling: Scaling
    columns: list[str]
    index: list
    fit_end: int  # [0, fit_end) trains, [fit_end, test_start) validates, [test_start, T) is the test tail
    test_start: int


def prepare_series(
    csv: str,
    target: str | None,
    values: tuple[str, ...] | None,
    index: str | None,
    *,
    log: bool,
    window: int,
    horizon: int,
    test_fraction: float,
    val_fraction: float,
) -> Prepared:
    """Read the series, split it in time, and scale it with the statistics of its training part."""
    df = read_series(csv, list(values) if values else None, index)
    columns = list(df.columns)
    target = target or columns[0]
    if target not in columns:
        raise DataError(f"{csv}: no value column {target!r}; value columns are {', '.join(columns)}")
    series = df.to_numpy(dtype=np.float64)
    n = len(series)
    test_start = int(round(n * (1 - test_fraction)))
    fit_end = int(round(test_start * (1 - val_fraction)))
    need = window + horizon + 1
    if fit_end - need < 4 or test_start - fit_end < horizon + 1 or n - test_start < horizon + 1:
        raise DataError(
            f"{csv}: {n} rows are too few for a window of {window} and a horizon of "
            f"{horizon} (the training part needs at least {need + 4} rows); use a shorter window"
        )
    if log and (series <= 0).any():
        raise DataError(f"{csv}: --log needs positive values, but some are <= 0")
    scaling = Scaling(log, np.ones(len(columns)), columns.index(target))
    z = scaling.transform(series)
    with np.errstate(over="ignore", invalid="ignore"):
        std = np.diff(z[:fit_end], axis=0).std(0)
    if not np.isfinite(std).all():
        raise DataError(f"{csv}: the values are too large to difference (they overflow); rescale them first")
    scaling.diff_std = np.where(std > 1e-12, std, 1.0)
    return Prepared(series, z, scaling, columns, list(df.index), fit_end, test_start)


def windows(z: np.ndarray, scaling: Scaling, origins: np.ndarray, window: int, horizon: int):
    """Model inputs (N, W, F) and targets (N, k) for forecast origins t (the last known step);
    targets are None when no origin has k steps after it."""
    dz = np.diff(z, axis=0, prepend=z[:1]) / scaling.diff_std  # (T, F): scaled differences
    x = np.stack([dz[t - window + 1 : t + 1] for t in origins]).astype(np.float32)
    zt = z[:, scaling.target]
    std = scaling.diff_std[scaling.target]
    ys = [(zt[t + 1 : t + 1 + horizon] - zt[t]) / std for t in origins if t + horizon < len(z)]
    return torch.from_numpy(x), torch.from_numpy(np.stack(ys).astype(np.float32)) if ys else None


@dataclass
class WindowBatch:
    inputs: torch.Tensor  # (B, W, F)
    targets: torch.Tensor  # (B, k)
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return self.inputs.shape[0] * self.inputs.shape[1]


class WindowBatches:
    """Random minibatches of windows, reshuffled per epoch from (seed, epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, min(batch_size, len(x)), seed
        self.per_epoch = max(1, len(x) // self.batch_size)
        self._epoch, self._order = -1, None

    def __len__(self) -> int:
        return self.per_epoch

    def batch(self, step: int) -> WindowBatch:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
        idx = torch.from_numpy(self._order[k * self.batch_size : (k + 1) * self.batch_size])
        return WindowBatch(self.x[idx], self.y[idx])
