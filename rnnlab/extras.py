"""Optional dependencies: rnnlab's core needs torch, numpy, safetensors, tqdm and matplotlib only.

    pip install rnnlab                 the cells, Recurrent, the character model, the explorer
    pip install 'rnnlab[text]'         classify, tag, forecast, translate (pandas, sentencepiece, ...)
    pip install 'rnnlab[audio]'        transcribe (soundfile, librosa, jiwer)
    pip install 'rnnlab[vision]'       caption (pillow, pandas, sacrebleu)
    pip install 'rnnlab[all]'          everything

``require("librosa", "audio")`` imports a module of an extra, or says in one line (a
``MissingExtra``, exit 2 on the command line) which extra to install.
"""

from __future__ import annotations

import importlib

from rnnlab.errors import RnnlabError


class MissingExtra(RnnlabError):
    """An optional dependency is not installed."""


def require(module: str, extra: str):
    """The module ``module`` (part of rnnlab's ``extra``), or a MissingExtra naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"this needs {module.split('.')[0]}, part of rnnlab's {extra!r} extra: pip install 'rnnlab[{extra}]'"
        ) from None
