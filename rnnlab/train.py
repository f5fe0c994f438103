"""One Trainer for every model: AdamW, warm-up and cosine decay, clipping, truncated BPTT, budgets,
evaluation, checkpoints, resume, divergence caught.

Nothing here knows which cell or task it trains. It needs (``rnnlab.protocols`` writes these down):

* a model with ``loss(batch, carry) -> (loss, carry)``: ``carry`` is whatever state the model wants
  back with the next batch (the hidden state, for truncated BPTT) or None;
* ``batches``, with ``batch(step)`` giving the batch for a step (a deterministic function of the
  step, so a resumed run sees what an uninterrupted run would) and ``len()`` batches per epoch;
  each batch has ``reset`` (drop the carried state first) and ``num_tokens``;
* ``evaluate(model) -> {"val_loss": ..., ...}``, called every ``eval_every`` steps and at the end;
  the best evaluation (highest ``score`` if reported, else lowest ``val_loss``) keeps a copy of
  the weights (``best.safetensors``), and ``patience`` stops a run that no longer improves;
* a ``describe()`` dict that goes into config.json beside the weights (the options, the model
  config, what was learned from the data), enough to rebuild the model from the checkpoint.

What is shown and logged (progress bar, metrics.csv, curves.png, TensorBoard) is up to the
callbacks (``rnnlab.callbacks``); the Trainer itself only trains and saves.

Truncated BPTT: after each batch the carried state is detached (``detach_state``): the next
batch starts from its value but gradients stop at the batch boundary. The state is reset to zeros
when a batch says ``reset`` (a new epoch, whose rows start elsewhere in the stream).

Learning rate at step s (1-based), with p the fraction of the budget used (the larger of
s / max_steps and elapsed / max_minutes)::

    lr(s) = lr * min(1, s / warmup_steps) * (final_lr_ratio + (1 - final_lr_ratio) * (1 + cos(pi p)) / 2)

Divergence: a step whose loss or gradient is not finite is not applied (the weights and the
optimiser stay as they were); after ``MAX_BAD_STEPS`` such steps in a row training stops with a
``TrainingDiverged`` error, saving nothing: the last checkpoint and the best weights stay. A loss
that climbs far above where it started is warned about once.

Ctrl-C or SIGTERM stops after the current step and saves a checkpoint; ``resume=True`` reloads it
(weights, optimiser moments, RNG, carried state, step, elapsed time) and goes on. A run stopped and
resumed under a step budget ends with exactly the weights of an uninterrupted run.

Devices and processes: the model and every batch go to ``device``; ``config.precision`` picks
float32 or mixed precision (``rnnlab.device``). Under torchrun (``world``, ``rnnlab.distributed``)
each process trains on its share of every batch through DistributedDataParallel; the processes
agree after each step on the loss, on whether it was finite and on whether to stop, and only rank 0
saves.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnlab import checkpoint
from rnnlab import distributed as dist
from rnnlab.callbacks import Callback
from rnnlab.cells import State
from rnnlab.config import Config
from rnnlab.device import Precision, autocast, check_precision, grad_scaler, rng_states, set_rng_states, to_device
from rnnlab.errors import CheckpointError, ConfigError, RnnlabError

MAX_BAD_STEPS = 5  # non-finite steps in a row before training stops


class TrainingDiverged(RnnlabError):
    """The loss or the gradient stayed non-finite: the learning rate is probably far too high."""


@dataclass(frozen=True)
class TrainConfig(Config):
    lr: float = 2e-3  # [X] peak learning rate
    weight_decay: float = 0.0  # [X] AdamW weight decay (weight matrices only)
    warmup_steps: int = 100  # [N] warm-up steps (linear, from 0 to the peak learning rate)
    final_lr_ratio: float = 0.05  # [X] the cosine decay ends at this share of the peak learning rate
    clip_norm: float = 1.0  # [X] gradient norm clip, 0 for none
    max_steps: int | None = None  # [S] step budget
    max_minutes: float | None = None  # [M] time budget in minutes
    eval_every: int = 250  # [N] evaluate and save every N steps
    patience: int = 0  # [N] stop after N evaluations without a new best, 0 never
    seed: int = 0  # [S] random seed
    precision: Precision = "fp32"  # arithmetic of training: fp32, or bf16 / fp16 mixed precision (weights stay fp32)

    def __post_init__(self) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warm-up steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ConfigError(f"final lr ratio must be in [0, 1], got {self.final_lr_ratio}")
        if not 0 <= self.clip_norm < math.inf:
            raise ConfigError(f"clip norm must be >= 0, got {self.clip_norm}")
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError("give a budget: max_steps, max_minutes or both")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max steps must be at least 1, got {self.max_steps}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise ConfigError(f"max minutes must be positive, got {self.max_minutes}")
        if self.eval_every < 1:
            raise ConfigError(f"eval every must be at least 1, got {self.eval_every}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    def with_budget(self, max_steps: int | None, max_minutes: float | None) -> TrainConfig:
        """This config with another budget (when a user names one, the other is not kept)."""
        return self.replace(max_steps=max_steps, max_minutes=max_minutes)


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
    (accuracy, F1...), else a lower ``val_loss``. A non-finite value is the worst."""
    value = -metrics["score"] if "score" in metrics else metrics.get("val_loss")
    if value is None:
        return None
    return value if math.isfinite(value) else math.inf


