"""Recurrent cells: the maths of one time step, and nothing else.

Shape legend: B batch, I input features, H hidden units, G gates per cell (1 RNN, 4 LSTM, 3 GRU).

The cell contract
-----------------
A cell owns four parameters laid out exactly as torch.nn's, so weights move between rnnlab and
``torch.nn.RNN/LSTM/GRU`` (and their ``*Cell`` versions) without reordering::

    weight_ih  (G*H, I)    input-to-hidden weights, gates stacked in torch's order
    weight_hh  (G*H, H)    hidden-to-hidden weights, same order
    bias_ih    (G*H,)
    bias_hh    (G*H,)

and splits a step into the half that does not depend on the past and the half that does::

    project(x)           x (..., I)            -> xw (..., G*H) = W_ih x + b_ih
                         (for a whole sequence at once: one matrix product instead of T)
    gates(xw, h)         xw (..., G*H), h (..., H) -> the gate activations, each (..., H),
                         in ``gate_names`` order; works for any leading shape, so a recorded
                         sequence of states gives every step's gates in one call
    recur(xw, state)     one step given the projected input: state_{t-1} -> state_t
    forward(x, state)    project + recur: (x_t, state_{t-1}) -> (h_t, state_t)

A state is always a tuple of (B, H) tensors named by ``state_names``: ``(h,)`` for RNN and GRU,
``(h, c)`` for LSTM. ``state[0]`` is the output h_t.

``fused_kernel()`` names the torch op that runs a whole stack of such cells over time
(``torch.lstm``...), or None for a cell torch has no kernel for; ``Recurrent`` uses it when it can.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import ConfigError

State = tuple[Tensor, ...]


class Cell(nn.Module):
    """Base class holding the parameters every cell shares; see the module docstring for the contract."""

    num_gates: ClassVar[int]
    gate_names: ClassVar[tuple[str, ...]]
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ConfigError(f"cell sizes must be positive, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def initial_state(
        self, batch_size: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> State:
        """Zeros for every state tensor: a tuple of (B, H)."""
        like = self.weight_hh
        return tuple(
            torch.zeros(batch_size, self.hidden_size, dtype=dtype or like.dtype, device=device or like.device)
            for _ in self.state_names
        )

    def project(self, x: Tensor) -> Tensor:
        """W_ih x + b_ih for any leading shape: (..., I) -> (..., G*H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def recur(self, xw: Tensor, state: State) -> State:
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step: x (B, I), state tuple of (B, H) -> (h_t (B, H), new state)."""
        if state is None:
            state = self.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        new_state = self.recur(self.project(x), state)
        return new_state[0], new_state

    def fused_kernel(self) -> Callable | None:
        """The torch op running stacks of this cell over time, or None (explicit loop only)."""
        return None

    def hh_bias(self) -> Tensor | None:
        """The bias added inside the hidden product hw = W_hh h_{t-1} + b_hh of the hand-written path."""
        return self.bias_hh

    def extra_parameters(self) -> tuple[nn.Parameter, ...]:
        """Parameters a cell's step uses besides the four torch.nn ones (none here)."""
        return ()

    def native_kernel(self) -> str | None:
        """The fused C++ kernel of rnnlab/native.py that runs this cell's hand-written BPTT, or None."""
        return None


class RNNCell(Cell):
    """Vanilla (Elman) RNN cell, as ``torch.nn.RNNCell``::

        h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)        act = tanh (default) or relu

    Parameters: weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,). State: (h,).
    It has no gates; ``gates`` returns an empty tuple.
    """

    num_gates = 1
    gate_names = ()

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        return ()

    def recur(self, xw: Tensor, state: State) -> State:
        pre = xw + F.linear(state[0], self.weight_hh, self.bias_hh)  # (B, H)
        return (torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre),)

    # the hand-written step gradient (rnnlab/bptt.py): hw = W_hh h_{t-1} + b_hh
    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        h = torch.tanh(xw + hw) if self.nonlinearity == "tanh" else torch.relu(xw + hw)
        return (h,), h

    def step_backward(self, h: Tensor, d_state: State):
        (d_h,) = d_state
        d_pre = d_h * (1 - h * h) if self.nonlinearity == "tanh" else d_h * (h > 0)
        return d_pre, d_pre, (None,), ()

    def fused_kernel(self) -> Callable:
        return torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu

    def native_kernel(self) -> str:
        return "rnn_tanh" if self.nonlinearity == "tanh" else "rnn_relu"


class LSTMCell(Cell):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997, with the forget gate of
    Gers et al. 2000), exactly as ``torch.nn.LSTMCell``; gate order i, f, g, o::

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     input gate
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     forget gate
        g_t = tanh   (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate cell
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     output gate
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    Parameters: weight_ih (4H, I) = [W_ii; W_if; W_ig; W_io], weight_hh (4H, H), bias_ih (4H,),
    bias_hh (4H,). State: (h, c), each (B, H).
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        pre = xw + F.linear(h, self.weight_hh, self.bias_hh)  # (..., 4H)
        i, f, g, o = pre.chunk(4, dim=-1)  # each (..., H)
        return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)

    def recur(self, xw: Tensor, state: State) -> State:
        h, c = state
        i, f, g, o = self.gates(xw, h)
        c = f * c + i * g
        return o * torch.tanh(c), c

    # the hand-written step gradient (rnnlab/bptt.py): hw = W_hh h_{t-1} + b_hh
    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        _, c_prev = state
        a = xw + hw  # (B, 4H)
        s = torch.sigmoid(a)  # i, f, o are its slices (the g slice is not used)
        i, f, _, o = s.chunk(4, dim=1)
        g = torch.tanh(a[:, 2 * self.hidden_size : 3 * self.hidden_size])
        c = torch.addcmul(f * c_prev, i, g)
        tanh_c = torch.tanh(c)
        return (o * tanh_c, c), (s, g, c_prev, tanh_c)

    def step_backward(self, cache, d_state: State):
        s, g, c_prev, tanh_c = cache
        i, f, _, o = s.chunk(4, dim=1)
        d_h, d_c = d_state
        d_c = torch.addcmul(d_c, d_h * o, 1 - tanh_c * tanh_c)  # c_t feeds h_t and c_{t+1}
        d_a = torch.cat(
            [d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f), d_c * i * (1 - g * g), d_h * tanh_c * o * (1 - o)], dim=1
        )
        return d_a, d_a, (None, d_c * f), ()  # xw and hw enter as a sum: one gradient for both

    def fused_kernel(self) -> Callable:
        return torch.lstm

    def native_kernel(self) -> str:
        return "lstm"


