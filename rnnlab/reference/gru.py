"""GRU in NumPy (gate order r, z, n, reset applied after the hidden product, as torch.nn.GRU), and its BPTT.

xr, xz, xn = split(W_ih x_t + b_ih)       hr, hz, hn = split(W_hh h_{t-1} + b_hh)
r = sigmoid(xr + hr)    z = sigmoid(xz + hz)    n = tanh(xn + r * hn)
h_t = (1 - z) * n + z * h_{t-1}
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference._common import accumulate, sigmoid, zero_grads


def forward(x: np.ndarray, state0: tuple, p: dict):
    (h,) = state0
    steps, hs = [], []
    for t in range(x.shape[1]):
        xr, xz, xn = np.split(x[:, t] @ p["weight_ih"].T + p["bias_ih"], 3, axis=1)
        hr, hz, hn = np.split(h @ p["weight_hh"].T + p["bias_hh"], 3, axis=1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        steps.append((r, z, n, hn, h))
        h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs, axis=1), (h,), (x, steps, p)


def backward(d_hs: np.ndarray, d_final: tuple, cache) -> dict:
    x, steps, p = cache
    grads = zero_grads(p)
    d_x = np.zeros_like(x)
    (d_h_next,) = d_final
    for t in reversed(range(x.shape[1])):
        r, z, n, hn, h_prev = steps[t]
        d_h = d_hs[:, t] + d_h_next
        d_n = d_h * (1 - z)
        d_z = d_h * (h_prev - n)
        d_an = d_n * (1 - n**2)  # through tanh
        d_ar = d_an * hn * r * (1 - r)  # r multiplies hn inside the tanh
        d_az = d_z * z * (1 - z)
        d_xw = np.concatenate([d_ar, d_az, d_an], axis=1)  # dL/d(W_ih x + b_ih)
        d_hw = np.concatenate([d_ar, d_az, d_an * r], axis=1)  # dL/d(W_hh h + b_hh)
        accumulate(grads, d_xw, d_hw, x[:, t], h_prev)
        d_x[:, t] = d_xw @ p["weight_ih"]
        d_h_next = d_h * z + d_hw @ p["weight_hh"]  # direct path through z * h_{t-1}, and via the gates
    grads["x"] = d_x
    grads["state0"] = (d_h_next,)
    return grads
