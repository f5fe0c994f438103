"""LSTM in NumPy (gate order i, f, g, o, as torch.nn.LSTM), and its BPTT.

a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          split into a_i, a_f, a_g, a_o
i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
c_t = f * c_{t-1} + i * g
h_t = o * tanh(c_t)
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
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        steps.append((i, f, g, o, c, c_prev, h_prev))
        hs.append(h)
    return np.stack(hs, axis=1), (h, c), (x, steps, p)  # hs (B, T, H)


def backward(d_hs: np.ndarray, d_final: tuple, cache) -> dict:
    x, steps, p = cache
    grads = zero_grads(p)
    d_x = np.zeros_like(x)
    d_h_next, d_c_next = d_final
    for t in reversed(range(x.shape[1])):
        i, f, g, o, c, c_prev, h_prev = steps[t]
        d_h = d_hs[:, t] + d_h_next
        tanh_c = np.tanh(c)
        d_o = d_h * tanh_c
        d_c = d_c_next + d_h * o * (1.0 - tanh_c**2)  # c_t feeds h_t and c_{t+1}
        d_i, d_g, d_f = d_c * g, d_c * i, d_c * c_prev
        d_a = np.concatenate(
            [d_i * i * (1 - i), d_f * f * (1 - f), d_g * (1 - g**2), d_o * o * (1 - o)], axis=1
        )  # (B, 4H): through the sigmoids and the tanh
        accumulate(grads, d_a, d_a, x[:, t], h_prev)
        d_x[:, t] = d_a @ p["weight_ih"]
        d_h_next = d_a @ p["weight_hh"]
        d_c_next = d_c * f
    grads["x"] = d_x
    grads["state0"] = (d_h_next, d_c_next)
    return grads
