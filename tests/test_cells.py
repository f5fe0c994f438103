"""Each explicit cell against torch.nn's kernels, closed-form golden values and gradcheck."""

import functools

import pytest
import torch
from torch import nn

from rnnlab.cells import GRUCell, LSTMCell, RNNCell, cell_class
from rnnlab.errors import ConfigError

PAIRS = [
    (RNNCell, nn.RNNCell),
    (functools.partial(RNNCell, nonlinearity="relu"), functools.partial(nn.RNNCell, nonlinearity="relu")),
    (LSTMCell, nn.LSTMCell),
    (GRUCell, nn.GRUCell),
]
IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.mark.parametrize("ours_cls, theirs_cls", PAIRS, ids=IDS)
@pytest.mark.parametrize("direction", ["theirs_to_ours", "ours_to_theirs"])
def test_cell_equals_torch_cell(ours_cls, theirs_cls, direction):
    torch.manual_seed(0)
    ours, theirs = ours_cls(5, 7), theirs_cls(5, 7)
    if direction == "theirs_to_ours":
        ours.load_state_dict(theirs.state_dict())
    else:
        theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5)
    state = ours.initial_state(3)
    state = tuple(torch.randn_like(s) for s in state)
    h, new_state = ours(x, state)
    ref = theirs(x, state if len(state) == 2 else state[0])
    ref = ref if isinstance(ref, tuple) else (ref,)
    for a, b in zip(new_state, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, ref[0], atol=1e-5, rtol=1e-5)


def _constant(cell, value):
    for p in cell.parameters():
        nn.init.constant_(p, value)
    return cell


def test_lstm_golden_all_zero_weights():
    # every pre-activation is 0: i = f = o = 1/2, g = tanh(0) = 0, so c = c0 / 2, h = tanh(c) / 2
    cell = _constant(LSTMCell(2, 3), 0.0)
    h, (h1, c1) = cell(torch.ones(1, 2), (torch.zeros(1, 3), torch.ones(1, 3)))
    torch.testing.assert_close(c1, torch.full((1, 3), 0.5))
    torch.testing.assert_close(h, torch.full((1, 3), 0.2310585786300049))  # 0.5 * tanh(0.5)


def test_lstm_golden_constant_weights():
    # weights 0.1, biases 0, x = 1 (2 inputs), h0 = c0 = 0: every pre-activation is 0.2
    cell = _constant(LSTMCell(2, 3), 0.1)
    nn.init.zeros_(cell.bias_ih), nn.init.zeros_(cell.bias_hh)
    with torch.no_grad():
        h, (_, c) = cell(torch.ones(1, 2))
    s, g = torch.sigmoid(torch.tensor(0.2)), torch.tanh(torch.tensor(0.2))
    torch.testing.assert_close(c, torch.full((1, 3), float(s * g)))
    torch.testing.assert_close(h, torch.full((1, 3), float(s * torch.tanh(s * g))))
    assert abs(float(c[0, 0]) - 0.549833997 * 0.197375320) < 1e-6  # sigmoid(0.2) * tanh(0.2)


def test_gru_golden_all_zero_weights():
    # r = z = 1/2 and n = tanh(0) = 0, so h = z * h0 = h0 / 2
    cell = _constant(GRUCell(2, 3), 0.0)
    h, _ = cell(torch.ones(1, 2), (torch.full((1, 3), 0.8),))
    torch.testing.assert_close(h, torch.full((1, 3), 0.4))


def test_rnn_golden_identity_weights():
    # W_ih = W_hh = I, biases 0: h = tanh(x + h0) = tanh(1) for x = h0 = 1/2
    cell = RNNCell(3, 3)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(3)), cell.weight_hh.copy_(torch.eye(3))
        cell.bias_ih.zero_(), cell.bias_hh.zero_()
    h, _ = cell(torch.full((1, 3), 0.5), (torch.full((1, 3), 0.5),))
    torch.testing.assert_close(h, torch.full((1, 3), 0.7615941559557649))
    relu = RNNCell(3, 3, nonlinearity="relu")
    relu.load_state_dict(cell.state_dict())
    h, _ = relu(torch.full((1, 3), -0.5), (torch.full((1, 3), 0.25),))
    torch.testing.assert_close(h, torch.zeros(1, 3))


@pytest.mark.parametrize("cls", [RNNCell, LSTMCell, GRUCell])
def test_gradcheck(cls):
    torch.manual_seed(0)
    cell = cls(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    state = tuple(torch.randn(2, 4, dtype=torch.double, requires_grad=True) for _ in cell.state_names)

    def step(x, *state):
        return cell(x, state)[1]

    assert torch.autograd.gradcheck(step, (x, *state))


@pytest.mark.parametrize("cls", [RNNCell, LSTMCell, GRUCell])
def test_gates_and_state_names(cls):
    cell = cls(3, 4)
    assert cell.weight_ih.shape == (cell.num_gates * 4, 3)
    gates = cell.gates(cell.project(torch.randn(2, 3)), torch.randn(2, 4))
    assert len(gates) == len(cell.gate_names)
    assert all(g.shape == (2, 4) for g in gates)


def test_gates_work_over_any_leading_shape():
    cell = LSTMCell(3, 4)
    xw, h = cell.project(torch.randn(5, 2, 3)), torch.randn(5, 2, 4)
    whole = cell.gates(xw, h)
    for t in range(5):
        for a, b in zip(whole, cell.gates(xw[t], h[t])):
            torch.testing.assert_close(a[t], b)


def test_bad_cell_arguments():
    with pytest.raises(ConfigError, match="positive"):
        LSTMCell(0, 4)
    with pytest.raises(ConfigError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ConfigError, match="unknown cell"):
        cell_class("transformer")
