"""Minimal RNNs (Feng et al. 2024, "Were RNNs all we needed?") and the scans that run them in parallel.

The lectures say an RNN "cannot be parallelised over time": h_t needs h_{t-1}. That holds for the
vanilla RNN, the LSTM and the GRU, whose gates read h_{t-1}. Take h_{t-1} out of the gates and the
recurrence becomes *linear* in h, and a linear recurrence can be computed for all t at once:

    minGRU    z_t = sigmoid(W_z x_t + b_z)      h~_t = g(W_h x_t + b_h)
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM   f_t = sigmoid(W_f x_t + b_f)      i_t = sigmoid(W_i x_t + b_i)      h~_t = g(W_h x_t + b_h)
              h_t = f'_t * h_{t-1} + i'_t * h~_t,    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)

    g(v) = v + 1/2 for v >= 0, sigmoid(v) below: positive, so that the scan can work with logarithms.

Both are h_t = a_t * h_{t-1} + b_t with a_t in (0, 1) and b_t > 0 known for every t from x alone.
Unrolled, h_t = A_t h_0 + sum_{k<=t} (A_t / A_k) b_k with A_t = a_1 ... a_t, and in logarithms

    log h_t = a*_t + logcumsumexp_k(log b_k - a*_k),   a*_t = cumsum_k log a_k    (Heinsen 2023)

two cumulative operations over T, each O(log T) deep on parallel hardware. Three ways to run them,
equal in value (tests, 1e-10 in float64):

    step        h = a * h + b, one step at a time with an O(1) state (generation; ``cell.recur``)
    sequential  the same loop over all T steps of elementwise operations (``scan_sequential``)
    parallel    the log-space scan above, in chunks of ``CHUNK`` steps so that float32 keeps its
                precision over long sequences (``scan_parallel``)

``linear_scan`` picks between the last two by device and length (``prefer_parallel``, measured by
benchmarks/minimal_rnn.py: on this CPU the sequential loop, with its gradient written out, wins).
The cells keep rnnlab's cell contract (``project``, ``gates``, ``recur``), so ``Recurrent`` runs
them with layers, directions, dropout, lengths, ``trace`` and ``stepper``, and the tasks take them
as ``--cell mingru`` / ``--cell minlstm``. They have no hidden-to-hidden weights.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab import native
from rnnlab.errors import ConfigError

State = tuple[Tensor, ...]
CHUNK = 32  # steps per log-space block: keeps |a*| small enough for float32 to resolve h to ~1e-5


def g(v: Tensor) -> Tensor:
    """The paper's positive activation for the candidate: v + 1/2 for v >= 0, sigmoid(v) below."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """log g(v), computed without forming g: log(v + 1/2) for v >= 0, -softplus(-v) below."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


# ---------------------------------------------------------------------- scans


