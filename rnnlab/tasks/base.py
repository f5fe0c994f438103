"""The task protocol: what one kind of problem declares, and the training, loading, evaluation and
prediction that every kind shares.

A task is one module with a ``Task`` subclass registered in ``rnnlab.tasks``. It declares

    name, kind      ``rnnlab train NAME``; the ``kind`` its checkpoints carry in config.json
    Options         a Config of three parts, ``model``, ``data`` and ``train`` (a TrainConfig); the
                    command line's flags are generated from their fields
    ModelConfig     the model's own Config, rebuilt from config.json to load a run
    Learned         what training learns from the data besides weights (a vocabulary, an encoder, a
                    scaling...): ``to_dict()`` for config.json, ``files()`` for files saved beside
                    it, ``load(saved, read)`` to read it back
    EvalData        a Config of the flags of ``rnnlab eval RUN`` (data to score instead of the run's
                    own test split); ``predict`` takes plain inputs (texts, files, a series...)

and implements ``read`` (the raw splits), ``fit`` (Learned from the training split), ``encode``
(the splits as model inputs), ``model_config``, ``build``, ``batches``, ``validator``, ``test``,
``evaluate``, ``predict`` and ``format_scores``. Everything else happens once, here:

    train(task, options, out)     start or resume -> read -> fit (or reload what was learned) ->
                                  encode -> seed -> build -> Trainer -> fit -> reload the best ->
                                  score the test split
    load(path)                    any checkpoint folder -> a Run of the right task
    run.evaluate(...), run.predict(...)

A checkpoint's config.json (format 2) holds ``options`` (model, data, train: what the user asked
for), ``model`` (the model's config), ``learned`` and ``progress``. Format 1 folders (rnnlab before
this protocol) are upgraded when read (``upgrade``): their options are spread over the three parts
by field name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rnnlab import callbacks as cb
from rnnlab import checkpoint
from rnnlab import distributed as dist
from rnnlab.config import Config, field_types
from rnnlab.data import catalog
from rnnlab.data.prefetch import Prefetched
from rnnlab.device import resolve_device
from rnnlab.errors import CheckpointError, ConfigError, RnnlabError
from rnnlab.io import RunLock
from rnnlab.resources import check_fits
from rnnlab.train import Trainer, TrainResult


class Learned:
    """Base of what a task learns from its training split; the default holds nothing."""

    def to_dict(self) -> dict:
        return {}

    def files(self) -> dict[str, bytes]:
        """Files saved with every checkpoint (read back by ``load`` through ``read(name)``)."""
        return {}

    @classmethod
    def load(cls, saved: dict, read: Callable[[str], bytes]):
        return cls()


class Task:
    """One kind of problem; see the module docstring. Subclasses set the class attributes and
    implement the methods that raise NotImplementedError."""

    name: ClassVar[str]
    kind: ClassVar[str]
    help: ClassVar[str]  # one line for ``rnnlab train --help``
    description: ClassVar[str]  # a paragraph for ``rnnlab train NAME --help``
    Options: ClassVar[type[Config]]
    ModelConfig: ClassVar[type[Config]]
    Learned: ClassVar[type] = Learned
    EvalData: ClassVar[type[Config] | None] = None
    Extras: ClassVar[type[Config] | None] = None  # flags of ``rnnlab train NAME`` that are not saved (``finish``'s)
    Run: ClassVar[type] = None  # the class of a loaded run (set below to ``Run``; a task may extend it)
    v1_names: ClassVar[dict[str, str]] = {}  # option names that format 1 spelled differently

    # ---------------------------------------------------------------- training
    def read(self, options) -> Any:
        """The raw data the options name (splits of texts, series, images...)."""
        raise NotImplementedError

    def fit(self, options, data) -> Any:
        """What is learned from the training split (an instance of ``Learned``)."""
        return self.Learned()

    def encode(self, options, learned, raw) -> Any:
        """The raw splits as model inputs (ids, standardised features...); checks, on resume, that the
        data is what the run learned from. By default the raw data is used as it is."""
        return raw

    def model_config(self, options, learned) -> Config:
        """The model's config; by default the options' model part is it."""
        return options.model

    def build(self, config: Config) -> nn.Module:
        raise NotImplementedError

    def check_learned(self, learned, config: Config) -> None:
        """Refuse (ValueError) what was learned that does not fit the model config it was saved with
        (a vocabulary of another size...): config.json may have been edited."""

    def init_model(self, model: nn.Module, learned) -> None:
        """Set weights from what was learned (pretrained vectors...); called once, before training."""

    def batches(self, options, data):
        """The training batches (``rnnlab.protocols.Batches``) over the encoded data."""
        raise NotImplementedError

    def validator(self, options, learned, data) -> Callable[[nn.Module], dict]:
        """A function model -> validation metrics; by default there is no validation ({})."""
        return lambda model: {}

    def test(self, run: Run, data) -> dict | None:
        """Scores on the test split, with the best weights (None if the data has no test split)."""
        return None

    def finish(self, trained: Trained, extras: Config | None) -> None:
        """What ``rnnlab train`` prints after the summary line: the test scores, by default."""
        if trained.test is not None:
            print(self.format_scores("test", trained.test))

    # ---------------------------------------------------------------- using a run
    def evaluate(self, run: Run, given: Config | None) -> dict:
        """Scores on ``given`` data (an ``EvalData``), or on the run's own test split when None (the
        default: ``test`` on the run's own data, read and encoded again)."""
        scores = self.test(run, self.encode(run.options, run.learned, self.read(run.options)))
        if scores is None:
            raise RnnlabError(f"{run.path}: its data has no test split to score")
        return scores

    def predict(self, run: Run, inputs: list, **options) -> list:
        raise NotImplementedError

    def format_scores(self, what: str | None, scores) -> str:
        """Scores as printed by ``rnnlab train`` (``what`` is "test") and ``rnnlab eval`` (None)."""
        return f"{what or 'scores'}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, (int, float)))

    def scores_json(self, scores) -> dict:
        """What RUN/test_scores.json holds of the test scores."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scores.items()}

    def format_prediction(self, prediction) -> str:
        """One line of ``rnnlab predict``'s output."""
        return str(prediction)

    def summary(self, out: Path, result: TrainResult) -> str:
        """The line printed when training ends."""
        best = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "score")
        at = f" (best at step {result.best_step}: {best})" if result.best_step else ""
        return f"saved {out}: step {result.step}, {result.elapsed / 60:.1f} min{at}"


