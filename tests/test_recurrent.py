"""Recurrent: fused and explicit paths equal each other and torch.nn, over every configuration."""

import functools

import pytest
import torch
from torch import nn

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.recurrent import Recurrent, from_torch, stretches_pay, to_torch

CELLS = {
    "rnn_tanh": RNNCell,
    "rnn_relu": functools.partial(RNNCell, nonlinearity="relu"),
    "lstm": LSTMCell,
    "gru": GRUCell,
}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _inputs(rec, dtype, ragged, batch=4, steps=7):
    torch.manual_seed(1)
    x = torch.randn(batch, steps, rec.input_size, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn_like(s, requires_grad=True) for s in rec.initial_state(batch, dtype=dtype))
    lengths = torch.tensor([7, 3, 1, 5]) if ragged else None
    return x, state, lengths


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stretches_equal_explicit_with_gradients(cell):
    """The stretches path (long sequences, few distinct lengths) = the explicit cells, gradients included."""
    torch.manual_seed(0)
    rec = Recurrent(CELLS[cell], 3, 5, num_layers=2, bidirectional=True).double()
    x = torch.randn(4, 30, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn_like(s, requires_grad=True) for s in rec.initial_state(4, dtype=torch.float64))
    lengths = torch.tensor([30, 9, 9, 22])
    assert stretches_pay(lengths)
    out_f, fin_f, grads_f = _run(rec, rec.forward_fused, x, state, lengths)
    out_e, fin_e, grads_e = _run(rec, rec.forward_explicit, x, state, lengths)
    torch.testing.assert_close(out_f, out_e, atol=1e-10, rtol=1e-10)
    for a, b in zip(fin_f, fin_e):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    for name in grads_f:
        torch.testing.assert_close(grads_f[name], grads_e[name], atol=1e-10, rtol=1e-10, msg=name)


def _loss(output, state):
    # weights every output and final-state element differently, so no gradient can hide
    # (torch.randn, not randn_like: randn_like follows memory layout, which differs between paths)
    g = torch.Generator().manual_seed(2)
    loss = (output * torch.randn(output.shape, generator=g, dtype=output.dtype)).sum()
    return loss + sum((s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum() for s in state)


def _run(rec, fn, x, state, lengths):
    rec.zero_grad()
    x.grad = None
    for s in state:
        s.grad = None
    output, final = fn(x, state, lengths)
    _loss(output, final).backward()
    grads = {n: p.grad.clone() for n, p in rec.named_parameters()}
    grads["x"] = x.grad.clone()
    grads.update({f"state{i}": s.grad.clone() for i, s in enumerate(state)})
    return output.detach(), tuple(f.detach() for f in final), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS, ids=list(CELLS))
