"""Gradient flow through time: how much of a loss at the last step reaches each earlier hidden state.

For a loss L that reads only the last hidden state h_{T-1}, backpropagation through time gives

    dL/dh_t = (dh_{t+1}/dh_t)^T ... (dh_{T-1}/dh_{T-2})^T dL/dh_{T-1}

a product of k = T-1-t Jacobians. For a vanilla RNN, dh_{t+1}/dh_t = diag(1 - h_{t+1}^2) W_hh, so
the norm shrinks or grows roughly like rate^k, with the rate set by W_hh's spectral radius and by
how saturated tanh is: below 1 the gradient vanishes exponentially, and with a radius well above 1
the dynamics turn chaotic and it explodes. An LSTM's cell state adds a path c_{t+1} = f * c_t + ...
whose Jacobian is just diag(f): with forget gates near 1, gradients travel far.

``state_gradient_norms`` measures ||dL/ds_t|| (s_t = h_t, and c_t for an LSTM) for every t by
adding a zero tensor to each state and asking autograd for the gradient with respect to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.cells import Cell, State


def state_gradient_norms(cell: Cell, x: Tensor, readout: Tensor | None = None, state: State | None = None) -> Tensor:
    """||dL/ds_t|| for t = 0..T-1, averaged over the batch, with L = readout . h_{T-1}.

    s_t is the cell's whole state after step t: h_t, and for an LSTM also c_t (the norm is taken
    over both together, since either can carry the past). x (B, T, I); readout (H,), by default a
    fixed random unit vector. Returns (T,).
    """
    batch, steps, _ = x.shape
    if readout is None:
        g = torch.Generator().manual_seed(0)
        readout = torch.randn(cell.hidden_size, generator=g, dtype=x.dtype)
        readout = readout / readout.norm()
    state = cell.initial_state(batch, dtype=x.dtype) if state is None else state
    xw = cell.project(x.transpose(0, 1))  # (T, B, G*H)
    probes = []
    for xw_t in xw.unbind(0):
        state = cell.recur(xw_t, state)
        step_probes = [torch.zeros_like(s, requires_grad=True) for s in state]
        state = tuple(s + p for s, p in zip(state, step_probes))  # s_t + 0: its gradient is dL/ds_t
        probes.append(step_probes)
    loss = (state[0] * readout).sum()
    flat = [p for step in probes for p in step]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)  # the last c_t does not reach L: None
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(flat, grads)]
    per_step = torch.stack(grads).view(steps, len(state), batch, -1)  # (T, parts, B, H)
    return per_step.pow(2).sum((1, 3)).sqrt().mean(1).detach()


@dataclass
class Fit:
    rate: float  # the factor by which ||dL/dh_t|| changes per step back in time
    steps: int  # how many steps back the fit used


def fit_rate(norms, floor: float = 1e-30, ceiling: float = 1e30) -> Fit:
    """Least-squares line through log ||dL/dh_{T-1-k}|| against k (steps back): rate = exp(slope).

    Uses the leading stretch of k where the norm is finite and inside [floor, ceiling] (a vanished
    gradient underflows to 0, an exploded one overflows).
    """
    back = np.asarray(norms, dtype=np.float64)[::-1]  # back[k] = ||dL/dh_{T-1-k}||
    usable = np.isfinite(back) & (back > floor) & (back < ceiling)
    n = int(np.argmin(usable)) if not usable.all() else len(back)
    if n < 3:
        return Fit(float("nan"), n)
    slope = np.polyfit(np.arange(n), np.log(back[:n]), 1)[0]
    return Fit(float(np.exp(slope)), n)


def spectral_radius(matrix: Tensor) -> float:
    """max |eigenvalue| of a square matrix."""
    return float(torch.linalg.eigvals(matrix.detach().double()).abs().max())


def largest_singular_value(matrix: Tensor) -> float:
    return float(torch.linalg.matrix_norm(matrix.detach().double(), ord=2))


def set_spectral_radius(weight: Tensor, radius: float) -> None:
    """Rescale a square recurrent matrix in place so that its spectral radius is ``radius``."""
    with torch.no_grad():
        weight.mul_(radius / spectral_radius(weight))