def scan_sequential(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + b_t one step after the other: a, b (B, T, H), h0 (B, H) -> h (B, T, H).

    One autograd Function with its gradient written out (one fused multiply-add per step each way):
    dL/dh_t = dL/dout_t + a_{t+1} dL/dh_{t+1},  dL/db_t = dL/dh_t,  dL/da_t = dL/dh_t h_{t-1}.
    On a CPU the loop runs in C++ (rnnlab/native.py: ``scan``), elsewhere as torch operations.
    """
    if native.scan_handles(a):
        return native.scan(a, b, h0)
    return _SequentialScan.apply(a, b, h0)


class _SequentialScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        a_t, b_t = a.transpose(0, 1).contiguous(), b.transpose(0, 1).contiguous()  # (T, B, H)
        out = torch.empty_like(b_t)
        h = h0
        for t in range(a_t.shape[0]):
            h = torch.addcmul(b_t[t], a_t[t], h, out=out[t])
        ctx.save_for_backward(a_t, out, h0)
        return out.transpose(0, 1).contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):
        a_t, out, h0 = ctx.saved_tensors
        d = d_out.transpose(0, 1).contiguous()  # (T, B, H)
        d_b = torch.empty_like(d)  # dL/dh_t, which is also dL/db_t
        steps = d.shape[0]
        d_b[steps - 1] = d[steps - 1]
        for t in range(steps - 2, -1, -1):
            torch.addcmul(d[t], a_t[t + 1], d_b[t + 1], out=d_b[t])
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])  # (T, B, H)
        d_a = d_b * h_prev
        return d_a.transpose(0, 1), d_b.transpose(0, 1), a_t[0] * d_b[0]


def scan_parallel(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = CHUNK) -> Tensor:
    """The same recurrence in log space: within each block of ``chunk`` steps,

        h_t = exp(a*_t) h_start + exp(a*_t + logcumsumexp(log b - a*)_t),   a* = cumsum(log a) from the block start

    and the blocks follow each other (T / chunk of them). Any sign of h0 works: it is never logged.
    log_a, log_b (B, T, H), h0 (B, H) -> h (B, T, H).
    """
    outs, h = [], h0
    for la, lb in zip(log_a.split(chunk, dim=1), log_b.split(chunk, dim=1)):
        outs.append(_block(la, lb, h))
        h = outs[-1][:, -1]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def _block(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """One log-space block: (B, t, H) coefficients and the state before it -> h (B, t, H)."""
    a_star = log_a.cumsum(dim=1)
    return a_star.exp() * h0.unsqueeze(1) + (a_star + torch.logcumsumexp(log_b - a_star, dim=1)).exp()


def prefer_parallel(steps: int, device: torch.device) -> bool:
    """Whether the log-space scan beats the sequential loop: on a GPU from a few steps on (a handful
    of kernels against T launches each way); on a CPU never (``benchmarks/minimal_rnn.py``: the
    sequential loop, one fused multiply-add per step, beat the parallel scan's exponentials and
    logarithms at every length measured, 1 to 1,024)."""
    return device.type != "cpu" and steps >= 8


def linear_scan(cell, xw: Tensor, h0: Tensor, mask: Tensor | None = None, parallel: bool | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for all t, with (a_t, b_t) from a minimal cell's projected input xw
    (B, T, G*H); ``mask`` (B, T, 1) False past a sequence's end, where a = 1 and b = 0 keep the state.
    ``parallel`` None chooses by device and length.

    Under ``torch.export`` (ONNX export) the length is symbolic: the scan is one log-space block, a
    graph without a loop over time (float32 precision then falls with the length, see ``CHUNK``)."""
    exporting = torch.compiler.is_exporting()
    if parallel is None:
        parallel = exporting or prefer_parallel(xw.shape[1], xw.device)
    if parallel:
        log_a, log_b = cell.log_coefficients(xw)
        if mask is not None:
            log_a, log_b = log_a.masked_fill(~mask, 0.0), log_b.masked_fill(~mask, -math.inf)
        return _block(log_a, log_b, h0) if exporting else scan_parallel(log_a, log_b, h0)
    kind = getattr(cell, "native_kind", None)
    if kind is not None and native.scan_handles(xw) and h0.dtype == xw.dtype:  # coefficients fused into the C++ loop
        return native.minimal_scan(kind == "minlstm", xw, h0, mask)
    a, b = cell.coefficients(xw)
    if mask is not None:
        a, b = a.masked_fill(~mask, 1.0), b.masked_fill(~mask, 0.0)
    return scan_sequential(a, b, h0)


# ---------------------------------------------------------------------- cells


class MinimalCell(nn.Module):
    """A minimal RNN cell: gates from x_t alone, h_t = a_t * h_{t-1} + b_t.

    Parameters: weight_ih (G*H, I), bias_ih (G*H,) (no weight_hh: nothing reads h_{t-1} but the
    recurrence itself). State: (h,). ``coefficients(xw)`` gives (a, b) and ``log_coefficients(xw)``
    (log a, log b), each (..., H), for any leading shape.
    """

    num_gates: ClassVar[int]
    gate_names: ClassVar[tuple[str, ...]]
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ConfigError(f"cell sizes must be positive, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(self.num_gates * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(self.num_gates * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.Linear's initialisation: U(-1/sqrt(I), 1/sqrt(I))."""
        bound = 1.0 / math.sqrt(self.input_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> State:
        like = self.weight_ih
        return (torch.zeros(batch_size, self.hidden_size, dtype=dtype or like.dtype, device=device or like.device),)

    def project(self, x: Tensor) -> Tensor:
        """W_ih x + b_ih: (..., I) -> (..., G*H), every gate's input at once (oneDNN's GEMM on a CPU)."""
        return native.input_linear(x, self.weight_ih, self.bias_ih)

    def coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """(a_t, b_t), each (..., H), from the projected input."""
        raise NotImplementedError

    def log_coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """(log a_t, log b_t), computed without forming a and b (what the log-space scan needs)."""
        raise NotImplementedError

    def recur(self, xw: Tensor, state: State) -> State:
        """One step: h_t = a_t h_{t-1} + b_t."""
        a, b = self.coefficients(xw)
        return (torch.addcmul(b, a, state[0]),)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        new = self.recur(self.project(x), state)
        return new[0], new

    def fused_kernel(self):
        return None


class MinGRUCell(MinimalCell):
    """minGRU: z_t = sigmoid(W_z x_t + b_z), h~_t = g(W_h x_t + b_h), h_t = (1 - z_t) h_{t-1} + z_t h~_t.
    weight_ih rows: z, then h~ (2H, I)."""

    num_gates = 2
    gate_names = ("z",)
    native_kind = "mingru"  # the fused scan of rnnlab/native.py (``minimal_scan``)

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        k, _ = xw.chunk(2, dim=-1)
        return (torch.sigmoid(k),)

    def coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xw.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return 1 - z, z * g(v)

    def log_coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xw.chunk(2, dim=-1)
        return -F.softplus(k), -F.softplus(-k) + log_g(v)  # log(1 - z), log(z h~)


class MinLSTMCell(MinimalCell):
    """minLSTM: f_t, i_t = sigmoid(W_f x_t + b_f), sigmoid(W_i x_t + b_i), normalised to sum to one,
    f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t); h~_t = g(W_h x_t + b_h); h_t = f'_t h_{t-1} + i'_t h~_t.
    weight_ih rows: f, i, h~ (3H, I)."""

    num_gates = 3
    gate_names = ("f", "i")
    native_kind = "minlstm"

    def gates(self, xw: Tensor, h: Tensor) -> tuple[Tensor, ...]:
        kf, ki, _ = xw.chunk(3, dim=-1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        return f / (f + i), i / (f + i)

    def coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        f, i = self.gates(xw, None)
        return f, i * g(xw[..., 2 * self.hidden_size :])

    def log_coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, v = xw.chunk(3, dim=-1)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + log_g(v)  # log f', log(i' h~)
