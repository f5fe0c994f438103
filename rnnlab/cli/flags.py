"""Flags generated from config fields, and read back into configs.

Every field of a Config becomes one flag: ``seq_len`` -> ``--seq-len N``, with the field's comment
as its help and its default shown once. Types decide the rest: a ``Literal`` gives choices, a tuple
``nargs``, ``X | None`` an optional value, a bool a switch (``--baseline``; for a field that
defaults to True, ``--no-NAME`` or the name in NEGATIONS, such as ``--unidirectional``). Short names
that users' scripts already use are kept (ALIASES: ``--hidden`` for hidden_size...).

Flags left out of the command line are absent from the parsed namespace (``argparse.SUPPRESS``), so
``--resume`` can tell exactly which ones were given.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Literal, get_args, get_origin

from rnnlab.config import Config, field_types, optional

ALIASES = {
    "hidden_size": "hidden",
    "num_layers": "layers",
    "encoder_layers": "layers",
    "embedding_dim": "embedding",
    "warmup_steps": "warmup",
    "clip_norm": "clip",
    "src_lang": "src",
    "tgt_lang": "tgt",
}
NEGATIONS = {"bidirectional": "unidirectional"}
_METAVAR = re.compile(r"^\[([^\]]+)\]\s*")
_DEFAULT_METAVAR = {int: "N", float: "X", str: "S"}


def flag_name(name: str, value) -> str:
    """The command-line flag of field ``name`` whose default is ``value``."""
    if value is True:
        return "--" + NEGATIONS.get(name, "no-" + name.replace("_", "-"))
    return "--" + ALIASES.get(name, name).replace("_", "-")


def field_defaults(cls: type[Config], instance: Config | None = None) -> dict:
    """{field: default} of a config class (the values of ``instance`` when one is given)."""
    out = {}
    for f in dataclasses.fields(cls):
        if instance is not None:
            out[f.name] = getattr(instance, f.name)
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def add_config_flags(
    parser, cls: type[Config], prefix: str, instance: Config | None = None, title: str | None = None, only=None, bare=None
) -> dict:
    """One flag per field of ``cls`` (or of those named in ``only``), stored as ``PREFIX.FIELD``;
    returns {dest: flag}. A field in ``bare`` takes its value as optional: ``--imdb`` alone means
    ``--imdb imdb`` (a data set's name)."""
    group = parser.add_argument_group(title) if title else parser
    docs, types = cls.docs(), field_types(cls)
    flags = {}
    for name, value in field_defaults(cls, instance).items():
        if only is not None and name not in only:
            continue
        flag = flag_name(name, value)
        dest = f"{prefix}.{name}"
        doc = docs.get(name, "")
        metavar = _METAVAR.match(doc)
        doc = _METAVAR.sub("", doc)
        tp, _ = optional(types[name])
        kwargs: dict = {"dest": dest, "default": argparse.SUPPRESS}
        if tp is bool:
            kwargs.update(action="store_const", const=not value, help=f"turn off: {doc}" if value else doc)
        else:
            kwargs["help"] = doc + ("" if value is None or "(default" in doc else f" (default: {_shown(value)})")
            if get_origin(tp) is Literal:
                kwargs["choices"] = list(get_args(tp))
            elif get_origin(tp) is tuple:
                args = get_args(tp)
                variadic = len(args) == 2 and args[1] is Ellipsis
                kwargs.update(nargs="+" if variadic else len(args), type=args[0])
                names = metavar.group(1).split() if metavar else ["X"]
                kwargs["metavar"] = names[0] if variadic else tuple(names)
            else:
                kwargs.update(type=tp, metavar=metavar.group(1) if metavar else _DEFAULT_METAVAR.get(tp, "X"))
                if bare and name in bare:
                    kwargs.update(nargs="?", const=bare[name])
                    kwargs["help"] += f"; alone: the data set {bare[name]} (rnnlab data fetch {bare[name]})"
        group.add_argument(flag, **kwargs)
        flags[dest] = flag
    return flags


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def given(args: argparse.Namespace, prefix: str) -> dict:
    """{field: value} of the flags under ``prefix`` that were on the command line."""
    start = prefix + "."
    return {dest[len(start) :]: value for dest, value in vars(args).items() if dest.startswith(start)}
