"""Hand-written backpropagation through time: the NumPy oracle's algorithm (rnnlab/reference) at torch speed.

Run under autograd, a Python loop over time records every small operation of every step and
replays them backward one at a time (about twenty graph nodes per LSTM step, each gradient of
W_hh formed step by step). ``recurrence`` is one ``torch.autograd.Function`` for a whole layer:

    forward    xw = W_ih x + b_ih is already projected for all steps (one GEMM, outside, under
               autograd). Per step, hw_t = W_hh h_{t-1} + b_hh (one GEMM) and the cell's gate maths
               (``cell.step_forward``), with no graph; what backward needs is kept.
    backward   walks t = T-1 ... 0 once. The cell's hand-derived step gradient (``cell.step_backward``)
               gives dL/dxw_t and dL/dhw_t; dL/dh_{t-1} = dL/dhw_t W_hh (one GEMM per step) plus any
               direct path (c_{t-1} through f, h_{t-1} through z). After the loop, with every step's
               dL/dhw_t and h_{t-1} stacked: dL/dW_hh = sum_t dL/dhw_t^T h_{t-1} as ONE GEMM over all
               steps, dL/db_hh one sum; dL/dxw returns to autograd, whose linear backward forms
               dL/dW_ih and dL/dx as one GEMM each.

A cell takes this path by implementing (see ``LSTMCell`` for the pattern)::

    hh_bias()                        the bias added inside hw_t's GEMM (bias_hh), or None
    extra_parameters()               parameters its step uses besides W_hh and that bias (gains, peepholes)
    step_forward(xw_t, hw_t, state)  -> (new state, cache)
    step_backward(cache, d_state)    -> (d_xw_t, d_hw_t, d_prev, d_extra)
                                        d_prev: per state tensor, the gradient reaching state_{t-1}
                                        other than through hw_t (None for none); d_extra: one gradient
                                        per extra parameter (this step's share)

Shapes: xw (T, B, G*H) time-major, state tuple of (B, H), outputs (T, B, H); ``mask`` (T, B, 1)
True at real steps: elsewhere the state is carried unchanged and the output is zero. Tests hold
values and every gradient equal to autograd through ``cell.recur`` (float64, 1e-10).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab import native
from rnnlab.cells import Cell, State


def supports(cell) -> bool:
    """Whether ``cell`` has a hand-written step gradient."""
    return hasattr(cell, "step_backward")


def layer(cell, seq: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """``recurrence(cell, cell.project(seq), state, mask)``: a whole layer from its input seq (T, B, I).
    Through the fused kernels' whole-layer Function (rnnlab/native.py: ``layer``) where they run
    this cell and its projection is the plain W_ih x + b_ih."""
    if type(cell).project is Cell.project and native.handles(cell, seq, state):
        return native.layer(cell, seq, state, mask)
    return recurrence(cell, cell.project(seq), state, mask)


def recurrence(cell, xw: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """Run ``cell`` over time-major xw (T, B, G*H) from ``state``: (outputs (T, B, H), final state).

    Through the fused C++ kernels of rnnlab/native.py where they run this cell (CPU, float32/64),
    else through ``python_recurrence``: the same algorithm, the same results."""
    if native.handles(cell, xw, state):
        return native.recurrence(cell, xw, state, mask)
    return python_recurrence(cell, xw, state, mask)


def python_recurrence(cell, xw: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """``recurrence`` with every step's maths as torch operations from Python (any cell, any device)."""
    bias = cell.hh_bias()
    params = (cell.weight_hh, *(() if bias is None else (bias,)), *cell.extra_parameters())
    n = len(state)
    result = _Recurrence.apply(cell, mask, n, bias is not None, xw, *state, *params)
    return result[0], tuple(result[1:])


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cell, mask, n_state: int, has_bias: bool, xw: Tensor, *tensors: Tensor):
        state, weight_hh = tuple(tensors[:n_state]), tensors[n_state]
        bias = tensors[n_state + 1] if has_bias else None
        w_t = weight_hh.t()
        steps = xw.shape[0]
        outputs, caches, h_prev = [], [], []
        for t, xw_t in enumerate(xw.unbind(0)):
            h = state[0]
            h_prev.append(h)
            hw = torch.addmm(bias, h, w_t) if bias is not None else h @ w_t  # (B, G*H)
            new, cache = cell.step_forward(xw_t, hw, state)
            if mask is not None:
                m = mask[t]
                new = tuple(torch.where(m, a, b) for a, b in zip(new, state))
                outputs.append(new[0] * m)
            else:
                outputs.append(new[0])
            caches.append(cache)
            state = new
        ctx.cell, ctx.mask, ctx.n_state, ctx.has_bias, ctx.caches = cell, mask, n_state, has_bias, caches
        ctx.n_extra = len(tensors) - n_state - 1 - int(has_bias)
        ctx.save_for_backward(weight_hh, torch.stack(h_prev) if steps else xw.new_zeros(0))
        return (torch.stack(outputs), *state)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_outputs: Tensor, *d_final: Tensor):
        cell, mask, caches = ctx.cell, ctx.mask, ctx.caches
        weight_hh, h_prev = ctx.saved_tensors
        steps = len(caches)
        d_state = [d if d is not None else torch.zeros_like(h_prev[0]) for d in d_final]
        d_xw: list[Tensor] = []  # dL/dxw_t, last step first
        d_hw: list[Tensor] = []  # dL/dhw_t where it differs from dL/dxw_t (the GRU's candidate sees r * W_hn h)
        d_extra: list[list[Tensor]] = [[] for _ in range(ctx.n_extra)]
        d_outputs = d_outputs.unbind(0)
        for t in range(steps - 1, -1, -1):
            if mask is None:
                d_state[0] = d_state[0] + d_outputs[t]  # the output is h_t
                d_new, d_kept = d_state, None
            else:  # state_t = where(m, new, state_{t-1}); output_t = h_t * m
                m = mask[t]
                d_kept = [d * ~m for d in d_state]  # at padding the state passes through unchanged
                d_state[0] = d_state[0] + d_outputs[t]
                d_new = [d * m for d in d_state]
            d_xw_t, d_hw_t, d_prev, d_step_extra = cell.step_backward(caches[t], d_new)
            d_xw.append(d_xw_t)
            if d_hw_t is not d_xw_t:
                d_hw.append(d_hw_t)
            d_h = d_hw_t @ weight_hh  # (B, H): dL/dh_{t-1} through hw_t
            d_state = [
                (d_h if d is None else d_h + d) if k == 0 else (torch.zeros_like(d_h) if d is None else d)
                for k, d in enumerate(d_prev)
            ]
            if d_kept is not None:
                d_state = [a + b for a, b in zip(d_state, d_kept)]
            for bucket, g in zip(d_extra, d_step_extra):
                bucket.append(g)
        d_xw_all = torch.stack(d_xw[::-1])  # (T, B, G*H)
        d_hw_all = torch.stack(d_hw[::-1]) if d_hw else d_xw_all
        flat_d_hw = d_hw_all.reshape(-1, d_hw_all.shape[-1])  # (T*B, G*H)
        d_weight_hh = flat_d_hw.t() @ h_prev.reshape(-1, h_prev.shape[-1])  # ONE GEMM over all steps
        grads = [d_weight_hh]
        if ctx.has_bias:
            grads.append(flat_d_hw.sum(0))
        grads += [torch.stack(bucket).sum(0) for bucket in d_extra]
        return (None, None, None, None, d_xw_all, *d_state, *grads)
