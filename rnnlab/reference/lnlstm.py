"""Layer-normalised LSTM in NumPy (Ba et al. 2016; rnnlab.variants.LayerNormLSTMCell), and its BPTT.

LN(v; gamma, beta) = gamma * (v - mean v) / sqrt(var v + eps) + beta, over the last axis
a_t = LN(W_ih x_t; gamma_x, b_ih) + LN(W_hh h_{t-1}; gamma_h, b_hh)      split into a_i, a_f, a_g, a_o
c_t = sigmoid(a_f) * c_{t-1} + sigmoid(a_i) * tanh(a_g)
h_t = sigmoid(a_o) * tanh(LN(c_t; gamma_c, beta_c))
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference._common import sigmoid, zero_grads

EPS = 1e-5


def _norm(v: np.ndarray):
    centred = v - v.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt((centred**2).mean(-1, keepdims=True) + EPS)
    return centred * rstd, rstd


def _norm_backward(d_n: np.ndarray, n: np.ndarray, rstd: np.ndarray) -> np.ndarray:
    return rstd * (d_n - d_n.mean(-1, keepdims=True) - n * (d_n * n).mean(-1, keepdims=True))


def forward(x: np.ndarray, state0: tuple, p: dict):
    h, c = state0
    steps, hs = [], []
    for t in range(x.shape[1]):
        n_x, rstd_x = _norm(x[:, t] @ p["weight_ih"].T)
        n_h, rstd_h = _norm(h @ p["weight_hh"].T)
        a = n_x * p["ln_ih_weight"] + p["bias_ih"] + n_h * p["ln_hh_weight"] + p["bias_hh"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        n_c, rstd_c = _norm(c)
        tanh_c = np.tanh(n_c * p["ln_c_weight"] + p["ln_c_bias"])
        h = o * tanh_c
        steps.append((i, f, g, o, c_prev, h_prev, n_x, rstd_x, n_h, rstd_h, n_c, rstd_c, tanh_c))
        hs.append(h)
    return np.stack(hs, axis=1), (h, c), (x, steps, p)


def backward(d_hs: np.ndarray, d_final: tuple, cache) -> dict:
    x, steps, p = cache
    grads = zero_grads(p)
    d_x = np.zeros_like(x)
    d_h_next, d_c_next = d_final
    for t in reversed(range(x.shape[1])):
        i, f, g, o, c_prev, h_prev, n_x, rstd_x, n_h, rstd_h, n_c, rstd_c, tanh_c = steps[t]
        d_h = d_hs[:, t] + d_h_next
        d_ln_c = d_h * o * (1 - tanh_c**2)  # dL/d LN(c_t)
        grads["ln_c_weight"] += (d_ln_c * n_c).sum(0)
        grads["ln_c_bias"] += d_ln_c.sum(0)
        d_c = d_c_next + _norm_backward(d_ln_c * p["ln_c_weight"], n_c, rstd_c)
        d_a = np.concatenate(
            [d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f), d_c * i * (1 - g**2), d_h * tanh_c * o * (1 - o)], axis=1
        )
        grads["bias_ih"] += d_a.sum(0)
        grads["bias_hh"] += d_a.sum(0)
        grads["ln_ih_weight"] += (d_a * n_x).sum(0)
        grads["ln_hh_weight"] += (d_a * n_h).sum(0)
        d_xw = _norm_backward(d_a * p["ln_ih_weight"], n_x, rstd_x)  # dL/d(W_ih x_t)
        d_hw = _norm_backward(d_a * p["ln_hh_weight"], n_h, rstd_h)  # dL/d(W_hh h_{t-1})
        grads["weight_ih"] += d_xw.T @ x[:, t]
        grads["weight_hh"] += d_hw.T @ h_prev
        d_x[:, t] = d_xw @ p["weight_ih"]
        d_h_next = d_hw @ p["weight_hh"]
        d_c_next = d_c * f
    grads["x"] = d_x
    grads["state0"] = (d_h_next, d_c_next)
    return grads