def test_fused_equals_explicit(cell, layers, bidirectional, ragged, dtype):
    torch.manual_seed(0)
    rec = Recurrent(CELLS[cell], 3, 5, num_layers=layers, bidirectional=bidirectional).to(dtype)
    assert rec.fused
    x, state, lengths = _inputs(rec, dtype, ragged)
    out_f, fin_f, grads_f = _run(rec, rec.forward_fused, x, state, lengths)
    out_e, fin_e, grads_e = _run(rec, rec.forward_explicit, x, state, lengths)
    tol = TOL[dtype]
    torch.testing.assert_close(out_f, out_e, atol=tol, rtol=tol)
    for a, b in zip(fin_f, fin_e):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    assert grads_f.keys() == grads_e.keys()
    for name in grads_f:
        torch.testing.assert_close(grads_f[name], grads_e[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("cell, torch_cls", [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn_tanh", nn.RNN)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_state_dict_moves_both_ways_with_torch(cell, torch_cls, bidirectional):
    torch.manual_seed(0)
    theirs = torch_cls(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True)
    ours = Recurrent(CELLS[cell], 3, 5, num_layers=2, bidirectional=bidirectional)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 3)
    ref_out, ref_state = theirs(x)
    ref_state = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    for fn in (ours.forward, ours.forward_fused, ours.forward_explicit, ours.forward_handwritten):
        out, state = fn(x)
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
        for a, b in zip(state, ref_state):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and back: a fresh torch module from our weights
    back = to_torch(ours)
    torch.testing.assert_close(back(x)[0], ref_out)
    again = from_torch(back)
    torch.testing.assert_close(again(x)[0], ref_out)


RAGGED = {"packed": (8, [7, 3, 3, 1, 8, 5]), "stretches": (40, [33, 12, 12, 40, 1, 33])}  # (T, lengths)


@pytest.mark.parametrize("path", RAGGED)
@pytest.mark.parametrize("cell, torch_cls", [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn_tanh", nn.RNN)])
def test_ragged_batch_equals_torch_packed_sequence(cell, torch_cls, path):
    """A ragged batch (repeated lengths included) gives what torch.nn gives for the packed sequence,
    whether it runs packed or, for long stretches between lengths on CPU, in stretches."""
    torch.manual_seed(0)
    theirs = torch_cls(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours = from_torch(theirs)
    steps, lengths = RAGGED[path]
    lengths = torch.tensor(lengths)
    assert stretches_pay(lengths) == (path == "stretches")
    x = torch.randn(6, steps, 3)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, ref_state = theirs(packed)
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True, total_length=steps)
    ref_state = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    out, state = ours(x, lengths=lengths)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_lengths_padding_is_ignored():
    """A sequence's outputs and final state do not depend on what pads it, for both directions."""
    torch.manual_seed(0)
    rec = Recurrent(LSTMCell, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([6, 4])
    for fn in (rec.forward, rec.forward_explicit, rec.forward_handwritten):
        out, (h, c) = fn(x, lengths=lengths)
        alone, (h1, c1) = fn(x[1:, :4])
        torch.testing.assert_close(out[1, :4], alone[0], atol=1e-6, rtol=1e-6)
        assert torch.all(out[1, 4:] == 0)
        torch.testing.assert_close(h[:, 1], h1[:, 0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(c[:, 1], c1[:, 0], atol=1e-6, rtol=1e-6)
        noisy = x.clone()
        noisy[1, 4:] = 100.0
        torch.testing.assert_close(fn(noisy, lengths=lengths)[0], out)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    rec = Recurrent(GRUCell, 3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, 3)
    rec.eval()
    a, b = rec(x)[0], rec.forward_explicit(x)[0]
    torch.testing.assert_close(a, b)
    rec.train()
    assert not torch.allclose(rec(x)[0], a)
    assert not torch.allclose(rec.forward_explicit(x)[0], a)


def test_trace_records_states_and_gates():
    torch.manual_seed(0)
    rec = Recurrent(LSTMCell, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(2, 5, 3)
    lengths = torch.tensor([5, 3])
    tr = rec.trace(x, lengths=lengths)
    out, state = rec(x, lengths=lengths)
    torch.testing.assert_close(tr.output, out, atol=1e-6, rtol=1e-6)
    assert set(tr.tensors) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert set(tr.tensors[(0, 0)]) == {"h", "c", "i", "f", "g", "o"}
    torch.testing.assert_close(tr.get("h", layer=1, direction=0), out[..., :4])
    torch.testing.assert_close(tr.get("h", layer=1, direction=1), out[..., 4:])
    # step the first layer's forward cell by hand and compare its gates and cell state
    cell = rec.cells[0]
    h, c = torch.zeros(2, 4), torch.zeros(2, 4)
    for t in range(5):
        i, f, g, o = cell.gates(cell.project(x[:, t]), h)
        h, c = cell.recur(cell.project(x[:, t]), (h, c))
        real = t < lengths
        torch.testing.assert_close(tr.get("f", 0)[real, t], f[real])
        torch.testing.assert_close(tr.get("c", 0)[real, t], c[real])
        assert torch.all(tr.get("f", 0)[~real, t] == 0)


def test_stepper_equals_forward():
    torch.manual_seed(0)
    rec = Recurrent(LSTMCell, 3, 4, num_layers=3)
    x = torch.randn(2, 6, 3)
    out, state = rec(x)
    stepper = rec.stepper(batch_size=2)
    steps = torch.stack([stepper.step(x[:, t]) for t in range(6)], dim=1)
    torch.testing.assert_close(steps, out, atol=1e-6, rtol=1e-6)
    for a, b in zip(stepper.state, state):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_state_carries_across_calls():
    """Running a sequence in two halves, passing the state on, equals running it whole."""
    torch.manual_seed(0)
    for cell in CELLS.values():
        rec = Recurrent(cell, 3, 4, num_layers=2)
        x = torch.randn(2, 8, 3)
        whole, final = rec(x)
        first, mid = rec(x[:, :5])
        second, final2 = rec(x[:, 5:], mid)
        torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-6, rtol=1e-6)
        for a, b in zip(final, final2):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_bad_shapes_say_expected_and_got():
    rec = Recurrent(LSTMCell, 3, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\), got \(2, 5, 4\)"):
        rec(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="expected a state of 2 tensor"):
        rec(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4),))
    with pytest.raises(ValueError, match="lengths must lie in"):
        rec(torch.randn(2, 5, 3), lengths=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="cannot be stepped"):
        Recurrent(LSTMCell, 3, 4, bidirectional=True).stepper()
