"""Configs: frozen dataclasses that go to JSON and come back, checked, and document themselves.

    @dataclass(frozen=True)
    class TextData(Config):
        seq_len: int = 128  # characters per row of a batch (the truncation length of BPTT)

    TextData.from_dict(TextData().to_dict()) == TextData()
    TextData.from_dict({"seq_len": "long"})      # ConfigError: seq_len: expected an integer, got 'long'
    TextData.docs()["seq_len"]                   # "characters per row of a batch (...)"

* ``to_dict`` gives plain JSON values (tuples become lists, nested configs dicts);
* ``from_dict`` rebuilds the dataclass from its field types (nested configs, tuples, ``X | None``,
  ``Literal`` choices), refusing a value of the wrong type with one clear ``ConfigError``, so that
  a hand-edited config.json cannot reach a model as a string where a size should be. Keys that are
  not fields are ignored (a newer rnnlab may have written them);
* the trailing comment of each field is its documentation (``docs``): the command line shows it as
  the flag's help. A comment may start with a metavar in brackets, ``# [FILE] text to train on``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from rnnlab.errors import ConfigError

_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config and options dataclass (see the module docstring)."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        hints = field_types(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.init and f.name in d:
                values[f.name] = convert(d[f.name], hints[f.name], f.name)
        try:
            return cls(**values)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{cls.__name__}: {e}") from None

    @classmethod
    def docs(cls) -> dict[str, str]:
        """{field: the trailing comment of its line}, for this class and the configs it extends."""
        return _docs(cls)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _plain(value):
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


@functools.cache
def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _docs(cls) -> dict[str, str]:
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):  # no source (a frozen install): no help texts
            continue
        names = {f.name for f in dataclasses.fields(klass)}
        for line in lines:
            m = _COMMENT.match(line)
            if m and m.group(1) in names:
                out[m.group(1)] = m.group(2)
    return out


def optional(tp) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed) for ``X | None``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(tp))
    return tp, False


def convert(value, tp, name: str):
    """``value`` (from JSON or the command line) as type ``tp``, or a ConfigError naming ``name``."""
    inner, nullable = optional(tp)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{name}: a value is required, got null")
    origin = get_origin(inner)
    if isinstance(inner, type) and issubclass(inner, Config):
        return inner.from_dict(value)
    if origin is Literal:
        if value not in get_args(inner):
            raise ConfigError(f"{name}: expected one of {', '.join(map(repr, get_args(inner)))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        args = get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], name) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {len(value)}")
        return tuple(convert(v, a, name) for v, a in zip(value, args))
    if inner is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if inner is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    return value
