"""The NumPy BPTT oracle against torch autograd (1e-8 in float64) and against finite differences."""

import numpy as np
import pytest
import torch

from rnnlab.cells import CELLS
from rnnlab.recurrent import Recurrent
from rnnlab.reference import MODULES


def _problem(name, seed=0, batch=2, steps=6, inputs=3, hidden=4):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rec = Recurrent(CELLS[name], inputs, hidden).double()
    params = {k: v.detach().numpy().copy() for k, v in rec.cells[0].named_parameters()}
    x = rng.standard_normal((batch, steps, inputs))
    state0 = tuple(rng.standard_normal((batch, hidden)) for _ in rec.state_names)
    d_hs = rng.standard_normal((batch, steps, hidden))
    d_final = tuple(rng.standard_normal((batch, hidden)) for _ in rec.state_names)
    return rec, params, x, state0, d_hs, d_final


def _loss(module, params, x, state0, d_hs, d_final):
    hs, final, _ = module.forward(x, state0, params)
    return float((hs * d_hs).sum() + sum((f * d).sum() for f, d in zip(final, d_final)))


@pytest.mark.parametrize("name", MODULES)
def test_oracle_equals_torch_autograd(name):
    rec, params, x, state0, d_hs, d_final = _problem(name)
    module = MODULES[name]
    hs, final, cache = module.forward(x, state0, params)
    grads = module.backward(d_hs, d_final, cache)

    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s[None], requires_grad=True) for s in state0)
    out, state = rec(xt, st)
    loss = (out * torch.tensor(d_hs)).sum() + sum((s[0] * torch.tensor(d)).sum() for s, d in zip(state, d_final))
    loss.backward()

    np.testing.assert_allclose(hs, out.detach().numpy(), atol=1e-8, rtol=1e-8)
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), atol=1e-8, rtol=1e-8)
    for ours, theirs in zip(grads["state0"], st):
        np.testing.assert_allclose(ours, theirs.grad[0].numpy(), atol=1e-8, rtol=1e-8)
    for pname, p in rec.cells[0].named_parameters():
        np.testing.assert_allclose(grads[pname], p.grad.numpy(), atol=1e-8, rtol=1e-8, err_msg=pname)


@pytest.mark.parametrize("name", MODULES)
def test_oracle_equals_finite_differences(name):
    _, params, x, state0, d_hs, d_final = _problem(name, seed=3)
    module = MODULES[name]
    grads = module.backward(d_hs, d_final, module.forward(x, state0, params)[2])
    rng = np.random.default_rng(4)
    eps = 1e-6
    for pname, value in params.items():
        for _ in range(6):  # a few random coordinates of every parameter
            idx = tuple(rng.integers(0, n) for n in value.shape)
            plus, minus = {**params, pname: value.copy()}, {**params, pname: value.copy()}
            plus[pname][idx] += eps
            minus[pname][idx] -= eps
            numeric = (_loss(module, plus, x, state0, d_hs, d_final) - _loss(module, minus, x, state0, d_hs, d_final)) / (
                2 * eps
            )
            assert abs(numeric - grads[pname][idx]) < 1e-6 * max(1.0, abs(numeric)), (pname, idx)
    for b, t, i in [(0, 0, 0), (1, 5, 2), (0, 3, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[b, t, i] += eps
        xm[b, t, i] -= eps
        numeric = (_loss(module, params, xp, state0, d_hs, d_final) - _loss(module, params, xm, state0, d_hs, d_final)) / (
            2 * eps
        )
        assert abs(numeric - grads["x"][b, t, i]) < 1e-6 * max(1.0, abs(numeric))


def test_oracle_gradient_vanishes_for_a_small_vanilla_rnn():
    """Teaching check: with a contracting W_hh, dL/dh_0 from a loss on the last step is tiny."""
    _, params, x, state0, _, _ = _problem("rnn", steps=40)
    params["weight_hh"] *= 0.3 / np.abs(np.linalg.eigvals(params["weight_hh"])).max()
    module = MODULES["rnn"]
    hs, final, cache = module.forward(x, state0, params)
    d_hs = np.zeros_like(hs)
    d_hs[:, -1] = 1.0
    grads = module.backward(d_hs, (np.zeros_like(final[0]),), cache)
    assert np.abs(grads["state0"][0]).max() < 1e-12
    assert np.abs(grads["x"][:, -1]).max() > 1e-3


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_lecture_class_equals_the_cells(name):
    """The lectures' stateful class (step(x) updating its own h), built from a cell's weights, gives that
    cell's h_t (and c_t) and the output layer's y_t at every step, to 1e-12 in float64."""
    from rnnlab.reference.stateful import CLASSES

    torch.manual_seed(3)
    cell, head = CELLS[name](5, 4).double(), torch.nn.Linear(4, 3).double()
    lecture = CLASSES[name].from_cell(cell, head)
    x = torch.randn(9, 5, dtype=torch.float64)
    state = None
    for t in range(len(x)):
        h, state = cell(x[t : t + 1], state)
        y = lecture.step(x[t].numpy())
        np.testing.assert_allclose(lecture.h, h[0].detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(y, head(h)[0].detach().numpy(), atol=1e-12)
        if name == "lstm":
            np.testing.assert_allclose(lecture.c, state[1][0].detach().numpy(), atol=1e-12)
    lecture.reset()
    assert not lecture.h.any()


def test_lecture_lstm_stacks_the_gates_in_the_lecture_order():
    """CS231n's W multiplies [h; x] with the gates in the order i, f, o, g; torch's are i, f, g, o."""
    from rnnlab.reference.stateful import LSTM

    cell = CELLS["lstm"](2, 3)
    with torch.no_grad():
        for k in range(4):  # torch's gate k gets the value k everywhere
            cell.weight_hh[3 * k : 3 * (k + 1)] = k
    W = LSTM.from_cell(cell).W
    assert [W[3 * k, 0] for k in range(4)] == [0, 1, 3, 2]  # i, f, o, g
    assert W.shape == (12, 3 + 2)
