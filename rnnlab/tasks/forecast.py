"""Forecasting, end to end: train on the start of a series, forecast its held-out tail walking forward,
and always compare with the naive and seasonal-naive forecasts.

Given a CSV (an index/date column and value columns) and a target column:

* the series is optionally log-transformed (``log``: growth that multiplies, like passengers or
  prices), then differenced; differences are scaled by their standard deviation on the training part
  only. The model reads the last ``window`` scaled differences of every value column and predicts
  the change from the last value for each of the next ``horizon`` steps;
* split in time: the first (1 - test_fraction) is for training (its last ``val_fraction`` picks the
  best weights), the rest is the test tail;
* walk-forward evaluation: at every origin t of the test tail the model sees the true history up
  to t (no refitting) and forecasts t+1..t+k; so do the baselines:
  naive (random walk) y_{t+h} = y_t, and seasonal naive y_{t+h} = y_{t+h-m*ceil(h/m)} for season m;
* errors in the series' own units: MAE, RMSE, MAPE and MASE (MAE divided by the in-sample MAE of
  the seasonal-naive one-step forecast on the training part; naive when there is no season).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from rnnlab import checkpoint
from rnnlab.checkpoint import atomic_write
from rnnlab.data.series import read_series
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.forecaster import ForecasterConfig, build_forecaster
from rnnlab.tasks.runs import options_from_dict, start_or_resume
from rnnlab.train import TrainConfig, Trainer

KIND = "forecaster"


@dataclass(frozen=True)
class ForecastOptions:
    csv: str
    target: str | None = None  # the column to forecast (default: the first value column)
    values: tuple[str, ...] | None = None  # columns the model reads (default: every numeric column)
    index: str | None = None  # the index/date column (default: the first column)
    horizon: int = 1  # forecast 1..k steps ahead
    window: int = 24  # past steps the model reads
    season: int | None = None  # seasonal period m for seasonal naive and MASE (12 monthly, 48 half-hourly)
    log: bool = False  # model log(values): for positive series that grow by multiplication
    test_fraction: float = 0.2
    val_fraction: float = 0.15  # of the training part
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1
    baseline: bool = False  # an MLP on the flattened window instead of the recurrent model
    batch_size: int = 32
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=2000, eval_every=100, lr=2e-3))

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.window < 2:
            raise ConfigError(f"need horizon >= 1 and window >= 2, got {self.horizon} and {self.window}")
        if self.season is not None and self.season < 2:
            raise ConfigError(f"season must be at least 2 steps, got {self.season}")
        if not 0 < self.test_fraction < 1 or not 0 < self.val_fraction < 1:
            raise ConfigError("test and validation fractions must be in (0, 1)")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(self.values))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ForecastOptions:
        return options_from_dict(cls, d)


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


def windows(z: np.ndarray, scaling: Scaling, origins: np.ndarray, window: int, horizon: int):
    """Model inputs (N, W, F) and targets (N, k) for forecast origins t (the last known step)."""
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


@dataclass
class Prepared:
    values: np.ndarray  # (T, F) in the series' units
    z: np.ndarray  # transformed (log or not)
    scaling: Scaling
    columns: list[str]
    index: list
    fit_end: int  # [0, fit_end) trains, [fit_end, test_start) validates, [test_start, T) is the test tail
    test_start: int


def prepare(options: ForecastOptions) -> Prepared:
    df = read_series(options.csv, list(options.values) if options.values else None, options.index)
    columns = list(df.columns)
    target = options.target or columns[0]
    if target not in columns:
        raise DataError(f"{options.csv}: no value column {target!r}; value columns are {', '.join(columns)}")
    values = df.to_numpy(dtype=np.float64)
    n = len(values)
    test_start = int(round(n * (1 - options.test_fraction)))
    fit_end = int(round(test_start * (1 - options.val_fraction)))
    need = options.window + options.horizon + 1
    if fit_end - need < 4 or test_start - fit_end < options.horizon + 1 or n - test_start < options.horizon + 1:
        raise DataError(
            f"{options.csv}: {n} rows are too few for a window of {options.window} and a horizon of "
            f"{options.horizon} (the training part needs at least {need + 4} rows); use a shorter window"
        )
    if options.log and (values <= 0).any():
        raise DataError(f"{options.csv}: --log needs positive values, but some are <= 0")
    scaling = Scaling(options.log, np.ones(len(columns)), columns.index(target))
    z = scaling.transform(values)
    std = np.diff(z[:fit_end], axis=0).std(0)
    scaling.diff_std = np.where(std > 1e-12, std, 1.0)
    return Prepared(values, z, scaling, columns, list(df.index), fit_end, test_start)


@dataclass
class ForecasterRun:
    path: Path
    model: torch.nn.Module
    scaling: Scaling
    options: ForecastOptions
    config: dict


def forecast(model, prepared: Prepared, origins: np.ndarray, window: int) -> np.ndarray:
    """(N, k) forecasts in the series' units for each origin t (history up to t)."""
    x, _ = windows(prepared.z, prepared.scaling, origins, window, 1)
    model.eval()
    with torch.inference_mode():
        change = model(x).double().numpy() * prepared.scaling.diff_std[prepared.scaling.target]
    zt = prepared.z[origins, prepared.scaling.target][:, None]
    return prepared.scaling.inverse(zt + change)


