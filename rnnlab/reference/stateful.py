"""The lectures' RNN class: one object that keeps its own hidden state and takes one input at a time.

CS231n lecture 10 writes the vanilla RNN as a class whose ``step(x)`` updates ``self.h``::

    rnn = RNN.from_cell(cell, head)          # the weights of an rnnlab cell (and its output layer)
    y = rnn.step(x)                          # x (I,) one input vector; y (O,) scores; rnn.h is now h_t

in the lectures' notation, not torch's:

    RNN    h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)                  y_t = W_hy h_t + b_y
    LSTM   [i; f; o; g] = [sigmoid; sigmoid; sigmoid; tanh](W [h_{t-1}; x_t] + b)
           c_t = f * c_{t-1} + i * g            h_t = o * tanh(c_t)
           W (4H, H+I) stacks the gates in the lecture's order i, f, o, g over [h; x]
    GRU    r = sigmoid(W_r [h_{t-1}; x_t] + b_r)          z = sigmoid(W_z [h_{t-1}; x_t] + b_z)
           h~ = tanh(W_xh~ x_t + b_xh~ + r * (W_hh~ h_{t-1} + b_hh~))
           h_t = (1 - z) * h~ + z * h_{t-1}

torch (and rnnlab) store the same numbers differently: ``weight_ih`` (G*H, I) and ``weight_hh``
(G*H, H) apart, two biases, and the LSTM's gates in the order i, f, g, o. ``from_cell`` does the
reordering, and ``matrices()`` names every block by its lecture symbol, so the notation table of
docs/guide.md can be checked against real parameters (tests/test_reference.py does).

The GRU is torch's variant, with two differences from the lectures' (Cho et al. 2014) version: z
is the share of the *old* state kept (the lectures' z is the share of the new one, 1 - z here), and
the reset gate multiplies W_hh~ h_{t-1} after the product rather than h_{t-1} before it.

Everything here is NumPy, one sequence, one step at a time: slow and plain on purpose.
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference._common import sigmoid


def _numpy(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


class RNN:
    """h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h), and the scores y_t = W_hy h_t + b_y when there is a W_hy."""

    def __init__(self, W_xh, W_hh, b_h, W_hy=None, b_y=None) -> None:
        self.W_xh, self.W_hh, self.b_h = np.asarray(W_xh), np.asarray(W_hh), np.asarray(b_h)  # (H, I), (H, H), (H,)
        self.W_hy = None if W_hy is None else np.asarray(W_hy)  # (O, H)
        self.b_y = np.zeros(len(self.W_hy)) if W_hy is not None and b_y is None else b_y  # (O,)
        self.hidden_size = self.W_hh.shape[1]
        self.reset()

    def reset(self) -> None:
        """Forget everything: h = 0 (the state a sequence starts from)."""
        self.h = np.zeros(self.hidden_size)

    def step(self, x) -> np.ndarray:
        """Read one input x (I,); update self.h; return y_t (O,), or h_t when there is no output layer."""
        self.h = np.tanh(self.W_hh @ self.h + self.W_xh @ np.asarray(x) + self.b_h)
        return self.output()

    def output(self) -> np.ndarray:
        return self.h if self.W_hy is None else self.W_hy @ self.h + self.b_y

    @classmethod
    def from_cell(cls, cell, head=None) -> RNN:
        """The lecture's RNN holding the weights of an rnnlab (or torch.nn) RNN cell, and of an output layer
        ``head`` (an nn.Linear from H to O), if given."""
        b_h = _numpy(cell.bias_ih) + _numpy(cell.bias_hh)  # torch keeps two biases; only their sum matters
        return cls(_numpy(cell.weight_ih), _numpy(cell.weight_hh), b_h, *_head(head))

    def matrices(self) -> dict[str, np.ndarray]:
        """Every weight block by its lecture symbol."""
        out = {"W_xh": self.W_xh, "W_hh": self.W_hh, "b_h": self.b_h}
        if self.W_hy is not None:
            out |= {"W_hy": self.W_hy, "b_y": self.b_y}
        return out


class LSTM(RNN):
    """[i; f; o; g] = [sigmoid; sigmoid; sigmoid; tanh](W [h_{t-1}; x_t] + b); c_t = f * c_{t-1} + i * g;
    h_t = o * tanh(c_t). W (4H, H+I) in the lecture's gate order i, f, o, g."""

    gate_order = ("i", "f", "o", "g")

    def __init__(self, W, b, W_hy=None, b_y=None) -> None:
        self.W, self.b = np.asarray(W), np.asarray(b)  # (4H, H+I), (4H,)
        self.W_hy = None if W_hy is None else np.asarray(W_hy)
        self.b_y = np.zeros(len(self.W_hy)) if W_hy is not None and b_y is None else b_y
        self.hidden_size = self.W.shape[0] // 4
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(self.hidden_size)
        self.c = np.zeros(self.hidden_size)

    def step(self, x) -> np.ndarray:
        a = self.W @ np.concatenate([self.h, np.asarray(x)]) + self.b  # (4H,)
        i, f, o, g = np.split(a, 4)
        i, f, o, g = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(g)
        self.c = f * self.c + i * g  # the cell state: a sum, so gradients pass along it unsquashed
        self.h = o * np.tanh(self.c)
        return self.output()

    @classmethod
    def from_cell(cls, cell, head=None) -> LSTM:
        H = cell.hidden_size
        torch_rows = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(("i", "f", "g", "o"))}
        order = np.concatenate([np.arange(4 * H)[torch_rows[gate]] for gate in cls.gate_order])  # torch rows, lecture order
        W = np.concatenate([_numpy(cell.weight_hh), _numpy(cell.weight_ih)], axis=1)[order]  # [h; x] columns
        b = (_numpy(cell.bias_ih) + _numpy(cell.bias_hh))[order]
        return cls(W, b, *_head(head))

    def matrices(self) -> dict[str, np.ndarray]:
        H = self.hidden_size
        out = {"W": self.W, "b": self.b}
        for k, gate in enumerate(self.gate_order):
            rows = slice(k * H, (k + 1) * H)
            out |= {f"W_h{gate}": self.W[rows, :H], f"W_x{gate}": self.W[rows, H:], f"b_{gate}": self.b[rows]}
        if self.W_hy is not None:
            out |= {"W_hy": self.W_hy, "b_y": self.b_y}
        return out


