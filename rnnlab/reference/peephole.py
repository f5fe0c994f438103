"""LSTM with peepholes in NumPy (gate order i, f, g, o; rnnlab.variants.PeepholeLSTMCell), and its BPTT.

a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          split into a_i, a_f, a_g, a_o
i = sigmoid(a_i + p_i c_{t-1})   f = sigmoid(a_f + p_f c_{t-1})   g = tanh(a_g)
c_t = f * c_{t-1} + i * g        o = sigmoid(a_o + p_o c_t)       h_t = o * tanh(c_t)
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference._common import accumulate, sigmoid, zero_grads


def forward(x: np.ndarray, state0: tuple, p: dict):
    h, c = state0
    steps, hs = [], []
    for t in range(x.shape[1]):
        a = x[:, t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        c_prev, h_prev = c, h
        i, f, g = sigmoid(a_i + p["peephole_i"] * c_prev), sigmoid(a_f + p["peephole_f"] * c_prev), np.tanh(a_g)
        c = f * c_prev + i * g
        o = sigmoid(a_o + p["peephole_o"] * c)
        h = o * np.tanh(c)
        steps.append((i, f, g, o, c, c_prev, h_prev))
        hs.append(h)
    return np.stack(hs, axis=1), (h, c), (x, steps, p)


def backward(d_hs: np.ndarray, d_final: tuple, cache) -> dict:
    x, steps, p = cache
    grads = zero_grads(p)
    d_x = np.zeros_like(x)
    d_h_next, d_c_next = d_final
    for t in reversed(range(x.shape[1])):
        i, f, g, o, c, c_prev, h_prev = steps[t]
        d_h = d_hs[:, t] + d_h_next
        tanh_c = np.tanh(c)
        d_ao = d_h * tanh_c * o * (1 - o)
        d_c = d_c_next + d_h * o * (1 - tanh_c**2) + d_ao * p["peephole_o"]  # c_t feeds h_t, o_t, c_{t+1}
        d_ai, d_af = d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f)
        d_a = np.concatenate([d_ai, d_af, d_c * i * (1 - g**2), d_ao], axis=1)
        accumulate(grads, d_a, d_a, x[:, t], h_prev)
        grads["peephole_i"] += (d_ai * c_prev).sum(0)
        grads["peephole_f"] += (d_af * c_prev).sum(0)
        grads["peephole_o"] += (d_ao * c).sum(0)
        d_x[:, t] = d_a @ p["weight_ih"]
        d_h_next = d_a @ p["weight_hh"]
        d_c_next = d_c * f + d_ai * p["peephole_i"] + d_af * p["peephole_f"]
    grads["x"] = d_x
    grads["state0"] = (d_h_next, d_c_next)
    return grads