@dataclass
class TrainResult:
    step: int
    elapsed: float  # seconds spent training and evaluating (over all resumed parts)
    metrics: dict  # the last evaluation
    best_metrics: dict  # the best evaluation (see ``badness``); its weights are in best.safetensors
    best_step: int | None
    interrupted: int | None  # the signal that stopped the run, if one did


class Trainer:
    """Trains ``model`` into ``run_dir`` (see the module docstring); ``fit()`` returns a TrainResult.

    ``attachments`` are files saved with every checkpoint (a tokenizer model...); ``callbacks``
    report progress and keep logs (``rnnlab.callbacks.standard()`` for the usual ones).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        batches,
        evaluate: Callable[[nn.Module], dict[str, float]],
        config: TrainConfig,
        run_dir: Path,
        kind: str,
        describe: Callable[[], dict],
        attachments: dict[str, bytes] | None = None,
        callbacks: Sequence[Callback] = (),
        device: torch.device | None = None,
        world: dist.World | None = None,
    ) -> None:
        self.device = device or torch.device("cpu")
        self.world = world or dist.World()
        check_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.batches, self.evaluate, self.config = batches, evaluate, config
        self.run_dir, self.kind, self.describe = Path(run_dir), kind, describe
        self.attachments = attachments or {}
        self.callbacks = list(callbacks) if self.world.main else []
        self.engine = dist.engine(self.model, self.world, self.device)  # model.loss, or DDP around it
        self.scaler = grad_scaler(self.device, config.precision)
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
        self.last_eval: dict = {}
        self.best_eval: dict = {}
        self.best_step: int | None = None
        self.best_state: dict[str, Tensor] | None = None  # a copy of the weights at the best evaluation
        self.evals_since_best = 0
        self.checkpoint: checkpoint.Checkpoint | None = None  # the one restored from, if resumed
        self._stop_signal: int | None = None
        self._bad_steps = 0  # non-finite steps in a row
        self._first_loss: float | None = None
        self._warned_rising = False

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> None:
        if not self.world.main:
            return  # rank 0 alone writes the run folder
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingDiverged(f"the weights are no longer finite at step {self.step}; nothing was saved")
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
        tensors: dict[str, Tensor] = rng_states(self.device)
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
        for i, s in enumerate(self.carry or ()):
            tensors[f"carry.{i}"] = s
        files = {
            checkpoint.MODEL_FILE: checkpoint.tensors_to_bytes(self.model.state_dict()),
            checkpoint.TRAINER_FILE: checkpoint.tensors_to_bytes(
                tensors, {"meta": json.dumps(checkpoint.finite_json(meta), allow_nan=False)}
            ),
            **self.attachments,
        }
        if self.best_state is not None:
            files[checkpoint.BEST_FILE] = checkpoint.tensors_to_bytes(self.best_state)
        for callback in self.callbacks:
            files.update(callback.on_save(self))
        config = {
            **self.describe(),
            "progress": {"step": self.step, "elapsed_seconds": round(self.elapsed, 1), **self.last_eval},
        }
        checkpoint.save(self.run_dir, kind=self.kind, config=config, files=files)

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
            set_rng_states(tensors, self.device)
            self.carry = tuple(tensors[f"carry.{i}"].to(self.device) for i in range(meta["carry_size"])) or None
            self.step, self.elapsed = int(meta["step"]), float(meta["elapsed"])
            self.last_eval, self.best_eval, self.best_step = meta["last_eval"], meta["best_eval"], meta["best_step"]
            self.evals_since_best = meta["evals_since_best"]
            self.best_state = ckpt.best_state() if self.best_step is not None else None
            self.best_state = None if self.best_state is None else {k: v.to(self.device) for k, v in self.best_state.items()}
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise CheckpointError(f"{self.run_dir}: trainer state is incomplete or does not fit ({e})") from None
        self.checkpoint = ckpt

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
        if now is not None and now < math.inf and (best is None or now < best):
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
        try:
            for callback in self.callbacks:
                callback.on_start(self)
            result = self._fit()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        for callback in self.callbacks:
            callback.on_end(self, result)
        return result

    def _train_step(self, batch) -> tuple[float, float]:
        """One optimiser step; returns (loss, gradient norm before clipping). A non-finite loss or
        gradient leaves the weights and the optimiser untouched (on every process alike)."""
        with autocast(self.device, self.config.precision):
            loss, carry = self.engine(batch, self.carry)
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        finite = dist.agree(self.world, [float(not math.isfinite(value))])[0] == 0  # finite on every process
        value = dist.mean(self.world, value)  # the loss of the whole batch
        if finite:
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            clip = self.config.clip_norm if self.config.clip_norm > 0 else math.inf
            norm = float(torch.nn.utils.clip_grad_norm_(list(self.model.parameters()), clip))
        else:
            norm = math.nan
        if self.scaler is not None and finite:  # fp16: the scaler skips steps that overflowed, and adapts
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if math.isfinite(value) and math.isfinite(norm):
            if self.scaler is None:
                self.optimizer.step()
            self.carry = detach_state(carry)
            self._bad_steps = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_steps += 1
            if self._bad_steps >= MAX_BAD_STEPS:
                raise TrainingDiverged(
                    f"training diverged: the loss or its gradient was not finite in {self._bad_steps} steps in a row "
                    f"(up to step {self.step + 1}, learning rate {self.config.lr:g}); nothing non-finite was saved. "
                    "Try a lower --lr or a smaller --clip"
                )
        return value, norm

    def _watch(self, loss: float) -> None:
        """Warn once when the loss climbs far above where the run started."""
        if self._first_loss is None and math.isfinite(loss):
            self._first_loss = loss
        elif (
            self._first_loss is not None
            and not self._warned_rising
            and math.isfinite(loss)
            and loss > 3 * self._first_loss + 1
            and self.step > self.config.warmup_steps
        ):
            self._warned_rising = True
            print(
                f"rnnlab: warning: the training loss ({loss:.4g}) is far above where it started ({self._first_loss:.4g}) "
                f"at step {self.step}; the learning rate ({self.config.lr:g}) may be too high",
                file=sys.stderr,
            )

    def _fit(self) -> TrainResult:
        c = self.config
        self.model.train()
        tokens_window, time_window = 0, 0.0
        started = time.perf_counter() - self.elapsed
        done, stopping = self._progress() >= 1.0, self._stop_signal is not None
        evaluated = True  # nothing new to save yet
        while not done and not stopping:  # both agreed by every process, so that they stop together
            t0 = time.perf_counter()
            batch = dist.share(to_device(self.batches.batch(self.step), self.device), self.world)
            if batch.reset:
                self.carry = None
            lr = lr_at(c, self.step + 1, self._progress())
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, norm = self._train_step(batch)
            self.step += 1
            self._watch(loss)
            dt = time.perf_counter() - t0
            tokens_window, time_window = tokens_window + batch.num_tokens, time_window + dt
            row = {
                "step": self.step,
                "epoch": round(self.step / len(self.batches), 4),
                "lr": lr,
                "loss": loss,
                "grad_norm": norm,
            }
            self.elapsed = time.perf_counter() - started
            done, stopping = map(bool, dist.agree(self.world, [self._progress() >= 1.0, self._stop_signal is not None]))
            if stopping and self._stop_signal is None:  # another process was stopped: this one stops with it
                self._stop_signal = signal.SIGTERM
            evaluated = self.step % c.eval_every == 0 or done
            if evaluated:
                row.update(self._run_eval())
                self.elapsed = time.perf_counter() - started
            if time_window > 2.0 or evaluated:
                row["tokens_per_s"] = round(tokens_window / time_window)
                tokens_window, time_window = 0, 0.0
            row["elapsed_s"] = round(self.elapsed, 2)
            for callback in self.callbacks:
                callback.on_step(self, row)
            if evaluated:
                for callback in self.callbacks:
                    callback.on_evaluation(self, row)
                self.save()
                if c.patience and self.evals_since_best > c.patience:
                    break  # early stop: no new best for `patience` evaluations
        if self._stop_signal is not None and not evaluated:
            self.save()
        return TrainResult(self.step, self.elapsed, self.last_eval, self.best_eval, self.best_step, self._stop_signal)
