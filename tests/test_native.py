"""The fused CPU kernels (rnnlab/native.py, rnnlab/csrc/recurrence.cpp) against the Python path of the
same hand-written BPTT (rnnlab/bptt.py), which tests/test_bptt.py holds equal to autograd: values and
every gradient, float32 and float64, ragged lengths, SIMD, panel and row-block tails; the weight
gradients; the oneDNN linear; and the fall-backs when the kernels cannot be built (or only without
OpenMP)."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from rnnlab import Recurrent, bptt, native
from rnnlab.cells import CELLS

NATIVE = ["rnn", "lstm", "gru", "peephole", "lnlstm"]


def test_the_kernels_build_here():
    assert native.available(), f"the fused kernels did not build: {native.why_not()}"


def _run(cell, xw, state, mask, use_native):
    xw = xw.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state)
    if use_native:
        assert native.handles(cell, xw, state)
        out, final = bptt.recurrence(cell, xw, state, mask)
    else:
        out, final = bptt.python_recurrence(cell, xw, state, mask)
    loss = (out * out.detach().cos()).sum() + sum(f.sin().sum() for f in final)
    grads = torch.autograd.grad(loss, [xw, *state, *cell.parameters()], allow_unused=True)
    return [out, *final, *grads]


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.parametrize("hidden", [13, 64])  # 13: every SIMD width and panel of the step product leaves a tail
@pytest.mark.parametrize("batch", [6, 19])  # 19: a thread's rows are whole blocks of the step product and a rest
@pytest.mark.parametrize("ragged", [False, True])
def test_native_equals_python_in_float32(name, hidden, batch, ragged):
    torch.manual_seed(0)
    cell = CELLS[name](5, hidden)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.2 * torch.randn_like(p))
    steps = 9
    xw = cell.project(torch.randn(steps, batch, 5)).detach()
    state = tuple(0.5 * torch.randn(batch, hidden) for _ in cell.state_names)
    mask = None
    if ragged:
        lengths = torch.randint(1, steps + 1, (batch,))
        lengths[0] = steps
        mask = (torch.arange(steps)[:, None] < lengths[None, :]).unsqueeze(-1)
    for _ in range(2):  # twice: the second run reuses the pooled buffers of the first
        got = _run(cell, xw, state, mask, use_native=True)
    expected = _run(cell, xw, state, mask, use_native=False)
    for a, b in zip(got, expected):
        if b is not None:  # float32 sums in another order (more so where the norms divide by the deviations)
            tolerance = 1e-3 if name == "lnlstm" else 1e-4
            torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def _fused_and_python(rec, x, lengths):
    """Outputs, final states and every gradient of ``rec.forward_handwritten``, with the fused kernels
    and without them."""

    def run():
        out, final = rec.forward_handwritten(x, lengths=lengths)
        loss = (out * out.detach().cos()).sum() + sum(f.sin().sum() for f in final)
        return [out, *final, *torch.autograd.grad(loss, [x, *rec.parameters()])]

    got = run()
    with native.disabled():
        return got, run()


@pytest.mark.parametrize("name", NATIVE)
def test_native_equals_python_in_float64_deep_and_bidirectional(name):
    torch.manual_seed(3)
    rec = Recurrent(CELLS[name], 3, 19, num_layers=2, bidirectional=True).double()
    x = torch.randn(4, 10, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([10, 3, 7, 1])

    got, expected = _fused_and_python(rec, x, lengths)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_native_recurrence_passes_gradcheck():
    torch.manual_seed(1)
    for name in NATIVE:
        cell = CELLS[name](2, 3).double()
        xw = cell.project(torch.randn(4, 2, 2, dtype=torch.float64)).detach().requires_grad_()
        state = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in cell.state_names)
        mask = torch.tensor([[1, 1], [1, 0], [1, 0], [0, 0]], dtype=torch.bool).unsqueeze(-1)
        assert native.handles(cell, xw, state)

        def run(xw, *state, cell=cell, mask=mask):
            out, final = bptt.recurrence(cell, xw, state, mask)
            return out, *final

        assert torch.autograd.gradcheck(run, (xw, *state))


def test_onednn_linear_equals_f_linear():
    torch.manual_seed(2)
    x = torch.randn(7, 5, 24).transpose(0, 1).requires_grad_()  # not contiguous, as a time-major view is
    w, b = torch.randn(40, 24, requires_grad=True), torch.randn(40, requires_grad=True)
    got = native.linear(x, w, b)
    expected = F.linear(x, w, b)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    d = torch.randn_like(expected)
    for a, e in zip(torch.autograd.grad(got, (x, w, b), d), torch.autograd.grad(expected, (x, w, b), d)):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("N", "G", "K"), [(5, 13, 3), (300, 2059, 37)])  # (300, 2059, 37): d copied into blocks first
def test_weight_gradient_equals_d_transposed_times_a(N, G, K, dtype):
    """dL/dW = d^T a by the kernels' own product: every tail (rows of dL/dW, columns of a, the last
    chunk of N) and both ways of reading d."""
    torch.manual_seed(7)
    d, a = torch.randn(N, G, dtype=dtype), torch.randn(N, K, dtype=dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(native.load().weight_gradient(d, a), d.t() @ a, rtol=tolerance, atol=tolerance)


def test_other_cases_take_the_python_path():
    cell = CELLS["lstm"](3, 4)
    xw = torch.randn(5, 2, 16)
    state = cell.initial_state(2)
    assert native.handles(cell, xw, state)
    assert not native.handles(CELLS["zoneout-lstm"](3, 4), xw, state)
    assert not native.handles(cell, xw.half(), state)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not native.handles(cell, xw, state)
    with native.disabled():
        assert not native.handles(cell, xw, state)


SCRIPT = """
import warnings, torch
from rnnlab import Recurrent, native
from rnnlab.cells import CELLS
torch.manual_seed(0)
rec = Recurrent(CELLS["lstm"], 3, 4)
x = torch.randn(2, 5, 3)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out, _ = rec.forward_handwritten(x)
    rec.forward_handwritten(x)
