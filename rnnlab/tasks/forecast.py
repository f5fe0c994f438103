"""Forecasting: train on the start of a series, forecast its held-out tail walking forward, and always
compare with the naive and seasonal-naive forecasts.

* the data (``rnnlab.data.series``): a CSV with an index/date column and value columns, log-
  transformed or not, differenced and scaled with the training part's statistics; split in time:
  the first (1 - test_fraction) trains (its last ``val_fraction`` picks the best weights), the rest
  is the test tail;
* walk-forward evaluation: at every origin t of the test tail the model sees the true history up
  to t (no refitting) and forecasts t+1..t+k; so do the baselines:
  naive (random walk) y_{t+h} = y_t, and seasonal naive y_{t+h} = y_{t+h-m*ceil(h/m)} for season m;
* errors in the series' own units: MAE, RMSE, MAPE and MASE (MAE divided by the in-sample MAE of
  the seasonal-naive one-step forecast on the training part; naive when there is no season).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.series import Prepared, Scaling, WindowBatches, prepare_series, windows
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import forecast_errors, naive_forecasts
from rnnlab.models.forecaster import ForecasterConfig, build_forecaster
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig


@dataclass(frozen=True)
class ForecasterModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    hidden_size: int = 64  # [N] hidden units per layer
    num_layers: int = 1  # [N] recurrent layers
    dropout: float = 0.1  # [P] dropout probability
    baseline: bool = False  # an MLP on the window, no recurrence


@dataclass(frozen=True)
class SeriesData(Config):
    csv: str | None = None  # [FILE] CSV with an index/date column and value columns
    target: str | None = None  # [C] column to forecast (default: the first value column)
    values: tuple[str, ...] | None = None  # [C] value columns the model reads (default: all numeric)
    index: str | None = None  # [C] index/date column (default: the first column)
    horizon: int = 1  # [K] forecast 1..K steps ahead
    window: int = 24  # [W] past steps the model reads
    season: int | None = None  # [M] seasonal period for seasonal naive and MASE
    log: bool = False  # model log(values): multiplicative growth
    test_fraction: float = 0.2  # [F] held-out tail
    val_fraction: float = 0.15  # [F] end of the training part that picks the best weights
    batch_size: int = 32  # [N] windows per batch

    def __post_init__(self) -> None:
        if not self.csv:
            raise ConfigError("give the series: --csv FILE")
        if self.horizon < 1 or self.window < 2:
            raise ConfigError(f"need horizon >= 1 and window >= 2, got {self.horizon} and {self.window}")
        if self.season is not None and self.season < 2:
            raise ConfigError(f"season must be at least 2 steps, got {self.season}")
        if not 0 < self.test_fraction < 1 or not 0 < self.val_fraction < 1:
            raise ConfigError("test and validation fractions must be in (0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")

    def prepare(self, csv: str | None = None) -> Prepared:
        return prepare_series(
            csv or self.csv,
            self.target,
            self.values,
            self.index,
            log=self.log,
            window=self.window,
            horizon=self.horizon,
            test_fraction=self.test_fraction,
            val_fraction=self.val_fraction,
        )


@dataclass(frozen=True)
class ForecastOptions(Config):
    model: ForecasterModel = field(default_factory=ForecasterModel)
    data: SeriesData = None  # the series is required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=2000, eval_every=100, lr=2e-3))


@dataclass(frozen=True)
class SeriesToScore(Config):
    csv: str | None = None  # [FILE] classifier: CSV with text and label columns; forecaster: a series


@dataclass
class ForecasterLearned(Learned):
    scaling: Scaling
    columns: list[str]

    def to_dict(self) -> dict:
        return {"scaling": self.scaling.to_dict(), "columns": self.columns}

    @classmethod
    def load(cls, saved: dict, read) -> ForecasterLearned:
        return cls(Scaling.from_dict(saved["scaling"]), list(saved["columns"]))


@dataclass
class ForecastReport:
    target: str
    horizon: int
    origins: np.ndarray  # forecast origins in the test tail
    actual: np.ndarray  # (N, k)
    forecasts: dict[str, np.ndarray]  # method -> (N, k): "model", "naive", "seasonal naive"
    table: dict[str, dict[str, float]]  # method -> errors


def forecast(model, prepared: Prepared, scaling: Scaling, origins: np.ndarray, window: int) -> np.ndarray:
    """(N, k) forecasts in the series' units for each origin t (history up to t)."""
    x, _ = windows(prepared.z, scaling, origins, window, 1)
    model.eval()
    with torch.inference_mode():
        change = model(x.to(device_of(model)))[0].double().cpu().numpy() * scaling.diff_std[scaling.target]
    zt = prepared.z[origins, scaling.target][:, None]
    return scaling.inverse(zt + change)


