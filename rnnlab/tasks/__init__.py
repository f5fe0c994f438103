"""Tasks: each wires data, a model, the Trainer and checkpoints together for one kind of problem,
through the one protocol of ``rnnlab.tasks.base``.

    from rnnlab.tasks import get, load, make_options, train
    task = get("classify")
    trained = train(task, make_options(task, data={"csv": "reviews.csv"}), "runs/reviews")
    run = load("runs/reviews")              # any kind
    run.predict(["a fine film"])

The registry maps each task's name (``rnnlab train NAME``) to its Task object. Adding a task means
writing one module with a Task subclass and calling ``register`` on an instance.
"""

from __future__ import annotations

from rnnlab.errors import CheckpointError, ConfigError
from rnnlab.tasks.base import Learned, Run, Task, Trained, load, make_options, train

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make ``task`` known to ``rnnlab train NAME``, ``eval``, ``predict`` and ``load``."""
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ValueError(f"a task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def by_kind(kind: str, where=None) -> Task:
    """The task whose checkpoints carry ``kind`` in config.json."""
    for task in TASKS.values():
        if task.kind == kind:
            return task
    raise CheckpointError(f"{where}: holds a {kind!r} model, which this rnnlab does not know")


def _register_builtin() -> None:
    from rnnlab.tasks import caption, charlm, classify, forecast, tag, transcribe, translate

    for module in (charlm, classify, tag, forecast, translate, caption, transcribe):
        register(module.TASK)


_register_builtin()

__all__ = ["TASKS", "Learned", "Run", "Task", "Trained", "by_kind", "get", "load", "make_options", "register", "train"]
