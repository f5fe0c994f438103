"""Cells torch has no kernel for: the layer-normalised LSTM, the LSTM with peepholes, and zoneout
around any cell. Each has its step maths (``recur``, for the explicit path, traces and steppers)
and its hand-derived step gradient (``step_forward`` / ``step_backward``, run by rnnlab/bptt.py),
tested equal to autograd; NumPy versions are in rnnlab/reference/variants.py.

Shape legend: B batch, I input features, H hidden units; gate order i, f, g, o as in LSTMCell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab import native
from rnnlab.cells import Cell, LSTMCell, State
from rnnlab.errors import ConfigError

EPS = 1e-5  # layer norm's epsilon, as torch.nn.LayerNorm


class LayerNormLSTMCell(Cell):
    """The LSTM with layer normalisation (Ba, Kiros & Hinton 2016, eqs. 20-22), gate order i, f, g, o::

        a_t = LN(W_ih x_t; gamma_x) + b_ih + LN(W_hh h_{t-1}; gamma_h) + b_hh        (4H,)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(LN(c_t; gamma_c, beta_c))

    LN(v; gamma) = gamma * (v - mean(v)) / sqrt(var(v) + eps), over the 4H pre-activations (or the H
    cells). Normalising each part separately keeps the recurrent input at a fixed scale whatever
    W_hh's size, which steadies training; it costs a mean and a variance per step.

    Parameters: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,) (their sum is the
    paper's b), ln_ih_weight, ln_hh_weight (4H,) (gains, start at 1), ln_c_weight, ln_c_bias (H,).
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.ln_ih_weight = nn.Parameter(torch.ones(4 * hidden_size))
        self.ln_hh_weight = nn.Parameter(torch.ones(4 * hidden_size))
        self.ln_c_weight = nn.Parameter(torch.ones(hidden_size))
        self.ln_c_bias = nn.Parameter(torch.zeros(hidden_size))

    def project(self, x: Tensor) -> Tensor:
        """LN(W_ih x; gamma_x) + b_ih for any leading shape: the input's share of a_t."""
        xw = native.input_linear(x, self.weight_ih)  # (..., 4H), F.linear or its oneDNN equivalent
        return F.layer_norm(xw, (4 * self.hidden_size,), self.ln_ih_weight, self.bias_ih, EPS)

    def _pre(self, xw: Tensor, h: Tensor) -> Tensor:
        hw = F.layer_norm(F.linear(h, self.weight_hh), (4 * self.hidden_size,), self.ln_hh_weight, self.bias_hh, EPS)
        return xw + hw

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        i, f, g, o = self._pre(xw, h).chunk(4, dim=-1)
        return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)

    def recur(self, xw: Tensor, state: State) -> State:
        h, c = state
        i, f, g, o = self.gates(xw, h)
        c = f * c + i * g
        return o * torch.tanh(F.layer_norm(c, (self.hidden_size,), self.ln_c_weight, self.ln_c_bias, EPS)), c

    # the hand-written step gradient (rnnlab/bptt.py): hw = W_hh h_{t-1}, no bias (it follows the norm)
    def hh_bias(self) -> None:
        return None

    def extra_parameters(self) -> tuple[nn.Parameter, ...]:
        return self.ln_hh_weight, self.bias_hh, self.ln_c_weight, self.ln_c_bias

    def native_kernel(self) -> str:
        return "lnlstm"

    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        _, c_prev = state
        H = self.hidden_size
        # torch's fused layer norm kernels, forward here and backward in step_backward
        ln_h, mean_h, rstd_h = torch.native_layer_norm(hw, (4 * H,), self.ln_hh_weight, self.bias_hh, EPS)
        a = xw + ln_h
        s = torch.sigmoid(a)
        i, f, _, o = s.chunk(4, dim=1)
        g = torch.tanh(a[:, 2 * H : 3 * H])
        c = torch.addcmul(f * c_prev, i, g)
        ln_c, mean_c, rstd_c = torch.native_layer_norm(c, (H,), self.ln_c_weight, self.ln_c_bias, EPS)
        tanh_c = torch.tanh(ln_c)
        return (o * tanh_c, c), (s, g, c_prev, hw, mean_h, rstd_h, c, mean_c, rstd_c, tanh_c)

    def step_backward(self, cache, d_state: State):
        s, g, c_prev, hw, mean_h, rstd_h, c, mean_c, rstd_c, tanh_c = cache
        H = self.hidden_size
        i, f, _, o = s.chunk(4, dim=1)
        d_h, d_c = d_state
        d_ln_c = d_h * o * (1 - tanh_c * tanh_c)  # dL/d LN(c_t)
        d_c_norm, d_gain_c, d_bias_c = torch.ops.aten.native_layer_norm_backward(
            d_ln_c, c, (H,), mean_c, rstd_c, self.ln_c_weight, self.ln_c_bias, [True, True, True]
        )
        d_c = d_c + d_c_norm
        d_a = torch.cat([d_c * g, d_c * c_prev, d_c * i, d_h * tanh_c], dim=1)  # dL/d(i, f, g, o)
        slope = s * (1 - s)
        slope[:, 2 * H : 3 * H] = 1 - g * g
        d_a.mul_(slope)  # dL/da_t
        d_hw, d_gain_h, d_bias_h = torch.ops.aten.native_layer_norm_backward(
            d_a, hw, (4 * H,), mean_h, rstd_h, self.ln_hh_weight, self.bias_hh, [True, True, True]
        )
        return d_a, d_hw, (None, d_c * f), (d_gain_h, d_bias_h, d_gain_c, d_bias_c)


