"""What every training task does alike: its options saved as JSON and read back, and starting or
resuming a run in a folder."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from rnnlab import checkpoint
from rnnlab.errors import ConfigError
from rnnlab.train import TrainConfig


def _tuples(value):
    return tuple(value) if isinstance(value, list) else value


def options_from_dict(cls, d: dict, **nested: type):
    """Rebuild an options dataclass saved with ``dataclasses.asdict``: ``train`` as a TrainConfig,
    each field named in ``nested`` as that class, and JSON lists back into tuples."""
    values = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name == "train":
            v = TrainConfig.from_dict(v)
        elif f.name in nested:
            v = nested[f.name](**{k: _tuples(x) for k, x in v.items()})
        values[f.name] = _tuples(v)
    return cls(**values)


def start_or_resume(out: Path, kind: str, options, resume: bool):
    """The options a run in ``out`` trains with. Without ``resume``, a folder that already holds a
    run is refused (nothing saved is ever overwritten). With it, the run's own saved options are
    used, with the step and time budget of ``options`` (so a run can be extended)."""
    if resume:
        saved = type(options).from_dict(checkpoint.load(out, kind).config["options"])
        budget = {"max_steps": options.train.max_steps, "max_minutes": options.train.max_minutes}
        return replace(saved, train=replace(saved.train, **budget))
    if checkpoint.is_checkpoint(out):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    return options
