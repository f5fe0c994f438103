"""rnnlab: recurrent neural networks (RNN, LSTM, GRU) on PyTorch.

from rnnlab import LSTMCell, Recurrent
rnn = Recurrent(LSTMCell, input_size=8, hidden_size=32, num_layers=2)
output, state = rnn(x)            # x (B, T, 8) -> output (B, T, 32), state (h, c) each (2, B, 32)

run = rnnlab.train("charlm", max_steps=300)     # a task, end to end (rnnlab.api)
run = rnnlab.load("runs/charlm")                # any run folder

``rnnlab.train`` is the function; the Trainer's module stays importable as ``rnnlab.train``
(``from rnnlab.train import Trainer, TrainConfig``).
"""

from importlib import metadata as _metadata

from rnnlab.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnlab.errors import CheckpointError, ConfigError, DataError, RnnlabError
from rnnlab.recurrent import Recurrent, Stepper, Trace, from_torch, to_torch

try:
    __version__ = _metadata.version("rnnlab")  # one version string: pyproject.toml's
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

import rnnlab.train as _trainer  # noqa: E402,F401  (the module first: the function below takes its name)
from rnnlab.api import load, train  # noqa: E402

__all__ = [
    "Cell",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "Recurrent",
    "RnnlabError",
    "Stepper",
    "Trace",
    "from_torch",
    "load",
    "to_torch",
    "train",
]