class GRU(RNN):
    """torch's GRU in the lectures' letters (see the module docstring for how it differs from Cho et al.):
    r, z = sigmoid(W_r [h; x] + b_r), sigmoid(W_z [h; x] + b_z); h~ = tanh(W_xh~ x + b_xh~ + r * (W_hh~ h + b_hh~));
    h_t = (1 - z) * h~ + z * h_{t-1}."""

    def __init__(self, W_r, b_r, W_z, b_z, W_xn, b_xn, W_hn, b_hn, W_hy=None, b_y=None) -> None:
        self.W_r, self.b_r, self.W_z, self.b_z = (np.asarray(a) for a in (W_r, b_r, W_z, b_z))  # (H, H+I), (H,)
        self.W_xn, self.b_xn, self.W_hn, self.b_hn = (np.asarray(a) for a in (W_xn, b_xn, W_hn, b_hn))
        self.W_hy = None if W_hy is None else np.asarray(W_hy)
        self.b_y = np.zeros(len(self.W_hy)) if W_hy is not None and b_y is None else b_y
        self.hidden_size = self.W_hn.shape[0]
        self.reset()

    def step(self, x) -> np.ndarray:
        x = np.asarray(x)
        hx = np.concatenate([self.h, x])
        r, z = sigmoid(self.W_r @ hx + self.b_r), sigmoid(self.W_z @ hx + self.b_z)
        candidate = np.tanh(self.W_xn @ x + self.b_xn + r * (self.W_hn @ self.h + self.b_hn))  # h~
        self.h = (1 - z) * candidate + z * self.h  # z keeps the old state: the lecture's c_t = f c + i g, with i = 1 - f
        return self.output()

    @classmethod
    def from_cell(cls, cell, head=None) -> GRU:
        H = cell.hidden_size
        W_ih, W_hh = _numpy(cell.weight_ih), _numpy(cell.weight_hh)
        b_ih, b_hh = _numpy(cell.bias_ih), _numpy(cell.bias_hh)
        r, z, n = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)  # torch's gate order r, z, n
        W_r = np.concatenate([W_hh[r], W_ih[r]], axis=1)
        W_z = np.concatenate([W_hh[z], W_ih[z]], axis=1)
        return cls(W_r, b_ih[r] + b_hh[r], W_z, b_ih[z] + b_hh[z], W_ih[n], b_ih[n], W_hh[n], b_hh[n], *_head(head))

    def matrices(self) -> dict[str, np.ndarray]:
        H = self.hidden_size
        out = {
            "W_r": self.W_r, "b_r": self.b_r, "W_z": self.W_z, "b_z": self.b_z,
            "W_hr": self.W_r[:, :H], "W_xr": self.W_r[:, H:], "W_hz": self.W_z[:, :H], "W_xz": self.W_z[:, H:],
            "W_xh~": self.W_xn, "b_xh~": self.b_xn, "W_hh~": self.W_hn, "b_hh~": self.b_hn,
        }  # fmt: skip
        if self.W_hy is not None:
            out |= {"W_hy": self.W_hy, "b_y": self.b_y}
        return out


def _head(head) -> tuple:
    return () if head is None else (_numpy(head.weight), _numpy(head.bias))


CLASSES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
