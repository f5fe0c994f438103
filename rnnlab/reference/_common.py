"""Helpers shared by the reference cells."""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def zero_grads(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.zeros_like(value) for name, value in params.items()}


def accumulate(grads: dict[str, np.ndarray], d_xw: np.ndarray, d_hw: np.ndarray, x_t, h_prev) -> None:
    """Add one step's contribution to the shared weights' gradients.

    d_xw (B, G*H) = dL/d(W_ih x_t + b_ih); d_hw (B, G*H) = dL/d(W_hh h_{t-1} + b_hh).
    """
    grads["weight_ih"] += d_xw.T @ x_t
    grads["bias_ih"] += d_xw.sum(0)
    grads["weight_hh"] += d_hw.T @ h_prev
    grads["bias_hh"] += d_hw.sum(0)