@dataclass
class Run:
    """A trained model loaded from its run folder, with everything needed to use it."""

    path: Path
    task: Task
    model: nn.Module
    learned: Any
    options: Config
    config: dict  # config.json (upgraded to format 2 when it was older)
    result: TrainResult | None = None  # set by rnnlab.train: steps, time, the best evaluation
    test: dict | None = None  # set by rnnlab.train: the scores on the test split

    def evaluate(self, **data) -> dict:
        """Scores on the run's test split, or on the data named (the fields of the task's EvalData)."""
        given = None
        if data:
            if self.task.EvalData is None:
                raise ConfigError(f"a {self.task.kind} run is evaluated on its own data only")
            given = self.task.EvalData(**data)
        return self.task.evaluate(self, given)

    def predict(self, inputs: list, **options) -> list:
        return self.task.predict(self, list(inputs), **options)

    def curves(self):
        """The training curves (loss, validation, gradient norm, learning rate), shown inline by
        Jupyter (``.figure`` is the matplotlib Figure, ``.save(path)`` writes a PNG)."""
        from rnnlab.viz.curves import curves_figure
        from rnnlab.viz.figures import Plot

        return Plot(curves_figure(checkpoint.load(self.path).metrics(), title=str(self.path)))


Task.Run = Run


@dataclass
class Trained:
    result: TrainResult
    run: Run | None  # None when training stopped on a signal before any checkpoint
    test: dict | None  # scores on the test split (None when interrupted or there is none)


# -------------------------------------------------------------------- options


def default_options(task: Task) -> dict:
    """{part: its default Config, or None when the part has required fields (a data source)}."""
    out = {}
    for f in dataclasses.fields(task.Options):
        if f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        else:
            out[f.name] = None
    return out


def make_options(task: Task, **parts: dict):
    """The task's Options from {part: {field: value}}, each part starting from its default; a budget
    given in ``train`` replaces the default budget (max_steps and max_minutes together)."""
    values = {}
    types = field_types(task.Options)
    for name, default in default_options(task).items():
        given = dict(parts.get(name) or {})
        if name == "data":  # a data set's name where a path is expected reads it from the cache
            given = {k: catalog.resolve(k, v) for k, v in given.items()}
        if default is None:
            values[name] = types[name].from_dict(given)
            continue
        if name == "train" and ({"max_steps", "max_minutes"} & set(given)):
            default = default.with_budget(given.get("max_steps"), given.get("max_minutes"))
        values[name] = type(default).from_dict({**default.to_dict(), **given})
    return task.Options(**values)


def default_out(name: str) -> Path:
    """runs/NAME, or runs/NAME-2, -3... when taken."""
    base = Path("runs") / name
    if not checkpoint.is_checkpoint(base):
        return base
    n = 2
    while checkpoint.is_checkpoint(base.with_name(f"{name}-{n}")):
        n += 1
    return base.with_name(f"{name}-{n}")


def upgrade(task: Task, config: dict) -> dict:
    """config.json of format 1 in format 2's shape: ``options`` as its three parts, ``learned``."""
    if config.get("format_version") != 1:
        return config
    try:
        return _upgrade(task, config)
    except (AttributeError, TypeError, ValueError) as e:
        raise CheckpointError(f"config.json (format 1) is not as rnnlab wrote it ({e})") from None