def walk_forward(run, prepared: Prepared) -> ForecastReport:
    d = run.options.data
    y = prepared.values[:, prepared.scaling.target]
    origins = np.arange(prepared.test_start - 1, len(y) - d.horizon)
    actual = np.stack([y[t + 1 : t + 1 + d.horizon] for t in origins])
    m = d.season or 1
    if m >= prepared.test_start:
        raise DataError(f"a season of {m} steps is longer than the series' training part ({prepared.test_start} steps)")
    train_y = y[: prepared.test_start]
    scale = float(np.abs(train_y[m:] - train_y[:-m]).mean())
    model = forecast(run.model, prepared, run.learned.scaling, origins, d.window)
    methods = {"model": model, **naive_forecasts(y, origins, d.horizon, d.season)}
    table = {name: forecast_errors(pred, actual, scale) for name, pred in methods.items()}
    return ForecastReport(prepared.columns[prepared.scaling.target], d.horizon, origins, actual, methods, table)


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


class ForecastTask(Task):
    name, kind = "forecast", "forecaster"
    help = "forecasting: numbers ahead in time, beside naive baselines"
    description = (
        "Train a forecaster on the start of a CSV series and evaluate it walking forward over the held-out tail, "
        "beside the naive and seasonal-naive forecasts; writes forecast.png."
    )
    Options, ModelConfig, Learned, EvalData = ForecastOptions, ForecasterConfig, ForecasterLearned, SeriesToScore

    def read(self, options: ForecastOptions) -> Prepared:
        prepared, season = options.data.prepare(), options.data.season
        if season is not None and season >= prepared.fit_end:
            raise DataError(
                f"{options.data.csv}: a season of {season} steps is longer than the series' training part "
                f"({prepared.fit_end} steps)"
            )
        return prepared

    def fit(self, options, prepared: Prepared) -> ForecasterLearned:
        return ForecasterLearned(prepared.scaling, prepared.columns)

    def encode(self, options, learned: ForecasterLearned, p: Prepared) -> Prepared:
        if p.columns != learned.columns:
            raise DataError(f"{options.data.csv}: expected the columns {learned.columns}, got {p.columns}")
        p.scaling = learned.scaling
        return p

    def model_config(self, options: ForecastOptions, learned: ForecasterLearned) -> ForecasterConfig:
        m, d = options.model, options.data
        return ForecasterConfig(
            input_size=len(learned.columns),
            horizon=d.horizon,
            cell=m.cell,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=m.dropout,
            recurrent=not m.baseline,
            window=d.window,
        )

    def check_learned(self, learned: ForecasterLearned, config: ForecasterConfig) -> None:
        s = learned.scaling
        if not (len(learned.columns) == len(s.diff_std) == config.input_size and 0 <= s.target < len(learned.columns)):
            raise ValueError("the scaling, the columns and the model's input size disagree")
        if not (np.isfinite(s.diff_std).all() and (s.diff_std > 0).all()):
            raise ValueError("the scaling must be positive and finite")

    def build(self, config: ForecasterConfig):
        return build_forecaster(config)

    def batches(self, options: ForecastOptions, p: Prepared) -> WindowBatches:
        w, k = options.data.window, options.data.horizon
        x, y = windows(p.z, p.scaling, np.arange(w, p.fit_end - k), w, k)
        return WindowBatches(x, y, options.data.batch_size, options.train.seed)

    def validator(self, options, learned, p: Prepared):
        w, k = options.data.window, options.data.horizon
        val_x, val_y = windows(p.z, p.scaling, np.arange(p.fit_end - 1, p.test_start - k), w, k)

        def validate(model) -> dict[str, float]:
            device = device_of(model)
            return {"val_loss": float(torch.nn.functional.mse_loss(model(val_x.to(device))[0], val_y.to(device)))}

        return validate

    def test(self, run, p: Prepared) -> ForecastReport:
        return walk_forward(run, p)

    def evaluate(self, run, given: SeriesToScore | None) -> ForecastReport:
        return walk_forward(run, self.encode(run.options, run.learned, run.options.data.prepare(given and given.csv)))

    def format_scores(self, what, report: ForecastReport) -> str:
        return table_text(report)

    def scores_json(self, report: ForecastReport) -> dict:
        return report.table

    def finish(self, trained, extras) -> None:
        from rnnlab.viz.forecast import plot_forecasts

        report = trained.test
        if report is not None:
            print(table_text(report))
            title = f"{trained.run.options.data.csv}: {report.target}"
            print(f"wrote {plot_forecasts(report, Path(trained.run.path) / 'forecast.png', title)}")

    def predict(self, run, inputs: list, csv: str | None = None) -> list:
        """The next ``horizon`` values after the last row of the run's series, or of ``csv``."""
        if inputs:
            raise DataError("a forecaster reads a series, not arguments: give --csv FILE (or nothing: its own series)")
        p = self.encode(run.options, run.learned, run.options.data.prepare(csv))
        values = forecast(run.model, p, p.scaling, np.array([len(p.values) - 1]), run.options.data.window)[0]
        return [(p.columns[p.scaling.target], values)]

    def format_prediction(self, prediction) -> str:
        column, values = prediction
        return f"next {len(values)} value(s) of {column}: " + ", ".join(f"{v:.6g}" for v in values)


TASK = ForecastTask()
