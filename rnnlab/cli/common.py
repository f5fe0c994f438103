"""Pieces shared by the commands: the one-line-error parser, and the flags every training task has."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rnnlab.checkpoint import is_checkpoint
from rnnlab.errors import RnnlabError
from rnnlab.train import TrainConfig

EXIT_BAD_INPUT = 2
CELLS = ["lstm", "gru", "rnn"]


class FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default once: the help's own "(default: ...)" when it has one (flags left
    unset so that --resume can tell them apart), argparse's otherwise; nothing for None, "" or on/off."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (and exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Flags that describe the model, the data or the optimiser default to None, so that --resume can
# tell which ones were given (the saved run decides them) and help can still show the default.


def add_model_flags(p: argparse.ArgumentParser, cell: str, hidden: int, layers: int, dropout: float) -> None:
    p.add_argument("--cell", choices=CELLS, help=f"recurrent cell (default: {cell})")
    p.add_argument("--hidden", type=int, metavar="N", help=f"hidden units per layer and direction (default: {hidden})")
    p.add_argument("--layers", type=int, metavar="N", help=f"recurrent layers (default: {layers})")
    p.add_argument("--dropout", type=float, metavar="P", help=f"dropout probability (default: {dropout})")


def add_train_flags(p: argparse.ArgumentParser, d: TrainConfig, default_out: Path, budget_help: str) -> None:
    p.add_argument("--lr", type=float, metavar="X", help=f"peak learning rate (default: {d.lr})")
    p.add_argument("--weight-decay", type=float, metavar="X", help=f"AdamW weight decay (default: {d.weight_decay})")
    p.add_argument("--warmup", type=int, metavar="N", help=f"warm-up steps (default: {d.warmup_steps})")
    p.add_argument("--clip", type=float, metavar="X", help=f"gradient norm clip, 0 for none (default: {d.clip_norm})")
    p.add_argument("--max-minutes", type=float, metavar="M", help=f"time budget in minutes ({budget_help})")
    p.add_argument("--max-steps", type=int, metavar="S", help="step budget (default: see --max-minutes)")
    p.add_argument("--eval-every", type=int, metavar="N", help=f"evaluate and save every N steps (default: {d.eval_every})")
    p.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help=f"stop after N evaluations without a new best, 0 never (default: {d.patience})",
    )
    p.add_argument("--seed", type=int, metavar="S", help=f"random seed (default: {d.seed})")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"run folder for the checkpoint (default: {default_out}, or {default_out}-2... if taken)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


TRAIN_FLAGS = {
    "lr": "lr",
    "weight_decay": "weight_decay",
    "warmup": "warmup_steps",
    "clip": "clip_norm",
    "eval_every": "eval_every",
    "patience": "patience",
    "seed": "seed",
}


def train_config(args, default: TrainConfig) -> TrainConfig:
    """The TrainConfig the flags ask for; the default's budget applies when no budget flag is given."""
    changes = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    if args.max_steps is not None or args.max_minutes is not None:
        changes.update(max_steps=args.max_steps, max_minutes=args.max_minutes)
    return replace(default, **changes)


def pick(value, default):
    return default if value is None else value


def run_dir(args, default: Path, fixed_flags: list[str]) -> Path:
    """Where the run goes. With --resume no flag in ``fixed_flags`` may be given: the run's own
    saved settings are used. Without it a default folder that is taken becomes NAME-2, NAME-3..."""
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in [*fixed_flags, *TRAIN_FLAGS] if getattr(args, f, None) is not None]
        if given:
            raise RnnlabError(f"{', '.join(given)} cannot change when resuming: the run's saved settings are used")
        return args.out or default
    if args.out is not None:
        return args.out
    if not is_checkpoint(default):
        return default
    n = 2
    while is_checkpoint(default.with_name(f"{default.name}-{n}")):
        n += 1
    return default.with_name(f"{default.name}-{n}")


def save_scores(out: Path, scores: dict, name: str = "test_scores.json") -> None:
    """Write the final scores of a run beside its checkpoint, as JSON (arrays as lists)."""
    import json

    import numpy as np

    from rnnlab.checkpoint import atomic_write

    plain = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scores.items() if k != "predictions"}
    atomic_write(Path(out) / name, json.dumps(plain, indent=2).encode())


def interrupted(result, out: Path, task: str) -> int:
    """Report a run stopped by Ctrl-C or SIGTERM (already saved); exit with 128 + the signal."""
    import sys

    command = "rnnlab train" + ("" if task == "charlm" else f" {task}")
    print(
        f"rnnlab: stopped by signal {result.interrupted}; saved {out} at step {result.step}; "
        f"continue with: {command} --out {out} --resume",
        file=sys.stderr,
    )
    return 128 + result.interrupted