def _upgrade(task: Task, config: dict) -> dict:
    reserved = {"format_version", "kind", "options", "model", "data", "train", "progress", "files"}
    old = config.get("options")
    if isinstance(old, dict):  # every task but the character model kept its options flat
        rename = lambda k: k if k == "train" else task.v1_names.get(k, k)  # noqa: E731 (train: the TrainConfig)
        flat = {rename(k): v for k, v in old.items() if k != "source"}
        flat.update({task.v1_names.get(k, k): v for k, v in (old.get("source") or {}).items()})
    else:  # the character model kept model, data and train apart
        flat = {**config.get("model", {}), **config.get("data", {}), "train": config.get("train", {})}
    types = field_types(task.Options)
    parts, used = {}, {"train"}
    for f in dataclasses.fields(task.Options):
        names = {g.name for g in dataclasses.fields(types[f.name])}
        parts[f.name] = {k: v for k, v in flat.items() if k in names}
        used |= names
    parts["train"] = flat.get("train", {})
    learned = {k: v for k, v in config.items() if k not in reserved}
    learned.update({k: v for k, v in flat.items() if k not in used})
    return {**config, "options": parts, "learned": learned}


# -------------------------------------------------------------------- train, load


def train(
    task: Task,
    options,
    out: str | Path,
    *,
    resume: bool = False,
    budget: tuple[int | None, float | None] | None = None,
    progress: bool = True,
    callbacks: list | None = None,
    device: str | torch.device = "auto",
    workers: int = 0,
) -> Trained:
    """Train (or, with ``resume``, continue) ``task`` into the run folder ``out``, on ``device``
    (``rnnlab.device.resolve_device``; under torchrun, each process on its share of the batches),
    with ``workers`` processes making the batches ahead (``rnnlab.data.prefetch``).

    Without ``resume`` a folder that already holds a run is refused (nothing saved is ever
    overwritten). With it the run's own saved options are used (``options`` may be None) and what
    it learned from the data is read back, not refitted; ``budget`` (max_steps, max_minutes)
    replaces the saved budget, so that a run can be extended.
    """
    out = Path(out)
    device = dist.local_device(resolve_device(device) if isinstance(device, str) else device)
    world = dist.start(device)
    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    if not world.main:  # rank 0 holds the lock and writes the folder; the others only train
        return _train(task, options, out, resume, budget, [], device, world, workers)
    callbacks = cb.standard(progress) if callbacks is None else callbacks
    with RunLock(out):
        checkpoint.tidy(out)
        return _train(task, options, out, resume, budget, callbacks, device, world, workers)


def _train(task: Task, options, out: Path, resume: bool, budget, callbacks, device, world, workers) -> Trained:
    saved = None
    if resume:
        ckpt = checkpoint.load(out, task.kind)
        saved = upgrade(task, ckpt.config)
        try:
            options = task.Options.from_dict(saved.get("options") or {})
            if budget is not None:
                options = options.replace(train=options.train.with_budget(*budget))
        except RnnlabError as e:
            raise CheckpointError(f"{out}: cannot resume: {e}") from None
    elif checkpoint.is_checkpoint(out):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    raw = task.read(options)
    learned = task.fit(options, raw) if saved is None else _load_learned(task, saved, ckpt)
    data = task.encode(options, learned, raw)
    config = task.model_config(options, learned)
    check_fits(task.build, config, training=True)
    torch.manual_seed(options.train.seed)
    model = task.build(config)
    if saved is None:
        task.init_model(model, learned)

    def describe() -> dict:
        return {"options": options.to_dict(), "model": config.to_dict(), "learned": learned.to_dict()}

    batches = task.batches(options, data)
    if workers:
        batches = Prefetched(batches, workers)
    trainer = Trainer(
        model,
        batches=batches,
        evaluate=task.validator(options, learned, data),
        config=options.train,
        run_dir=out,
        kind=task.kind,
        describe=describe,
        attachments=learned.files(),
        callbacks=callbacks,
        device=device,
        world=world,
    )
    if resume:
        trainer.restore()
    try:
        result = trainer.fit()
    finally:
        if workers:
            batches.close()
    run = load(out, device=device) if world.main and checkpoint.is_checkpoint(out) else None
    test = task.test(run, data) if run is not None and result.interrupted is None else None
    return Trained(result, run, test)


def _load_learned(task: Task, config: dict, ckpt: checkpoint.Checkpoint):
    try:
        return task.Learned.load(config.get("learned") or {}, ckpt.read)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{ckpt.path}: config.json does not describe what a {task.kind} run learned ({e})") from None


def load(path: str | Path, kind: str | None = None, device: str | torch.device = "cpu") -> Run:
    """The run saved in the folder ``path``, of any registered kind (or the one named), its model on
    ``device`` (the CPU by default; "auto" for the best there is)."""
    from rnnlab.tasks import by_kind

    ckpt = checkpoint.load(path, kind)
    task = by_kind(ckpt.config["kind"], path)
    config = upgrade(task, ckpt.config)
    learned = _load_learned(task, config, ckpt)
    try:
        options = task.Options.from_dict(config.get("options") or {})
        model_config = task.ModelConfig.from_dict(config.get("model") or {})
        task.check_learned(learned, model_config)
    except (RnnlabError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a {task.kind} run ({e})") from None
    check_fits(task.build, model_config, training=False)
    model = task.build(model_config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    model.to(resolve_device(device) if isinstance(device, str) else device)
    return task.Run(ckpt.path, task, model.eval(), learned, options, config)
