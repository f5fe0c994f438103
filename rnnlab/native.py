"""rnnlab's fused CPU kernels (rnnlab/csrc/recurrence.cpp): the hand-written BPTT of rnnlab/bptt.py
with each step's elementwise maths in one SIMD pass instead of ten tensor operations and each
step's matrix product formed by the kernels themselves (W_hh packed once, every thread owning rows
of the batch for the whole sequence), buffers pooled; the weight gradients as one product over all
steps each; and the minimal RNNs' scan with its coefficients formed inside the loop.

    recurrence(cell, xw, state, mask)   a layer's recurrence from its projected input (bptt.recurrence)
    layer(cell, seq, state, mask)       projection and recurrence as one Function, whose backward
                                        forms dL/dW_ih and dL/dW_hh with the kernels' own product
    minimal_scan(lstm, xw, h0, mask)    minGRU / minLSTM (rnnlab.scan.linear_scan)
    input_linear(x, W, b)               F.linear through oneDNN (float32 on a CPU)

The kernels are C++ built on first use with torch's extension builder (a C++ compiler and ninja
must be present; about 15 seconds, once per machine, source and torch version: the build is cached
under ``$RNNLAB_CACHE`` or ``~/.cache/rnnlab/native``). Where they cannot be built, or with
``RNNLAB_NATIVE=0``, rnnlab says so once and runs the same algorithms in Python (``rnnlab.bptt``,
``rnnlab.scan``): the results are the same, only slower. While a model is traced for export they
stand aside (ONNX knows torch's operators, not these).

Cells opt in with ``native_kernel()`` returning the kernel's name ("lstm", "peephole", "lnlstm",
"gru", "rnn_tanh", "rnn_relu"); minimal cells with ``native_kind``. ``handles`` says when the
kernels run (CPU, float32/float64, no autocast). Tests (tests/test_native.py) hold them equal to
the Python paths in float32 and float64 (1e-10) with layers, directions and ragged lengths, and
to ``gradcheck``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, ...]
SOURCE = Path(__file__).with_name("csrc") / "recurrence.cpp"
KERNELS = ("lstm", "peephole", "lnlstm", "gru", "rnn_tanh", "rnn_relu")
EPS = 1e-5  # layer norm's epsilon (rnnlab.variants.EPS, as torch.nn.LayerNorm)

_ops = None  # torch.ops.rnnlab_native once loaded; False once it failed
_why_not = ""
_enabled = True  # False inside ``disabled()``


def _flags(openmp: bool = True) -> list[str]:
    """Compiler flags: ATen's widest vectors this CPU runs (as torch picks them), else portable code;
    OpenMP, which ATen's ``parallel_for`` is written in for torch's CPU builds (without it the
    kernels run on one thread: correct, slower)."""
    flags = ["-O3"] + (["-fopenmp"] if openmp else [])
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        flags += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY=AVX512"]
        flags += ["-DCPU_CAPABILITY_AVX512"]
    elif capability == "AVX2":
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    else:
        flags += ["-DCPU_CAPABILITY=DEFAULT"]
    return flags


def _build_directory(flags: list[str]) -> tuple[str, Path]:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode() + torch.__version__.encode()).hexdigest()[:12]
    root = Path(os.environ.get("RNNLAB_CACHE") or Path.home() / ".cache" / "rnnlab") / "native" / key
    root.mkdir(parents=True, exist_ok=True)
    return f"rnnlab_native_{key}", root


def _find_ninja() -> None:
    """Put ninja on PATH if it is installed beside this Python (``pip install ninja`` in a virtual
    environment that is not activated) but not on PATH: torch's builder looks for it there."""
    if shutil.which("ninja") is None:
        here = Path(sys.executable).parent
        if (here / "ninja").exists():
            os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"


