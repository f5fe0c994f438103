"""Typed errors for bad input.

The library raises these; the command line turns each into one line on stderr and exit code 2.
Anything else that escapes is a bug in rnnlab, not a user mistake.
"""

from __future__ import annotations


class RnnlabError(Exception):
    """Base class: a problem with what the user gave us, explained in one sentence."""


class DataError(RnnlabError):
    """A data file is missing, empty, binary, not UTF-8, too short, or holds unknown symbols."""


class ConfigError(RnnlabError, ValueError):
    """A hyperparameter or option is out of range (negative size, dropout 1.5, zero learning rate)."""


class CheckpointError(RnnlabError):
    """A checkpoint folder is missing, corrupt, truncated, inconsistent or from another program."""