def baselines(y: np.ndarray, origins: np.ndarray, horizon: int, season: int | None) -> dict[str, np.ndarray]:
    steps = np.arange(1, horizon + 1)
    out = {"naive": np.repeat(y[origins][:, None], horizon, axis=1)}
    if season:
        lag = season * np.ceil(steps / season).astype(int)
        out["seasonal naive"] = y[origins[:, None] + steps[None, :] - lag[None, :]]
    return out


def errors(pred: np.ndarray, actual: np.ndarray, scale: float) -> dict[str, float]:
    e = pred - actual
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(e / actual))) * 100 if (actual != 0).all() else float("nan")
    return {
        "MAE": float(np.abs(e).mean()),
        "RMSE": float(np.sqrt((e**2).mean())),
        "MAPE": mape,
        "MASE": float(np.abs(e).mean() / scale),
    }


@dataclass
class ForecastReport:
    target: str
    horizon: int
    origins: np.ndarray  # forecast origins in the test tail
    actual: np.ndarray  # (N, k)
    forecasts: dict[str, np.ndarray]  # method -> (N, k): "model", "naive", "seasonal naive"
    table: dict[str, dict[str, float]]  # method -> errors
    index: list


def walk_forward(run: ForecasterRun, prepared: Prepared) -> ForecastReport:
    o = run.options
    y = prepared.values[:, prepared.scaling.target]
    origins = np.arange(prepared.test_start - 1, len(y) - o.horizon)
    actual = np.stack([y[t + 1 : t + 1 + o.horizon] for t in origins])
    m = o.season or 1
    train_y = y[: prepared.test_start]
    scale = float(np.abs(train_y[m:] - train_y[:-m]).mean())
    methods = {"model": forecast(run.model, prepared, origins, o.window), **baselines(y, origins, o.horizon, o.season)}
    table = {name: errors(pred, actual, scale) for name, pred in methods.items()}
    return ForecastReport(
        prepared.columns[prepared.scaling.target], o.horizon, origins, actual, methods, table, prepared.index
    )