expected, _ = rec.forward_explicit(x)
assert torch.allclose(out, expected, atol=1e-6)
print(native.available(), len([w for w in caught if "fused CPU kernels" in str(w.message)]), native.why_not())
"""


@pytest.mark.parametrize(
    ("env", "expected"), [({"RNNLAB_NATIVE": "0"}, "False 0 RNNLAB_NATIVE=0"), ({"CXX": "/bin/false"}, "False 1")]
)
def test_without_the_kernels_the_python_path_runs(env, expected, tmp_path):
    """Switched off, or no working compiler (a fresh cache so nothing is built yet): the same results,
    and one warning when a build was tried and failed."""
    environment = {**os.environ, "RNNLAB_CACHE": str(tmp_path / "cache"), **env}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(expected), result.stdout


def test_a_compiler_without_openmp_still_builds_the_kernels(tmp_path):
    """Where the compiler has no OpenMP (Apple's clang), the kernels build without it (one thread
    per parallel region: the same results) and nothing is said."""
    compiler = tmp_path / "cxx"
    compiler.write_text('#!/bin/sh\ncase "$*" in *-fopenmp*) echo "no OpenMP here" >&2; exit 1;; esac\nexec c++ "$@"\n')
    compiler.chmod(0o755)
    environment = {**os.environ, "RNNLAB_CACHE": str(tmp_path / "cache"), "CXX": str(compiler)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("True 0"), result.stdout


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_fused_minimal_scan_equals_the_python_scan(name):
    from rnnlab.scan import linear_scan

    torch.manual_seed(4)
    cell = CELLS[name](3, 21)
    xw = (2 * cell.project(torch.randn(5, 17, 3))).detach()  # both signs of the candidate's pre-activation
    h0 = torch.randn(5, 21)
    mask = (torch.arange(17)[None, :] < torch.tensor([17, 9, 1, 12, 17])[:, None]).unsqueeze(-1)

    def run(xw, h0):
        h = linear_scan(cell, xw, h0, mask, parallel=False)
        return [h, *torch.autograd.grad((h * h.detach().cos()).sum(), (xw, h0))]

    args = (xw.requires_grad_(), h0.requires_grad_())
    got = run(*args)
    with native.disabled():
        expected = run(*args)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    double = (xw.detach().double().requires_grad_(), h0.detach().double().requires_grad_())
    assert torch.autograd.gradcheck(lambda x, h: native.minimal_scan(name == "minlstm", x, h, mask), double)


@pytest.mark.parametrize("name", NATIVE)
def test_whole_layers_equal_python_in_float32(name):
    """The whole-layer Function (projection through oneDNN, recurrence, weight gradients by the
    kernels' own product) against the Python path, float32."""
    torch.manual_seed(5)
    rec = Recurrent(CELLS[name], 7, 24, num_layers=2, bidirectional=True)
    x = torch.randn(3, 11, 7, requires_grad=True)
    lengths = torch.tensor([11, 6, 2])

    got, expected = _fused_and_python(rec, x, lengths)
    tolerance = 1e-3 if name == "lnlstm" else 1e-4  # float32: the norms' backward divides by the deviations
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)