def _build() -> None:
    """Build (or load from the cache) and register the kernels: with OpenMP, or, where the compiler
    has none (Apple's clang), without it."""
    from torch.utils import cpp_extension

    _find_ninja()
    for openmp in (True, False):
        flags = _flags(openmp)
        name, root = _build_directory(flags)
        try:
            cpp_extension.load(
                name,
                [str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"] if openmp else [],
                build_directory=str(root),
                is_python_module=False,
                verbose=False,
            )
            return
        except Exception:
            if not openmp:
                raise


def load():
    """torch.ops.rnnlab_native, building the kernels on first use; None (and one warning) if they cannot be."""
    global _ops, _why_not
    if _ops is None:
        if os.environ.get("RNNLAB_NATIVE", "1") == "0":
            _ops, _why_not = False, "RNNLAB_NATIVE=0"
        else:
            try:
                _build()
                _ops = torch.ops.rnnlab_native
            except Exception as error:  # no compiler, no ninja, a read-only cache: the Python path still works
                _ops, _why_not = (
                    False,
                    f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}",
                )
                warnings.warn(
                    f"rnnlab: the fused CPU kernels could not be built ({_why_not}); running the same BPTT in Python "
                    "(slower). Set RNNLAB_NATIVE=0 to skip the build.",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _ops or None


def available() -> bool:
    """Whether the fused kernels are built and loaded (building them if need be)."""
    return load() is not None


def why_not() -> str:
    """Why the kernels are not in use ('' if they are, or were not tried yet)."""
    return _why_not


def onednn_available() -> bool:
    """Whether torch was built with oneDNN (its x86 and ARM CPU builds are)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _on() -> bool:
    """The fused paths are on: not switched off, and not being traced for export (ONNX knows torch's
    operators, not these kernels)."""
    return _enabled and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


@contextlib.contextmanager
def disabled():
    """Within this block rnnlab runs its Python paths only (for comparisons and tests)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def _cpu_float(t: Tensor) -> bool:
    """The fused paths are on and ``t`` is what they run on: a float32/float64 CPU tensor, no autocast."""
    return (
        _on()
        and t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
    )


def handles(cell, xw: Tensor, state: State) -> bool:
    """Whether ``recurrence`` can run this cell on these tensors."""
    kernel = getattr(cell, "native_kernel", lambda: None)()
    same_dtype = all(s.dtype == xw.dtype for s in state) and cell.weight_hh.dtype == xw.dtype
    return kernel in KERNELS and _cpu_float(xw) and same_dtype and available()


def input_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear for a layer's input projection: through oneDNN (``linear``) for float32 on a CPU while
    the fused kernels are on, else F.linear itself."""
    if _cpu_float(x) and x.dtype == torch.float32 == weight.dtype and onednn_available():
        return linear(x, weight, bias)
    return F.linear(x, weight, bias)


def _linear2d(x2: Tensor, weight: Tensor, bias: Tensor | None, onednn: bool) -> Tensor:
    """x2 W^T + b for a matrix x2 (N, I) and W (O, I): through oneDNN when ``onednn``, else F.linear."""
    if onednn:
        return torch.ops.mkldnn._linear_pointwise(x2, weight.contiguous(), bias, "none", [], "")
    return F.linear(x2, weight, bias)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b, as F.linear, through oneDNN's matrix product (float32 on CPU): (..., I) -> (..., N).

    The input projection of a whole sequence is one large GEMM; oneDNN ran it at 248 GFLOP/s where
    the BLAS behind F.linear reached 140 (8192 x 512 x 2048, this CPU), and dL/dx at 306 vs 189.
    dL/dW goes through the kernels' own product when they are built (``_weight_gradient``)."""
    return _Linear.apply(x, weight, bias)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1]).contiguous()  # (N, I)
        y = _linear2d(x2, weight, bias, onednn=True)
        ctx.save_for_backward(x2, weight)
        ctx.shape, ctx.has_bias = x.shape, bias is not None
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_y: Tensor):
        x2, weight = ctx.saved_tensors
        d2 = d_y.reshape(-1, d_y.shape[-1]).contiguous()  # (N, O)
        d_x = d_w = d_b = None
        if ctx.needs_input_grad[0]:
            d_x = _linear2d(d2, weight.t(), None, onednn=True).view(ctx.shape)
        if ctx.needs_input_grad[1]:
            d_w = _weight_gradient(d2, x2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            d_b = d2.sum(0)
        return d_x, d_w, d_b


def scan_handles(a: Tensor) -> bool:
    """Whether ``scan`` and ``minimal_scan`` run on these tensors (CPU, float32/float64)."""
    return _cpu_float(a) and available()


def scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + b_t: a, b (B, T, H), h0 (B, H) -> h (B, T, H), one fused multiply-add per
    element each way, a thread per sequence (``rnnlab.scan.scan_sequential``'s gradient)."""
    return _Scan.apply(a, b, h0)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        a, h0 = a.contiguous(), h0.contiguous()
        out = load().scan_forward(a, b, h0)
        ctx.save_for_backward(a, out, h0)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):
        a, out, h0 = ctx.saved_tensors
        return load().scan_backward(d_out, a, out, h0)


def minimal_scan(lstm: bool, xw: Tensor, h0: Tensor, mask: Tensor | None) -> Tensor:
    """A minGRU (``lstm`` False) or minLSTM layer's whole scan from its projected input, with the
    coefficients (a_t, b_t) formed inside the loop, forward and backward: xw (B, T, 2H or 3H),
    h0 (B, H), mask (B, T, 1) True at real steps -> h (B, T, H). Equal to ``rnnlab.scan.linear_scan``."""
    return _Minimal.apply(lstm, _mask(mask, xw.dtype), xw, h0)


class _Minimal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lstm: bool, mask, xw: Tensor, h0: Tensor) -> Tensor:
        xw, h0 = xw.contiguous(), h0.contiguous()
        out = load().minimal_forward(xw, h0, mask, lstm)
        ctx.lstm, ctx.mask = lstm, mask
        ctx.save_for_backward(xw, out, h0)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):
        xw, out, h0 = ctx.saved_tensors
        d_xw, d_h0 = load().minimal_backward(d_out, xw, out, h0, ctx.mask, ctx.lstm)
        return None, None, d_xw, d_h0


