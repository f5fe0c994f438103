"""The Python API, for notebooks and scripts: ``rnnlab.train`` and ``rnnlab.load``.

    import rnnlab
    run = rnnlab.train("charlm", max_steps=300, hidden_size=256)        # options by field name
    run.sample("ROMEO:", 200)
    run.explorer()                                                     # the explorer page, inline in Jupyter
    run = rnnlab.train("classify", csv="reviews.csv", max_minutes=2)
    run.test["accuracy"], run.predict(["a fine film"]), run.evaluate(csv="other.csv")
    run = rnnlab.load("runs/charlm")                                   # any run folder

Options are the fields of the task's model, data and training configs (``rnnlab train KIND --help``
lists them: ``--hidden`` is ``hidden_size``, ``--layers`` ``num_layers``...); a data set's name
works where a path is expected (``csv="airline"``, after ``rnnlab data fetch airline``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rnnlab.config import field_types
from rnnlab.errors import ConfigError


def train(
    kind: str = "charlm",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
    workers: int = 0,
    progress: bool = True,
    **options,
):
    """Train (or resume) a task into ``out`` (default: runs/KIND, or runs/KIND-2... if taken); returns
    the trained Run, with ``run.result`` (steps, time, best evaluation) and ``run.test`` (the scores
    on the test split, or None)."""
    from rnnlab.tasks import base, get

    task = get(kind)
    parts = split_options(task, options)
    if resume:
        if set(options) - {"max_steps", "max_minutes"}:
            raise ConfigError("only max_steps and max_minutes can change when resuming: the run's saved settings are used")
        budget = (options.get("max_steps"), options.get("max_minutes")) if parts.get("train") else None
        trained = base.train(
            task,
            None,
            out or f"runs/{task.name}",
            resume=True,
            budget=budget,
            progress=progress,
            device=device,
            workers=workers,
        )
    else:
        folder = out or base.default_out(task.name)
        trained = base.train(
            task, base.make_options(task, **parts), folder, progress=progress, device=device, workers=workers
        )
    if trained.run is None:
        raise ConfigError("training stopped before anything was saved")
    trained.run.result, trained.run.test = trained.result, trained.test
    return trained.run


def load(path: str | Path, device: str = "cpu"):
    """The run saved in ``path`` (any kind), its model on ``device``."""
    from rnnlab.tasks import load as load_run

    return load_run(path, device=device)


def split_options(task, options: dict) -> dict[str, dict]:
    """{field: value} -> {part: {field: value}} by which of the task's configs has the field."""
    types = field_types(task.Options)
    owner = {}
    for part in dataclasses.fields(task.Options):
        for f in dataclasses.fields(types[part.name]):
            owner.setdefault(f.name, []).append(part.name)
    parts: dict[str, dict] = {}
    for name, value in options.items():
        where = owner.get(name)
        if not where:
            raise ConfigError(f"{task.name} has no option {name!r}; see rnnlab train {task.name} --help")
        parts.setdefault(where[0], {})[name] = value
    return parts