def train(options: ForecastOptions, out: Path, resume: bool = False, progress: bool = True):
    """Train a forecaster into ``out``; returns (TrainResult, ForecasterRun, ForecastReport)."""
    out = Path(out)
    options = start_or_resume(out, KIND, options, resume)
    p = prepare(options)
    w, k = options.window, options.horizon
    fit_x, fit_y = windows(p.z, p.scaling, np.arange(w, p.fit_end - k), w, k)
    val_x, val_y = windows(p.z, p.scaling, np.arange(p.fit_end - 1, p.test_start - k), w, k)

    torch.manual_seed(options.train.seed)
    model_config = ForecasterConfig(
        input_size=len(p.columns),
        horizon=k,
        cell=options.cell,
        hidden_size=options.hidden_size,
        num_layers=options.num_layers,
        dropout=options.dropout,
        recurrent=not options.baseline,
        window=w,
    )
    model = build_forecaster(model_config)

    def evaluate(m) -> dict[str, float]:
        with torch.inference_mode():
            return {"val_loss": float(torch.nn.functional.mse_loss(m(val_x), val_y))}

    def describe() -> dict:
        return {
            "model": model_config.to_dict(),
            "scaling": p.scaling.to_dict(),
            "columns": p.columns,
            "options": options.to_dict(),
        }

    trainer = Trainer(
        model,
        WindowBatches(fit_x, fit_y, options.batch_size, options.train.seed),
        evaluate,
        options.train,
        out,
        KIND,
        describe,
        progress,
    )
    if resume:
        trainer.restore()
    result = trainer.fit()
    run = load_run(out)
    return result, run, walk_forward(run, p)


def load_run(path: str | Path) -> ForecasterRun:
    ckpt = checkpoint.load(path, KIND)
    try:
        config = ForecasterConfig(**ckpt.config["model"])
        scaling = Scaling.from_dict(ckpt.config["scaling"])
        options = ForecastOptions.from_dict(ckpt.config["options"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a forecaster ({e})") from None
    model = build_forecaster(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return ForecasterRun(ckpt.path, model.eval(), scaling, options, ckpt.config)


def prepare_for_run(run: ForecasterRun, csv: str | None = None) -> Prepared:
    """The run's own series (or another CSV with the same columns), scaled as in training."""
    o = replace(run.options, csv=csv or run.options.csv)
    p = prepare(o)
    if p.columns != run.config["columns"]:
        raise DataError(f"{o.csv}: expected the columns {run.config['columns']}, got {p.columns}")
    p.scaling = run.scaling
    return p


def future(run: ForecasterRun, csv: str | None = None) -> np.ndarray:
    """The next ``horizon`` values after the last row of the series."""
    p = prepare_for_run(run, csv)
    return forecast(run.model, p, np.array([len(p.values) - 1]), run.options.window)[0]


def table_text(report: ForecastReport) -> str:
    lines = [
        f"walk-forward over {len(report.origins)} origins, horizon 1..{report.horizon}, target {report.target}",
        f"  {'method':16} {'MAE':>12} {'RMSE':>12} {'MAPE %':>8} {'MASE':>7}",
    ]
    for name, e in report.table.items():
        lines.append(f"  {name:16} {e['MAE']:12.4g} {e['RMSE']:12.4g} {e['MAPE']:8.2f} {e['MASE']:7.3f}")
    best = min(report.table, key=lambda n: report.table[n]["MASE"])
    model = report.table["model"]["MASE"]
    others = {n: e["MASE"] for n, e in report.table.items() if n != "model"}
    verdicts = [f"{'beats' if model < v else 'does NOT beat'} {n} ({model:.3f} vs {v:.3f} MASE)" for n, v in others.items()]
    lines.append("  the model " + "; ".join(verdicts) + f". Best: {best}.")
    return "\n".join(lines)


def plot(report: ForecastReport, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = report.horizon
    steps = [0] if h == 1 else [0, h - 1]
    fig, axes = plt.subplots(len(steps), 1, figsize=(11, 3.6 * len(steps)), constrained_layout=True, squeeze=False)
    x = report.origins + 1
    for ax, s in zip(axes[:, 0], steps):
        ax.plot(x + s, report.actual[:, s], "k-", lw=1.4, label="actual")
        for name, pred in report.forecasts.items():
            mase = report.table[name]["MASE"]
            ax.plot(x + s, pred[:, s], "-" if name == "model" else "--", lw=1, label=f"{name} (MASE {mase:.3f})")
        ax.set_title(f"{s + 1}-step-ahead forecasts of {report.target} on the held-out tail", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path