def _mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(T, B, 1) or (T, B) booleans (or batch-first, (B, T, 1)) -> 2-D 0/1 in the kernels' dtype."""
    return None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).to(dtype).contiguous()


def recurrence(cell, xw: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """``bptt.recurrence`` through the fused kernels: xw (T, B, G*H) -> (outputs (T, B, H), final state)."""
    extra = tuple(cell.extra_parameters())  # peepholes (p_i, p_f, p_o); layer norm (gamma_h, b_hh, gamma_c, beta_c)
    m = _mask(mask, xw.dtype)
    result = _Native.apply(
        cell.native_kernel(), m, len(state), xw.contiguous(), *state, cell.weight_hh, cell.hh_bias(), *extra
    )
    return result[0], tuple(result[1:])


def layer(cell, seq: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """A whole layer through the fused kernels, input projection included: seq (T, B, I) ->
    (outputs (T, B, H), final state), as ``recurrence(cell, cell.project(seq), ...)`` for a cell whose
    projection is the plain W_ih x + b_ih. One autograd Function, so that its backward can form
    dL/dW_ih and dL/dW_hh with the kernels' own product (``_weight_gradient``)."""
    extra = tuple(cell.extra_parameters())
    m = _mask(mask, seq.dtype)
    result = _Layer.apply(
        cell.native_kernel(),
        m,
        len(state),
        seq,
        cell.weight_ih,
        cell.bias_ih,
        *state,
        cell.weight_hh,
        cell.hh_bias(),
        *extra,
    )
    return result[0], tuple(result[1:])


def _large_onednn(dtype: torch.dtype) -> bool:
    """Whether the products over all steps (input projections, dL/dx) go through oneDNN."""
    return dtype == torch.float32 and onednn_available()


def _weight_gradient(d: Tensor, a: Tensor) -> Tensor:
    """dL/dW = d^T a summed over all steps and rows: d (N, G), a (N, K) -> (G, K). Through the
    kernels' own product where they are built (neither operand transposed: tiles of dL/dW sum over N
    in registers), else the BLAS. Measured on this 2-core CPU, one process, at (N, G, K) from
    (4096, 512, 128) to (8192, 2048, 512): 270-430 GFLOP/s, where the BLAS behind ``d.t() @ a``
    reached 155-195 and oneDNN on copies transposed in C++ 195-320 (transposes included)."""
    if available():
        return load().weight_gradient(d, a)
    return d.t() @ a


def _forward(ctx, kernel: str, mask, xw: Tensor, state: State, weight_hh: Tensor, bias, extra):
    """The kernels' forward: ((outputs (T, B, H), *final state), the tensors backward needs)."""
    ops = load()
    ctx.kernel, ctx.mask, ctx.has_bias = kernel, mask, bias is not None
    ctx.large_onednn = _large_onednn(xw.dtype)
    if kernel in ("lstm", "peephole"):
        peep = torch.stack(extra).contiguous() if kernel == "peephole" else None  # (3, H)
        out, hs, cs, gates, tanh_c = ops.lstm_forward(xw, state[0], state[1], weight_hh, bias, peep, mask)
        return (out, hs[-1].clone(), cs[-1].clone()), (weight_hh, peep, hs, cs, gates, tanh_c)
    if kernel == "lnlstm":
        norm = torch.cat(extra).contiguous()  # gamma_h, b_hh (4H each), gamma_c, beta_c (H each)
        saved = ops.lnlstm_forward(xw, state[0], state[1], weight_hh, norm, EPS, mask)
        out, hs, cs = saved[:3]
        return (out, hs[-1].clone(), cs[-1].clone()), (weight_hh, norm, *saved[1:])
    if kernel == "gru":
        out, hs, gates, h_n = ops.gru_forward(xw, state[0], weight_hh, bias, mask)
        return (out, hs[-1].clone()), (weight_hh, hs, gates, h_n)
    out, hs = ops.rnn_forward(xw, state[0], weight_hh, bias, mask, kernel == "rnn_relu")
    return (out, hs[-1].clone()), (weight_hh, hs)


def _backward(ctx, saved, d_out: Tensor, d_final) -> tuple[Tensor, Tensor, tuple, list, Tensor]:
    """The kernels' backward: (dL/dxw, dL/dhw (T, B, G*H), dL/dstate_0, the extra parameters'
    gradients, hs (T+1, B, H))."""
    ops, kernel, mask = load(), ctx.kernel, ctx.mask
    d_final = [torch.zeros_like(d_out[0]) if d is None else d.contiguous() for d in d_final]
    d_out = d_out.contiguous()
    extra: list[Tensor] = []
    if kernel in ("lstm", "peephole"):
        weight_hh, peep, hs, cs, gates, tanh_c = saved
        d_a, d_h0, d_c0 = ops.lstm_backward(d_out, *d_final, weight_hh, peep, mask, cs, gates, tanh_c)
        d_xw = d_hw = d_a
        d_state = (d_h0, d_c0)
        if peep is not None:  # dL/dp = sum over steps and rows of dL/da_gate * the cell it looked at
            H = d_h0.shape[1]
            extra = [
                (d_a[..., :H] * cs[:-1]).sum((0, 1)),
                (d_a[..., H : 2 * H] * cs[:-1]).sum((0, 1)),
                (d_a[..., 3 * H :] * cs[1:]).sum((0, 1)),
            ]
    elif kernel == "lnlstm":
        weight_hh, norm, hs, cs, gates, xhat_h, rstd_h, xhat_c, rstd_c, tanh_c = saved
        d_xw, d_hw, d_norm, d_h0, d_c0 = ops.lnlstm_backward(
            d_out, *d_final, weight_hh, norm, mask, cs, gates, xhat_h, rstd_h, xhat_c, rstd_c, tanh_c
        )
        d_state = (d_h0, d_c0)
        H = d_h0.shape[1]
        extra = list(d_norm.split([4 * H, 4 * H, H, H]))  # gamma_h, b_hh, gamma_c, beta_c
    elif kernel == "gru":
        weight_hh, hs, gates, h_n = saved
        d_xw, d_hw, d_h0 = ops.gru_backward(d_out, *d_final, weight_hh, mask, hs, gates, h_n)
        d_state = (d_h0,)
    else:
        weight_hh, hs = saved
        d_xw, d_h0 = ops.rnn_backward(d_out, *d_final, weight_hh, mask, hs, kernel == "rnn_relu")
        d_hw = d_xw
        d_state = (d_h0,)
    return d_xw, d_hw, d_state, extra, hs


class _Native(torch.autograd.Function):
    """The recurrence of one layer from its projected input xw (T, B, G*H)."""

    @staticmethod
    def forward(ctx, kernel: str, mask, n_state: int, xw: Tensor, *tensors):
        state = tuple(s.contiguous() for s in tensors[:n_state])
        weight_hh, bias, extra = tensors[n_state].contiguous(), tensors[n_state + 1], tensors[n_state + 2 :]
        result, saved = _forward(ctx, kernel, mask, xw, state, weight_hh, bias, extra)
        ctx.save_for_backward(*saved)
        return result

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor, *d_final):
        d_xw, d_hw, d_state, extra, hs = _backward(ctx, ctx.saved_tensors, d_out, d_final)
        flat_d_hw = d_hw.reshape(-1, d_hw.shape[-1])  # (T*B, G*H)
        d_weight_hh = _weight_gradient(flat_d_hw, hs[:-1].reshape(-1, hs.shape[-1]))  # ONE GEMM
        d_bias = flat_d_hw.sum(0) if ctx.has_bias else None
        return (None, None, None, d_xw, *d_state, d_weight_hh, d_bias, *extra)


class _Layer(torch.autograd.Function):
    """Projection and recurrence of one layer from its input seq (T, B, I)."""

    @staticmethod
    def forward(ctx, kernel: str, mask, n_state: int, seq: Tensor, weight_ih: Tensor, bias_ih, *tensors):
        steps, batch, inputs = seq.shape
        x2 = seq.reshape(steps * batch, inputs).contiguous()  # (T*B, I)
        xw = _linear2d(x2, weight_ih, bias_ih, _large_onednn(seq.dtype))  # (T*B, G*H)
        state = tuple(s.contiguous() for s in tensors[:n_state])
        weight_hh, bias, extra = tensors[n_state].contiguous(), tensors[n_state + 1], tensors[n_state + 2 :]
        result, saved = _forward(ctx, kernel, mask, xw.view(steps, batch, -1), state, weight_hh, bias, extra)
        ctx.n_kernel = len(saved)
        ctx.save_for_backward(*saved, x2, weight_ih)
        ctx.has_bias_ih, ctx.seq_shape = bias_ih is not None, seq.shape
        return result

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor, *d_final):
        saved = ctx.saved_tensors
        x2, weight_ih = saved[ctx.n_kernel :]
        d_xw, d_hw, d_state, extra, hs = _backward(ctx, saved[: ctx.n_kernel], d_out, d_final)
        G = d_xw.shape[-1]
        flat_d_xw, flat_d_hw = d_xw.reshape(-1, G), d_hw.reshape(-1, G)  # (T*B, G*H)
        d_x = None  # dL/dx = dL/dxw W_ih, unless the input asks for no gradient (a first layer's data)
        if ctx.needs_input_grad[3]:
            d_x = _linear2d(flat_d_xw, weight_ih.t(), None, ctx.large_onednn).view(ctx.seq_shape)
        h_prev = hs[:-1].reshape(-1, hs.shape[-1])  # (T*B, H)
        d_weight_ih = _weight_gradient(flat_d_xw, x2)
        d_weight_hh = _weight_gradient(flat_d_hw, h_prev)
        sum_d_xw = flat_d_xw.sum(0)  # both biases' gradient when dL/dhw is dL/dxw
        d_bias_ih = sum_d_xw if ctx.has_bias_ih else None
        d_bias_hh = (sum_d_xw if d_hw is d_xw else flat_d_hw.sum(0)) if ctx.has_bias else None
        grads = (d_x, d_weight_ih, d_bias_ih, *d_state, d_weight_hh, d_bias_hh, *extra)
        return (None, None, None, *grads)
