"""Vanilla RNN in NumPy: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), and its BPTT."""

from __future__ import annotations

import numpy as np

from rnnlab.reference._common import accumulate, zero_grads


def forward(x: np.ndarray, state0: tuple, p: dict):
    (h,) = state0
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"])
        hs.append(h)
    hs = np.stack(hs, axis=1)  # (B, T, H)
    return hs, (h,), (x, state0[0], hs, p)


def backward(d_hs: np.ndarray, d_final: tuple, cache) -> dict:
    x, h0, hs, p = cache
    grads = zero_grads(p)
    d_x = np.zeros_like(x)
    (d_h_next,) = d_final  # dL/dh_T from the final state
    for t in reversed(range(x.shape[1])):
        d_h = d_hs[:, t] + d_h_next  # from the output at t and from step t+1
        d_a = d_h * (1.0 - hs[:, t] ** 2)  # through tanh: d tanh(a) = 1 - tanh(a)^2
        h_prev = hs[:, t - 1] if t > 0 else h0
        accumulate(grads, d_a, d_a, x[:, t], h_prev)
        d_x[:, t] = d_a @ p["weight_ih"]
        d_h_next = d_a @ p["weight_hh"]  # what flows back to h_{t-1}
    grads["x"] = d_x
    grads["state0"] = (d_h_next,)
    return grads
