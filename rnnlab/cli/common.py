"""Pieces shared by the commands: the one-line-error parser and its help formatter."""

from __future__ import annotations

import argparse

EXIT_BAD_INPUT = 2


class FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default once: the help's own "(default: ...)" when it has one, argparse's
    otherwise; nothing for None, "", on/off switches or flags left unset (SUPPRESS)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (and exit code 2)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", FMT)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
