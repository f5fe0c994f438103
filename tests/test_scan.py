"""Minimal RNNs (rnnlab.scan): the step, the sequential scan and the log-space parallel scan agree;
Recurrent's scan path equals its explicit loop in values and gradients; the cells train and generate
inside the tasks."""

import numpy as np
import pytest
import torch

from rnnlab import Recurrent
from rnnlab.cells import CELLS
from rnnlab.scan import CHUNK, MinGRUCell, MinLSTMCell, g, linear_scan, log_g, scan_parallel, scan_sequential

MIN_CELLS = [MinGRUCell, MinLSTMCell]


def _coefficients(cell_cls, batch=3, steps=50, inputs=4, hidden=5, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    cell = cell_cls(inputs, hidden).to(dtype)
    x = torch.randn(batch, steps, inputs, dtype=dtype)
    h0 = torch.randn(batch, hidden, dtype=dtype)  # any sign: the parallel scan never takes its log
    return cell, x, h0


def test_g_is_positive_continuous_and_log_g_is_its_log():
    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    assert (g(v) > 0).all()
    torch.testing.assert_close(log_g(v), g(v).log(), rtol=1e-8, atol=0)  # softplus is linear past 20
    assert abs(float(g(torch.tensor(-1e-9, dtype=torch.float64))) - 0.5) < 1e-8  # continuous at 0


@pytest.mark.parametrize("cell_cls", MIN_CELLS)
@pytest.mark.parametrize("steps", [1, 7, CHUNK, 3 * CHUNK + 5])
def test_step_sequential_and_parallel_agree(cell_cls, steps):
    cell, x, h0 = _coefficients(cell_cls, steps=steps)
    a, b = cell.coefficients(cell.project(x))
    log_a, log_b = cell.log_coefficients(cell.project(x))
    torch.testing.assert_close(log_a.exp(), a, rtol=1e-12, atol=0)
    torch.testing.assert_close(log_b.exp(), b, rtol=1e-12, atol=0)
    stepped, state = [], (h0,)
    for t in range(steps):  # the O(1)-state path generation uses
        state = cell.recur(cell.project(x[:, t]), state)
        stepped.append(state[0])
    stepped = torch.stack(stepped, dim=1)
    torch.testing.assert_close(scan_sequential(a, b, h0), stepped, rtol=0, atol=1e-10)
    torch.testing.assert_close(scan_parallel(log_a, log_b, h0), stepped, rtol=0, atol=1e-10)
    torch.testing.assert_close(scan_parallel(log_a, log_b, h0, chunk=steps), stepped, rtol=0, atol=1e-10)


def test_the_cells_are_the_papers_equations():
    torch.manual_seed(1)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    gru = MinGRUCell(3, 4).double()
    k, v = (x @ gru.weight_ih.T + gru.bias_ih).chunk(2, dim=-1)
    z = torch.sigmoid(k)
    torch.testing.assert_close(gru(x, (h,))[0], (1 - z) * h + z * g(v), rtol=0, atol=1e-12)
    lstm = MinLSTMCell(3, 4).double()
    kf, ki, v = (x @ lstm.weight_ih.T + lstm.bias_ih).chunk(3, dim=-1)
    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
    torch.testing.assert_close(lstm(x, (h,))[0], f / (f + i) * h + i / (f + i) * g(v), rtol=0, atol=1e-12)


def test_parallel_scan_keeps_float32_precision_over_long_sequences():
    """Chunks keep a* = cumsum(log a) small enough for float32: 4,096 steps with gates near 1 and near 0."""
    cell, x, h0 = _coefficients(MinGRUCell, batch=2, steps=4096, dtype=torch.float64)
    with torch.no_grad():
        cell.bias_ih[:5] = torch.tensor([-6.0, -2.0, 0.0, 2.0, 6.0], dtype=torch.float64)  # z from 0.002 to 0.998
        log_a, log_b = cell.log_coefficients(cell.project(x))
    exact = scan_sequential(log_a.exp(), log_b.exp(), h0)
    fast = scan_parallel(log_a.float(), log_b.float(), h0.float())
    np.testing.assert_allclose(fast.double().numpy(), exact.numpy(), rtol=2e-5, atol=2e-5)


def test_scan_gradients_pass_gradcheck():
    cell, x, h0 = _coefficients(MinLSTMCell, batch=2, steps=9, inputs=3, hidden=2)
    log_a, log_b = cell.log_coefficients(cell.project(x))
    args = (log_a.detach().requires_grad_(), log_b.detach().requires_grad_(), h0.requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b, h: scan_parallel(a, b, h, chunk=4), args)
    a, b = cell.coefficients(cell.project(x))
    assert torch.autograd.gradcheck(scan_sequential, (a.detach().requires_grad_(), b.detach().requires_grad_(), h0))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
@pytest.mark.parametrize(("layers", "bidirectional", "ragged"), [(1, False, False), (2, True, True), (3, False, True)])
def test_recurrent_scan_equals_the_explicit_loop_with_gradients(name, layers, bidirectional, ragged):
    torch.manual_seed(2)
    rec = Recurrent(CELLS[name], 4, 6, num_layers=layers, bidirectional=bidirectional).double()
    assert rec.scanned and not rec.fused
    x = torch.randn(3, 30, 4, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(s.shape, dtype=torch.float64) for s in rec.initial_state(3))
    lengths = torch.tensor([30, 11, 1]) if ragged else None
    results = []
    for run in (rec.forward, rec.forward_explicit):
        out, (h,) = run(x, state, lengths)
        grads = torch.autograd.grad((out * out.detach().cos()).sum() + h.sin().sum(), [x, *rec.parameters()])
        results.append((out, h, grads))
    (o1, h1, g1), (o2, h2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=1e-10)
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-10)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    if ragged:
        assert not o1[2, 1:].any()  # padding gives zeros


