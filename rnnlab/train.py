"""One Trainer for every model: AdamW, warm-up and cosine decay, clipping, truncated BPTT, budgets,
evaluation, checkpoints, resume, progress.

Nothing here knows which cell or task it trains. It needs:

* a model with ``loss(batch, carry) -> (loss, carry)``: ``carry`` is whatever state the model wants
  back with the next batch (the hidden state, for truncated BPTT) or None;
* ``batches``, with ``batch(step)`` giving the batch for a step (a deterministic function of the
  step, so a resumed run sees what an uninterrupted run would) and ``len()`` batches per epoch;
  each batch has ``reset`` (drop the carried state first) and ``num_tokens``;
* ``evaluate(model) -> {"val_loss": ..., ...}``, called every ``eval_every`` steps and at the end;
  the best evaluation (highest ``score`` if reported, else lowest ``val_loss``) keeps a copy of
  the weights (``best.safetensors``), and ``patience`` stops a run that no longer improves;
* a ``describe()`` dict that goes into config.json beside the weights (the model config, the
  vocabulary...), enough to rebuild the model from the checkpoint.

Besides the checkpoint, a run folder gets ``curves.png`` (loss, validation loss, gradient norm
before clipping, learning rate) when training stops, and, when the ``tensorboard`` package is
installed, the same numbers as TensorBoard event files in ``RUN/tensorboard``.

Truncated BPTT: after each batch the carried state is detached (``detach_state``): the next
batch starts from its value but gradients stop at the batch boundary. The state is reset to zeros
when a batch says ``reset`` (a new epoch, whose rows start elsewhere in the stream).

Learning rate at step s (1-based), with p the fraction of the budget used (the larger of
s / max_steps and elapsed / max_minutes)::

    lr(s) = lr * min(1, s / warmup_steps) * (final_lr_ratio + (1 - final_lr_ratio) * (1 + cos(pi p)) / 2)

Ctrl-C or SIGTERM stops after the current step and saves a checkpoint; ``resume=True`` reloads it
(weights, optimiser moments, RNG, carried state, step, elapsed time) and goes on. A run stopped and
resumed under a step budget ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from rnnlab import checkpoint
from rnnlab.cells import State
from rnnlab.errors import CheckpointError, ConfigError
from rnnlab.viz.curves import plot_curves


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 2e-3  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (matrices only, not biases)
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    final_lr_ratio: float = 0.05  # the cosine decay ends at lr * final_lr_ratio
    clip_norm: float = 1.0  # clip the gradient's global L2 norm to this (0: no clipping)
    max_steps: int | None = None  # stop after this many optimiser steps
    max_minutes: float | None = None  # ... or after this much wall-clock time
    eval_every: int = 250  # evaluate and save a checkpoint every N steps
    patience: int = 0  # stop after this many evaluations without a new best (0: never stop early)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warm-up steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ConfigError(f"final lr ratio must be in [0, 1], got {self.final_lr_ratio}")
        if self.clip_norm < 0:
            raise ConfigError(f"clip norm must be >= 0, got {self.clip_norm}")
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError("give a budget: max_steps, max_minutes or both")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max steps must be at least 1, got {self.max_steps}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max minutes must be positive, got {self.max_minutes}")
        if self.eval_every < 1:
            raise ConfigError(f"eval every must be at least 1, got {self.eval_every}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """The learning rate for 1-based ``step`` at budget fraction ``progress`` (module docstring)."""
    warm = min(1.0, step / config.warmup_steps) if config.warmup_steps else 1.0
    r = config.final_lr_ratio
    return config.lr * warm * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a carried state: the next batch starts from its value, not its history."""
    return None if state is None else tuple(s.detach() for s in state)


def badness(metrics: dict) -> float | None:
    """What "better" means for model selection: a higher ``score`` if the evaluation reports one
    (accuracy, F1...), else a lower ``val_loss``."""
    if "score" in metrics:
        return -metrics["score"]
    return metrics.get("val_loss")