class PeepholeLSTMCell(Cell):
    """The LSTM with peephole connections (Gers, Schraudolph & Schmidhuber 2002): the gates also see
    the cell state, i and f the previous one, o the new one (p_i, p_f, p_o are vectors: each cell
    looks at itself only). Gate order i, f, g, o::

        i_t = sigmoid(W_ii x_t + W_hi h_{t-1} + b_i + p_i * c_{t-1})
        f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f + p_f * c_{t-1})
        g_t = tanh   (W_ig x_t + W_hg h_{t-1} + b_g)
        c_t = f_t * c_{t-1} + i_t * g_t
        o_t = sigmoid(W_io x_t + W_ho h_{t-1} + b_o + p_o * c_t)
        h_t = o_t * tanh(c_t)

    Parameters: LSTMCell's four, and peephole_i, peephole_f, peephole_o (H,).
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        bound = 1.0 / hidden_size**0.5
        self.peephole_i = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        self.peephole_f = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        self.peephole_o = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    def _step(self, xw: Tensor, state: State):
        h, c_prev = state
        a_i, a_f, a_g, a_o = (xw + F.linear(h, self.weight_hh, self.bias_hh)).chunk(4, dim=-1)
        i, f = torch.sigmoid(a_i + self.peephole_i * c_prev), torch.sigmoid(a_f + self.peephole_f * c_prev)
        g = torch.tanh(a_g)
        c = f * c_prev + i * g
        o = torch.sigmoid(a_o + self.peephole_o * c)
        return i, f, g, o, c

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        raise ValueError("a peephole cell's gates need c as well as h: use gates_of")

    def gates_of(self, xw: Tensor, previous: State) -> tuple[Tensor, ...]:
        """(i, f, g, o) of the step from state ``previous``: what ``Recurrent.trace`` records."""
        return self._step(xw, previous)[:4]

    def recur(self, xw: Tensor, state: State) -> State:
        _, _, _, o, c = self._step(xw, state)
        return o * torch.tanh(c), c

    def extra_parameters(self) -> tuple[nn.Parameter, ...]:
        return self.peephole_i, self.peephole_f, self.peephole_o

    def native_kernel(self) -> str:
        return "peephole"

    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        _, c_prev = state
        a_i, a_f, a_g, a_o = (xw + hw).chunk(4, dim=1)
        i = torch.sigmoid(torch.addcmul(a_i, self.peephole_i, c_prev))
        f = torch.sigmoid(torch.addcmul(a_f, self.peephole_f, c_prev))
        g = torch.tanh(a_g)
        c = torch.addcmul(f * c_prev, i, g)
        o = torch.sigmoid(torch.addcmul(a_o, self.peephole_o, c))
        tanh_c = torch.tanh(c)
        return (o * tanh_c, c), (i, f, g, o, c_prev, c, tanh_c)

    def step_backward(self, cache, d_state: State):
        i, f, g, o, c_prev, c, tanh_c = cache
        d_h, d_c = d_state
        d_ao = d_h * tanh_c * o * (1 - o)
        d_c = d_c + d_h * o * (1 - tanh_c * tanh_c) + d_ao * self.peephole_o  # c_t feeds h_t, o_t and c_{t+1}
        d_ai = d_c * g * i * (1 - i)
        d_af = d_c * c_prev * f * (1 - f)
        d_a = torch.cat([d_ai, d_af, d_c * i * (1 - g * g), d_ao], dim=1)
        d_c_prev = d_c * f + d_ai * self.peephole_i + d_af * self.peephole_f
        extra = ((d_ai * c_prev).sum(0), (d_af * c_prev).sum(0), (d_ao * c).sum(0))
        return d_a, d_a, (None, d_c_prev), extra


class ZoneoutCell(nn.Module):
    """Zoneout (Krueger et al. 2017) around any cell: in training each unit of each state keeps its
    previous value with probability p instead of taking the new one,

        s_t = m * s_{t-1} + (1 - m) * cell(x_t, s_{t-1}),     m ~ Bernoulli(p), drawn per unit and step

    (a dropout that preserves the state, so gradients and information flow back through the kept
    units unchanged); in evaluation the expectation, s_t = p s_{t-1} + (1 - p) cell(x_t, s_{t-1}).
    ``probabilities`` gives p per state (h, c). The paper's best character-level setting for LSTMs
    was 0.05 on h and 0.5 on c, the defaults of ``zoneout_lstm``.
    """

    def __init__(self, cell: nn.Module, probabilities: tuple[float, ...]) -> None:
        super().__init__()
        if len(probabilities) != len(cell.state_names) or not all(0 <= p < 1 for p in probabilities):
            raise ConfigError(f"zoneout needs one probability in [0, 1) per state {cell.state_names}, got {probabilities}")
        self.cell = cell
        self.probabilities = tuple(probabilities)
        self.state_names, self.gate_names, self.num_gates = cell.state_names, cell.gate_names, cell.num_gates
        self.input_size, self.hidden_size = cell.input_size, cell.hidden_size

    def extra_repr(self) -> str:
        return f"probabilities={self.probabilities}"

    @property
    def weight_ih(self) -> Tensor:
        return self.cell.weight_ih

    @property
    def weight_hh(self) -> Tensor:
        return self.cell.weight_hh

    def initial_state(self, batch_size: int, **kwargs) -> State:
        return self.cell.initial_state(batch_size, **kwargs)

    def project(self, x: Tensor) -> Tensor:
        return self.cell.project(x)

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        return self.cell.gates(xw, h)

    def fused_kernel(self):
        return None

    def _keep(self, like: Tensor, p: float) -> Tensor | float:
        """The share of the old state kept: a 0/1 mask in training, p in evaluation."""
        return torch.bernoulli(torch.full_like(like, p)) if self.training else p

    def _mix(self, new: State, old: State) -> tuple[State, list]:
        """s_t = keep * s_{t-1} + (1 - keep) * new, and the keeps (masks, or p in evaluation)."""
        keeps = [self._keep(s, p) for s, p in zip(old, self.probabilities)]
        return tuple(torch.lerp(n, s, k) for n, s, k in zip(new, old, keeps)), keeps  # lerp: exactly s or n at 1, 0

    def recur(self, xw: Tensor, state: State) -> State:
        return self._mix(self.cell.recur(xw, state), state)[0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        new = self.recur(self.project(x), state)
        return new[0], new

    # the hand-written step gradient: the wrapped cell's, then the mixing
    def hh_bias(self):
        return self.cell.hh_bias()

    def extra_parameters(self) -> tuple[nn.Parameter, ...]:
        return self.cell.extra_parameters()

    def step_forward(self, xw: Tensor, hw: Tensor, state: State):
        new, cache = self.cell.step_forward(xw, hw, state)
        keeps = [self._keep(s, p) for s, p in zip(state, self.probabilities)]
        mixed = tuple(
            torch.lerp(n, s, k) if isinstance(k, Tensor) else n + k * (s - n) for n, s, k in zip(new, state, keeps)
        )
        return mixed, (cache, keeps)

    def step_backward(self, cache, d_state: State):
        inner, keeps = cache
        d_new = tuple(d * (1 - k) for d, k in zip(d_state, keeps))
        d_xw, d_hw, d_prev, extra = self.cell.step_backward(inner, d_new)
        d_prev = tuple(d * k if p is None else p + d * k for d, k, p in zip(d_state, keeps, d_prev))
        return d_xw, d_hw, d_prev, extra


def zoneout_lstm(input_size: int, hidden_size: int) -> ZoneoutCell:
    """An LSTMCell with zoneout 0.05 on h and 0.5 on c (Krueger et al. 2017's character-level setting)."""
    return ZoneoutCell(LSTMCell(input_size, hidden_size), (0.05, 0.5))


def zoneout_gru(input_size: int, hidden_size: int) -> ZoneoutCell:
    """A GRUCell with zoneout 0.1 on h."""
    from rnnlab.cells import GRUCell

    return ZoneoutCell(GRUCell(input_size, hidden_size), (0.1,))
