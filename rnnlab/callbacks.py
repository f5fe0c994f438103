"""What the Trainer reports to, apart from the checkpoint: progress, the metrics log, plots, TensorBoard.

A callback overrides any of these (each default does nothing)::

    on_start(trainer)               training starts (after a resumed run's state is restored)
    on_step(trainer, row)           after every optimiser step; ``row`` holds step, epoch, lr, loss,
                                    grad_norm, elapsed_s, tokens_per_s (now and then) and, at an
                                    evaluation, the validation metrics
    on_evaluation(trainer, row)     after on_step, at the steps that evaluated
    on_save(trainer) -> files       a checkpoint is being written: files to store in it, {name: bytes}
    on_end(trainer, result)         training stopped (budget, early stop or signal)

``standard(progress)`` is what ``rnnlab train`` uses: the metrics log (metrics.csv, saved with every
checkpoint so that a resumed run continues it), curves.png at the end, TensorBoard event files when
the tensorboard package is installed, and a progress bar unless ``progress`` is False.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from rnnlab.checkpoint import METRICS_FILE, metrics_to_csv


class Callback:
    def on_start(self, trainer) -> None:
        pass

    def on_step(self, trainer, row: dict) -> None:
        pass

    def on_evaluation(self, trainer, row: dict) -> None:
        pass

    def on_save(self, trainer) -> dict[str, bytes]:
        return {}

    def on_end(self, trainer, result) -> None:
        pass


class MetricsLog(Callback):
    """Every step's row, saved with each checkpoint as metrics.csv."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_start(self, trainer) -> None:
        if trainer.checkpoint is not None:  # resumed: the log up to the restored step
            self.rows = [r for r in trainer.checkpoint.metrics() if r.get("step", 0) <= trainer.step]

    def on_step(self, trainer, row: dict) -> None:
        self.rows.append(row)

    def on_save(self, trainer) -> dict[str, bytes]:
        return {METRICS_FILE: metrics_to_csv(self.rows)}


class Curves(Callback):
    """curves.png (loss, validation loss, gradient norm before clipping, learning rate) when training stops."""

    def __init__(self, log: MetricsLog) -> None:
        self.log = log

    def on_end(self, trainer, result) -> None:
        if self.log.rows:
            from rnnlab.viz.curves import plot_curves

            plot_curves(self.log.rows, Path(trainer.run_dir) / "curves.png", title=str(trainer.run_dir))


class TensorBoard(Callback):
    """The same numbers as TensorBoard event files in RUN/tensorboard (if the tensorboard package is installed)."""

    def __init__(self) -> None:
        self.writer = None

    def on_start(self, trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(Path(trainer.run_dir) / "tensorboard"))

    def on_step(self, trainer, row: dict) -> None:
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, row["step"])

    def on_end(self, trainer, result) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressBar(Callback):
    """A tqdm bar (loss, validation loss, tokens/s, time left) and one line per evaluation, on stderr."""

    def __init__(self) -> None:
        self.bar = None
        self.tokens_per_s: int | None = None

    def on_start(self, trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.config.max_steps,
            initial=trainer.step,
            unit="step",
            dynamic_ncols=True,
            desc=str(trainer.run_dir),
            file=sys.stderr,
            smoothing=0.05,
            mininterval=0.5 if sys.stderr.isatty() else 30,
        )

    def on_step(self, trainer, row: dict) -> None:
        self.tokens_per_s = row.get("tokens_per_s", self.tokens_per_s)
        self.bar.update(trainer.step - self.bar.n)
        post = {"loss": f"{row['loss']:.3f}"}
        if "val_loss" in trainer.last_eval:
            post["val"] = f"{trainer.last_eval['val_loss']:.3f}"
        if self.tokens_per_s:
            post["tok/s"] = f"{self.tokens_per_s / 1000:.1f}k"
        if trainer.config.max_minutes is not None:
            left = max(0.0, 60 * trainer.config.max_minutes - trainer.elapsed)
            post["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
        self.bar.set_postfix(post, refresh=False)

    def on_evaluation(self, trainer, row: dict) -> None:
        scores = "  ".join(f"{k} {v:.4f}" for k, v in trainer.last_eval.items())
        self.bar.write(
            f"step {trainer.step:>6}  {trainer.elapsed / 60:5.1f} min  loss {row['loss']:.4f}  {scores}", file=sys.stderr
        )

    def on_end(self, trainer, result) -> None:
        if self.bar is not None:
            self.bar.close()


def standard(progress: bool = True) -> list[Callback]:
    log = MetricsLog()
    return [log, Curves(log), TensorBoard(), *([ProgressBar()] if progress else [])]