@dataclass
class TrainResult:
    step: int
    elapsed: float  # seconds spent training and evaluating (over all resumed parts)
    metrics: dict  # the last evaluation
    best_metrics: dict  # the best evaluation (see ``badness``); its weights are in best.safetensors
    best_step: int | None
    interrupted: int | None  # the signal that stopped the run, if one did


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        batches,
        evaluate: Callable[[nn.Module], dict[str, float]],
        config: TrainConfig,
        run_dir: Path,
        kind: str,
        describe: Callable[[], dict],
        progress: bool = True,
        attachments: dict[str, bytes] | None = None,
    ) -> None:
        self.model, self.batches, self.evaluate, self.config = model, batches, evaluate, config
        self.run_dir, self.kind, self.describe, self.progress = Path(run_dir), kind, describe, progress
        self.attachments = attachments or {}  # files saved with every checkpoint (a tokenizer...)
        # weight decay on weight matrices only: not on biases, gains or embedding tables
        tables = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in tables]
        rest = [p for p in model.parameters() if not (p.dim() >= 2 and id(p) not in tables)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.99),
        )
        self.step = 0
        self.elapsed = 0.0
        self.carry: State | None = None
        self.rows: list[dict] = []
        self.last_eval: dict = {}
        self.best_eval: dict = {}
        self.best_step: int | None = None
        self.best_state: dict[str, Tensor] | None = None  # a copy of the weights at the best evaluation
        self.evals_since_best = 0
        self._stop_signal: int | None = None
        self._tokens_per_s: int | None = None
        self._board = None  # a TensorBoard SummaryWriter while fit() runs, if tensorboard is installed

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> None:
        meta = {
            "step": self.step,
            "elapsed": self.elapsed,
            "last_eval": self.last_eval,
            "best_eval": self.best_eval,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "param_groups": [
                {k: v for k, v in g.items() if k != "params"} for g in self.optimizer.state_dict()["param_groups"]
            ],
            "carry_size": 0 if self.carry is None else len(self.carry),
        }
        tensors: dict[str, Tensor] = {"rng.torch": torch.get_rng_state()}
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
        for i, s in enumerate(self.carry or ()):
            tensors[f"carry.{i}"] = s
        config = {
            **self.describe(),
            "train": self.config.to_dict(),
            "progress": {"step": self.step, "elapsed_seconds": round(self.elapsed, 1), **self.last_eval},
        }
        checkpoint.save(
            self.run_dir,
            kind=self.kind,
            config=config,
            model_state=self.model.state_dict(),
            best_state=self.best_state,
            trainer_state=tensors,
            trainer_meta=meta,
            metrics=self.rows,
            attachments=self.attachments,
        )

    def restore(self) -> None:
        """Load the trainer state saved in ``run_dir`` (the model's weights are loaded too)."""
        ckpt = checkpoint.load(self.run_dir, self.kind)
        checkpoint.load_module_state(self.model, ckpt.model_state(), ckpt.path)
        tensors, meta = ckpt.trainer_state()
        try:
            opt_state = {"state": {}, "param_groups": []}
            for key, value in tensors.items():
                if key.startswith("optimizer."):
                    _, index, name = key.split(".", 2)
                    opt_state["state"].setdefault(int(index), {})[name] = value
            for group, saved in zip(self.optimizer.state_dict()["param_groups"], meta["param_groups"]):
                opt_state["param_groups"].append({**saved, "params": group["params"]})
            self.optimizer.load_state_dict(opt_state)
            torch.set_rng_state(tensors["rng.torch"])
            self.carry = tuple(tensors[f"carry.{i}"] for i in range(meta["carry_size"])) or None
            self.step, self.elapsed = int(meta["step"]), float(meta["elapsed"])
            self.last_eval, self.best_eval, self.best_step = meta["last_eval"], meta["best_eval"], meta["best_step"]
            self.evals_since_best = meta["evals_since_best"]
            self.best_state = ckpt.best_state() if self.best_step is not None else None
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise CheckpointError(f"{self.run_dir}: trainer state is incomplete or does not fit ({e})") from None
        self.rows = [r for r in ckpt.metrics() if r.get("step", 0) <= self.step]

    # ------------------------------------------------------------------ the loop

    def _progress(self) -> float:
        c = self.config
        p = 0.0
        if c.max_steps is not None:
            p = self.step / c.max_steps
        if c.max_minutes is not None:
            p = max(p, self.elapsed / (60 * c.max_minutes))
        return p

    def _run_eval(self) -> dict:
        self.model.eval()
        with torch.inference_mode():
            result = {k: float(v) for k, v in self.evaluate(self.model).items()}
        self.model.train()
        self.last_eval = result
        now, best = badness(result), badness(self.best_eval)
        if now is not None and (best is None or now < best):
            self.best_eval, self.best_step, self.evals_since_best = result, self.step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.evals_since_best += 1
        return result

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self._stop_signal = signum

    def fit(self) -> TrainResult:
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        self._board = _summary_writer(self.run_dir / "tensorboard")
        try:
            return self._fit()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if self._board is not None:
                self._board.close()

    def _fit(self) -> TrainResult:
        c = self.config
        model, params = self.model, list(self.model.parameters())
        model.train()
        bar = tqdm(
            total=c.max_steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            desc=str(self.run_dir),
            file=sys.stderr,
            smoothing=0.05,
            mininterval=0.5 if sys.stderr.isatty() else 30,
        )
        tokens_window, time_window = 0, 0.0
        started = time.perf_counter() - self.elapsed
        done = self._progress() >= 1.0
        evaluated = True  # nothing new to save yet
        while not done and self._stop_signal is None:
            t0 = time.perf_counter()
            batch = self.batches.batch(self.step)
            if batch.reset:
                self.carry = None
            lr = lr_at(c, self.step + 1, self._progress())
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, carry = model.loss(batch, self.carry)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, c.clip_norm if c.clip_norm > 0 else float("inf"))
            self.optimizer.step()
            self.carry = detach_state(carry)
            self.step += 1
            dt = time.perf_counter() - t0
            tokens_window, time_window = tokens_window + batch.num_tokens, time_window + dt
            row = {
                "step": self.step,
                "epoch": round(self.step / len(self.batches), 4),
                "lr": lr,
                "loss": loss.item(),
                "grad_norm": norm.item(),
            }
            self.elapsed = time.perf_counter() - started
            done = self._progress() >= 1.0
            evaluated = self.step % c.eval_every == 0 or done
            if evaluated:
                row.update(self._run_eval())
                self.elapsed = time.perf_counter() - started
            if time_window > 2.0 or evaluated:
                row["tokens_per_s"] = round(tokens_window / time_window)
                tokens_window, time_window = 0, 0.0
            row["elapsed_s"] = round(self.elapsed, 2)
            self.rows.append(row)
            if self._board is not None:
                for key, value in row.items():
                    if key != "step":
                        self._board.add_scalar(key, value, self.step)
            self._show(bar, row, evaluated)
            if evaluated:
                self.save()
                if c.patience and self.evals_since_best > c.patience:
                    break  # early stop: no new best for `patience` evaluations
        if self._stop_signal is not None and not evaluated:
            self.save()
        bar.close()
        if self.rows:
            plot_curves(self.rows, self.run_dir / "curves.png", title=str(self.run_dir))
        return TrainResult(self.step, self.elapsed, self.last_eval, self.best_eval, self.best_step, self._stop_signal)

    def _show(self, bar: tqdm, row: dict, evaluated: bool) -> None:
        if "tokens_per_s" in row:
            self._tokens_per_s = row["tokens_per_s"]
        if not self.progress:
            return
        bar.update(self.step - bar.n)
        post = {"loss": f"{row['loss']:.3f}"}
        if "val_loss" in self.last_eval:
            post["val"] = f"{self.last_eval['val_loss']:.3f}"
        if self._tokens_per_s:
            post["tok/s"] = f"{self._tokens_per_s / 1000:.1f}k"
        if self.config.max_minutes is not None:
            left = max(0.0, 60 * self.config.max_minutes - self.elapsed)
            post["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
        bar.set_postfix(post, refresh=False)
        if evaluated:
            scores = "  ".join(f"{k} {v:.4f}" for k, v in self.last_eval.items())
            bar.write(
                f"step {self.step:>6}  {self.elapsed / 60:5.1f} min  loss {row['loss']:.4f}  {scores}", file=sys.stderr
            )


def _summary_writer(folder: Path):
    """A TensorBoard SummaryWriter for ``folder``, or None when the tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))