class GRUCell(Cell):
    """Gated recurrent unit (Cho et al. 2014, the variant cuDNN and torch.nn.GRUCell use, with the
    reset gate applied after the hidden-to-hidden product); gate order r, z, n::

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
        n_t = tanh   (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))  candidate
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Parameters: weight_ih (3H, I) = [W_ir; W_iz; W_in], weight_hh (3H, H), bias_ih (3H,),
    bias_hh (3H,). State: (h,).
    """

    num_gates = 3
    gate_names = ("r", "z", "n")

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        hw = F.linear(h, self.weight_hh, self.bias_hh)  # (..., 3H)
        x_r, x_z, x_n = xw.chunk(3, dim=-1)  # each (..., H)
        h_r, h_z, h_n = hw.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return r, z, n

    def recur(self, xw: Tensor, state: State) -> State:
        (h,) = state
        _, z, n = self.gates(xw, h)
        return (n + z * (h - n),)  # = (1 - z) * n + z * h

    # the hand-written step gradient (rnnlab/bptt.py): hw = W_hh h_{t-1} + b_hh
    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        (h_prev,) = state
        H = self.hidden_size
        rz = torch.sigmoid(xw[:, : 2 * H] + hw[:, : 2 * H])  # (B, 2H): r, z
        r, z = rz[:, :H], rz[:, H:]
        h_n = hw[:, 2 * H :]
        n = torch.tanh(torch.addcmul(xw[:, 2 * H :], r, h_n))
        return (torch.addcmul(n, z, h_prev - n),), (rz, n, h_n, h_prev)

    def step_backward(self, cache, d_state: State):
        rz, n, h_n, h_prev = cache
        H = self.hidden_size
        r, z = rz[:, :H], rz[:, H:]
        (d_h,) = d_state
        d_an = d_h * (1 - z) * (1 - n * n)  # through n = tanh(...)
        d_arz = torch.cat([d_an * h_n, d_h * (h_prev - n)], dim=1) * rz * (1 - rz)  # through the sigmoids
        d_xw = torch.cat([d_arz, d_an], dim=1)
        d_hw = torch.cat([d_arz, d_an * r], dim=1)  # r multiplies W_hn h + b_hn
        return d_xw, d_hw, (d_h * z,), ()

    def fused_kernel(self) -> Callable:
        return torch.gru

    def native_kernel(self) -> str:
        return "gru"


def bias_to_remember(cell: Cell, bias: float = 3.0) -> None:
    """Start a gated cell remembering: set the bias of the gate that keeps the old state.

    LSTM: the forget gate, f = sigmoid(... + bias) (Gers et al. 2000; Jozefowicz et al. 2015 use 1).
    GRU: the update gate, z = sigmoid(... + bias), which weighs h_{t-1} in h_t = (1 - z) n + z h_{t-1}.
    With bias 3 the gate starts near sigmoid(3) = 0.95, so an untrained cell keeps 0.95^k of a signal
    after k steps instead of 0.5^k, and the gradient that could teach it to remember reaches back
    that far. (A vanilla RNN has no such gate: it is left unchanged.)
    Torch's initialisation, which rnnlab keeps by default, draws all biases around 0.
    """
    if isinstance(cell, (LSTMCell, GRUCell)):
        h = cell.hidden_size
        gate = slice(h, 2 * h)  # f in i, f, g, o; z in r, z, n
        with torch.no_grad():
            cell.bias_ih[gate] = bias
            cell.bias_hh[gate] = 0.0


from rnnlab.scan import MinGRUCell, MinLSTMCell  # noqa: E402  (minimal RNNs: rnnlab/scan.py)
from rnnlab.variants import LayerNormLSTMCell, PeepholeLSTMCell, zoneout_gru, zoneout_lstm  # noqa: E402

CELLS: dict[str, Callable[[int, int], Cell]] = {
    "rnn": RNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "mingru": MinGRUCell,  # type: ignore[dict-item]  (same contract, no weight_hh)
    "minlstm": MinLSTMCell,  # type: ignore[dict-item]
    "lnlstm": LayerNormLSTMCell,
    "peephole": PeepholeLSTMCell,
    "zoneout-lstm": zoneout_lstm,  # type: ignore[dict-item]  (a wrapper with the cell contract)
    "zoneout-gru": zoneout_gru,  # type: ignore[dict-item]
}
CellName = Literal[
    "lstm", "gru", "rnn", "mingru", "minlstm", "lnlstm", "peephole", "zoneout-lstm", "zoneout-gru"
]  # the names configs and the command line use


def cell_class(name: str) -> Callable[[int, int], Cell]:
    """The cell class (or factory) for a name used in configs and on the command line (``CELLS``)."""
    try:
        return CELLS[name]
    except KeyError:
        raise ConfigError(f"unknown cell {name!r}; expected one of {', '.join(CELLS)}") from None
