"""rnnlab: recurrent neural networks (RNN, LSTM, GRU) on PyTorch.

from rnnlab import LSTMCell, Recurrent
rnn = Recurrent(LSTMCell, input_size=8, hidden_size=32, num_layers=2)
output, state = rnn(x)            # x (B, T, 8) -> output (B, T, 32), state (h, c) each (2, B, 32)
"""

from rnnlab.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnlab.errors import CheckpointError, ConfigError, DataError, RnnlabError
from rnnlab.recurrent import Recurrent, Stepper, Trace, from_torch, to_torch

__version__ = "0.1.0"

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
    "to_torch",
]