def test_linear_scan_chooses_by_device_and_masks_padding():
    from rnnlab.scan import prefer_parallel

    assert not prefer_parallel(4096, torch.device("cpu"))  # measured: the sequential loop wins on CPUs
    assert prefer_parallel(64, torch.device("cuda"))
    cell, x, h0 = _coefficients(MinGRUCell, steps=6)
    xw = cell.project(x)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool).unsqueeze(-1)  # (B, T, 1)
    for parallel in (False, True):
        h = linear_scan(cell, xw, h0, mask, parallel)
        torch.testing.assert_close(h[1, 4:], h[1, 3:4].expand(2, -1))  # past the end the state is kept
        torch.testing.assert_close(h, linear_scan(cell, xw, h0, mask, not parallel), rtol=0, atol=1e-10)


def test_stepper_and_trace_work_on_minimal_cells():
    torch.manual_seed(3)
    rec = Recurrent(MinLSTMCell, 4, 5, num_layers=2)
    x = torch.randn(2, 12, 4)
    out, _ = rec(x)
    stepper = rec.stepper(batch_size=2)
    stepped = torch.stack([stepper.step(x[:, t]) for t in range(12)], dim=1)
    torch.testing.assert_close(stepped, out, rtol=0, atol=1e-5)
    trace = rec.trace(x)
    f, i = trace.get("f", layer=0), trace.get("i", layer=0)
    torch.testing.assert_close(f + i, torch.ones_like(f))  # normalised gates
    assert "weight_hh_l0" not in rec.state_dict() and "weight_ih_l1" in rec.state_dict()


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_character_model_with_a_minimal_cell_learns_saves_and_samples(cell, shakespeare, tmp_path, capsys):
    from rnnlab.cli import main

    text = tmp_path / "text.txt"
    text.write_text(shakespeare[:60_000], encoding="utf-8")
    flags = ["--text", str(text), "--cell", cell, "--hidden", "64", "--layers", "2", "--seq-len", "64"]
    flags += ["--max-steps", "120", "--eval-every", "60", "--lr", "1e-2", "--quiet"]
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 0
    losses = [float(line.split(",")[3]) for line in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]]
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5])  # from ~4.2 nats/char, measured 2.6
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "run"), "--prime", "ROMEO:", "--length", "40", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
