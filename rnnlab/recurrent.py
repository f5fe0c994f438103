"""Recurrent: runs a cell over time, with layers, directions, dropout, lengths and state.

Shape legend: B batch, T time, I input features, H hidden units, L layers, D directions (1 or 2).

    output, state = Recurrent(LSTMCell, I, H, num_layers=L, bidirectional=D == 2)(x, state, lengths)

    x        (B, T, I)       batch first, as everywhere in rnnlab
    lengths  (B,) or None    real length of each sequence, 1 <= lengths[b] <= T
    state    tuple of (L*D, B, H), one per ``cell.state_names``: (h,) or (h, c); None means zeros.
             Row ``layer * D + direction`` belongs to that layer and direction, as in torch.nn.
    output   (B, T, D*H)     the last layer's h_t, forward then backward direction; zero at steps
                             past a sequence's length
    state    tuple of (L*D, B, H): the state after each sequence's last real step (for the backward
             direction, after it has read the whole sequence back to step 0)

The same weights serve two implementations:

* the fused path (``forward`` whenever the cell has a torch kernel): one call to ``torch.lstm`` /
  ``torch.gru`` / ``torch.rnn_tanh`` / ``torch.rnn_relu`` exactly as ``torch.nn.LSTM`` makes it, so
  it runs at torch's speed (oneDNN on CPU, cuDNN on GPU); a ragged batch (``lengths``) of long
  sequences on CPU runs the unpacked kernel in stretches between its distinct lengths, 3-7x faster
  there than torch's packed-sequence kernel and equal to it (tested); otherwise it is packed;
* the scan path (``forward`` for the minimal cells of ``rnnlab.scan``, minGRU and minLSTM, whose
  gates read x_t only): each layer's input projected for all steps in one product, then the linear
  recurrence h_t = a_t h_{t-1} + b_t computed by ``rnnlab.scan.linear_scan``, in parallel over time;
* the explicit path (``forward_explicit``, ``trace``, ``stepper``): a Python loop over
  ``cell.recur``, which works for any cell and can record every gate. Tests hold them all equal.

Between layers, dropout with probability ``dropout`` is applied to each layer's output except the
last's, in training mode only (as torch.nn does).

``state_dict()`` uses torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse``...), so
``torch.nn.LSTM(...).load_state_dict(recurrent.state_dict())`` works, and so does the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab import bptt, native
from rnnlab.cells import Cell, GRUCell, LSTMCell, RNNCell, State
from rnnlab.errors import ConfigError

_TORCH_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
HANDWRITTEN_UP_TO = {"GRUCell": 256, "RNNCell": 256}  # largest H where the Python hand-written path beats torch on CPU
MAX_LAYERS = 64  # deeper stacks of recurrent layers do not train; a typo (1000000) fails here, not in memory


@dataclass
class Trace:
    """Everything the explicit path computed, for looking inside a network.

    ``tensors[(layer, direction)]`` maps each state name (h, c) and gate name (i, f, g, o or
    r, z, n) to a (B, T, H) tensor: the value at every step, in the input's time order (also for
    the backward direction). Steps past a sequence's length hold zeros.
    """

    output: Tensor
    state: State
    tensors: dict[tuple[int, int], dict[str, Tensor]]

    def get(self, name: str, layer: int = -1, direction: int = 0) -> Tensor:
        """One recorded quantity, e.g. ``trace.get("c", layer=0)`` -> (B, T, H)."""
        layers = sorted({k[0] for k in self.tensors})
        return self.tensors[(layers[layer], direction)][name]


class Recurrent(nn.Module):
    """A stack of recurrent cells run over time; see the module docstring for shapes.

    Args:
        cell: a cell class or factory called as ``cell(input_size, hidden_size)``, e.g.
            ``LSTMCell`` or ``functools.partial(RNNCell, nonlinearity="relu")``.
        input_size: I, features per step of the input.
        hidden_size: H, units per layer and direction.
        num_layers: L >= 1.
        bidirectional: run a second stack of cells from the end of each sequence to its start.
        dropout: probability of zeroing a unit of a layer's output before the next layer.
    """

    def __init__(
        self,
        cell: Callable[[int, int], Cell],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ConfigError(f"num_layers must be in [1, {MAX_LAYERS}], got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.cells = nn.ModuleList(
            cell(input_size if layer == 0 else hidden_size * self.num_directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.num_directions)
        )  # index layer * D + direction
        self.state_names = self.cells[0].state_names
        self.register_state_dict_post_hook(_to_torch_names)
        self.register_load_state_dict_pre_hook(_from_torch_names)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}"
        )

    @property
    def output_size(self) -> int:
        """D*H, the size of each step of the output."""
        return self.hidden_size * self.num_directions

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs torch's fused kernel (True for the plain RNN, LSTM and GRU cells)."""
        kernel = self.cells[0].fused_kernel()
        return kernel is not None and all(c.fused_kernel() is kernel for c in self.cells)

    @property
    def scanned(self) -> bool:
        """Whether ``forward`` computes the recurrence as a scan over time (the minimal cells)."""
        return all(hasattr(c, "coefficients") for c in self.cells)

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> State:
        """Zeros: a tuple of (L*D, B, H), one per state name."""
        like = self.cells[0].weight_ih
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        return tuple(torch.zeros(shape, dtype=dtype or like.dtype, device=device or like.device) for _ in self.state_names)

    # ------------------------------------------------------------------ forward paths

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """(B, T, I) -> ((B, T, D*H), state); the fused kernel when the cells have one."""
        state, lengths = self._check(x, state, lengths)
        if self.fused and not self._handwritten_wins(x, lengths):
            return self._run_fused(x, state, lengths)
        if self.scanned:
            return self._run_scan(x, state, lengths)
        output, state, _ = self._run_explicit(x, state, lengths, record=False, handwritten=self.handwritten)
        return output, state

    @property
    def handwritten(self) -> bool:
        """Whether every cell has a hand-written step gradient (``rnnlab.bptt``): the explicit path of
        ``forward`` then runs one autograd Function per layer instead of a graph of every step."""
        return all(bptt.supports(c) for c in self.cells)

    def _handwritten_wins(self, x: Tensor, lengths: Tensor | None = None) -> bool:
        """Whether, for a cell torch has a kernel for, the hand-written path is the faster one here:
        measured (benchmarks/recurrent_speed.py, tables handwritten and ragged), when training on a
        CPU. Through the fused kernels of rnnlab/native.py: the GRU and the vanilla RNN at every
        measured size (2.3-6.9x torch's kernels), and the LSTM on batches of mixed lengths (one masked
        pass beat the fused kernel run between distinct lengths, 1.6-2.4x); not the LSTM on equal
        lengths, where the kernels are about even with torch's oneDNN kernel (0.87-1.12x) and behind
        it at the character model's size (0.93-0.95x, table charlm). Without the fused kernels: the
        GRU and RNN up to ``HANDWRITTEN_UP_TO`` hidden units."""
        cell = self.cells[0]
        if x.device.type != "cpu" or not torch.is_grad_enabled() or not isinstance(cell, (GRUCell, RNNCell, LSTMCell)):
            return False
        if native.handles(cell, x, ()):
            return not isinstance(cell, LSTMCell) or (lengths is not None and bool((lengths != x.shape[1]).any()))
        return self.hidden_size <= HANDWRITTEN_UP_TO.get(type(cell).__name__, 0)

    def forward_fused(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """Same contract as ``forward``, always through torch's kernel (for the cells that have one)."""
        if not self.fused:
            raise ValueError(f"torch has no fused kernel for {type(self.cells[0]).__name__}")
        state, lengths = self._check(x, state, lengths)
        return self._run_fused(x, state, lengths)

    def forward_explicit(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """Same contract as ``forward``, always through the Python loop over ``cell.recur`` under autograd
        (the reference the other paths are tested against)."""
        state, lengths = self._check(x, state, lengths)
        output, state, _ = self._run_explicit(x, state, lengths, record=False)
        return output, state

    def forward_handwritten(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None):
        """Same contract as ``forward``, through the hand-written BPTT of ``rnnlab.bptt``."""
        if not self.handwritten:
            raise ValueError(f"{type(self.cells[0]).__name__} has no hand-written step gradient")
        state, lengths = self._check(x, state, lengths)
        output, state, _ = self._run_explicit(x, state, lengths, record=False, handwritten=True)
        return output, state

    def trace(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> Trace:
        """Run the explicit path and record every step's states and gates (see ``Trace``)."""
        state, lengths = self._check(x, state, lengths)
        output, state, tensors = self._run_explicit(x, state, lengths, record=True)
        return Trace(output, state, tensors)

    def step(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One time step, a pure function: x_t (B, I), state tuple of (L, B, H) (None: zeros) ->
        (y_t (B, H), the last layer's h_t; the new state, tuple of (L, B, H)).

        In inference (eval mode, no gradient) the LSTM, GRU and RNN run through torch's one-step
        functions (``torch.lstm_cell``...); otherwise the explicit cells (for one step either beats
        the sequence kernel's per-call set-up). Dropout between layers applies in training mode, as
        in ``forward``. Every step-by-step user calls
        this (or ``step_projected``): the stepper, the language model's generator, the decoder,
        scheduled sampling. Only a unidirectional network can be stepped.
        """
        if self.fused and not self.training and not torch.is_grad_enabled():
            return self._step_kernel(x, state)
        return self.step_projected(self.cells[0].project(x), state)

    def _step_kernel(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        """``step`` in inference through torch's one-step cell functions (``torch.lstm_cell``...): each
        layer's two products and its whole gate arithmetic in one C++ call, no Python per gate."""
        if self.bidirectional:
            raise ValueError("a bidirectional network needs the whole sequence; it cannot be stepped")
        if state is None:
            state = self.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        step = STEP_KERNELS[self.cells[0].fused_kernel()]
        layers = []
        for k, cell in enumerate(self.cells):
            weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            new = step(x, tuple(s[k] for s in state) if len(state) == 2 else state[0][k], *weights)
            layers.append(new if isinstance(new, tuple) else (new,))
            x = layers[-1][0]
        if len(layers) == 1:
            return x, tuple(s.unsqueeze(0) for s in layers[0])
        return x, tuple(torch.stack([layer[i] for layer in layers]) for i in range(len(state)))

    def step_projected(self, xw: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``step`` given the first layer's projected input xw = W_ih x_t + b_ih (B, G*H) (a caller
        that can look it up in a table, as the language model's generator does, saves a product)."""
        if self.bidirectional:
            raise ValueError("a bidirectional network needs the whole sequence; it cannot be stepped")
        if state is None:
            state = self.initial_state(xw.shape[0], dtype=xw.dtype, device=xw.device)
        layers = [self.cells[0].recur(xw, tuple(s[0] for s in state))]  # each a state of (B, H)
        for k, cell in enumerate(self.cells[1:], start=1):
            x = layers[-1][0]
            if self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)
            layers.append(cell.recur(cell.project(x), tuple(s[k] for s in state)))
        return layers[-1][0], tuple(torch.stack([layer[i] for layer in layers]) for i in range(len(layers[0])))

    def stepper(self, batch_size: int = 1, state: State | None = None) -> Stepper:
        """A ``Stepper`` that feeds this network one time step per call, keeping the state."""
        return Stepper(self, batch_size, state)

    # ------------------------------------------------------------------ checks

    def _check(self, x: Tensor, state: State | None, lengths: Tensor | None):
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        batch, steps = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError("expected at least one time step, got an input with T = 0")
        if state is None:
            state = self.initial_state(batch, dtype=x.dtype, device=x.device)
        else:
            if isinstance(state, Tensor):
                state = (state,)
            expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
            if len(state) != len(self.state_names) or any(tuple(s.shape) != expected for s in state):
                got = [tuple(s.shape) for s in state]
                raise ValueError(
                    f"expected a state of {len(self.state_names)} tensor(s) "
                    f"({', '.join(self.state_names)}) of shape {expected}, got {got}"
                )
            state = tuple(state)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")
            if lengths.shape != (batch,):
                raise ValueError(f"expected lengths of shape ({batch},), got {tuple(lengths.shape)}")
            if lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(f"lengths must lie in [1, {steps}], got min {int(lengths.min())} max {int(lengths.max())}")
            if bool((lengths == steps).all()):
                lengths = None  # nothing ragged: the unpacked kernels are faster
        return state, lengths

    # ------------------------------------------------------------------ fused

    def _flat_weights(self) -> list[Tensor]:
        return [getattr(c, name) for c in self.cells for name in _TORCH_PARAMS]

    def _run_fused(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        kernel = self.cells[0].fused_kernel()
        hx = state if len(state) == 2 else state[0]
        args = (self._flat_weights(), True, self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            result = kernel(x, hx, *args, True)  # batch_first=True
            return result[0], tuple(result[1:])
        if x.device.type == "cpu" and stretches_pay(lengths):
            return self._run_ragged_chunks(x, state, lengths)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(s.index_select(1, order) for s in state)
        result = kernel(packed.data, packed.batch_sizes, hx if len(hx) == 2 else hx[0], *args)
        packed_out = PackedSequence(result[0], packed.batch_sizes, order, unorder)
        output, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        return output, tuple(s.index_select(1, unorder) for s in result[1:])

    def _run_ragged_chunks(self, x: Tensor, state: State, lengths: Tensor) -> tuple[Tensor, State]:
        """A ragged batch through the unpacked kernel, one call per stretch between distinct lengths.

        On CPU torch's packed kernels (``pack_padded_sequence``) run several times slower than the
        unpacked ones (measured: 2-layer bidirectional LSTM 128, B 32, T 261: 2.05 s against 0.39 s
        forward+backward). So, with the batch sorted by length (longest first), each layer and
        direction runs the unpacked kernel over [t0, t1) for the sequences still running, where
        t0 < t1 are consecutive distinct lengths, and keeps the state of each sequence that ends at
        t1. The backward direction reverses each sequence within its length first. Exactly the
        same computation as the packed kernel, in at most (distinct lengths) calls per direction.
        """
        kernel = self.cells[0].fused_kernel()
        steps, device = x.shape[1], x.device
        order = torch.argsort(lengths, descending=True, stable=True)
        unorder = torch.argsort(order)
        lengths = lengths[order]  # (B,) longest first
        x = x.index_select(0, order.to(device))
        state = tuple(s.index_select(1, order.to(device)) for s in state)
        reverse = _reverse_index(steps, len(lengths), lengths, device) if self.bidirectional else None
        layer_input = x  # (B, T, I)
        finals: list[State] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                seq = layer_input if direction == 0 else _flip(layer_input.transpose(0, 1), reverse).transpose(0, 1)
                out, final = self._chunks(kernel, self.cells[k], seq, tuple(s[k] for s in state), lengths)
                if direction == 1:
                    out = _flip(out.transpose(0, 1), reverse).transpose(0, 1)
                outputs.append(out)
                finals.append(final)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (B, T, D*H)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        unorder = unorder.to(device)
        new_state = tuple(torch.stack([f[i] for f in finals]).index_select(1, unorder) for i in range(len(self.state_names)))
        return layer_input.index_select(0, unorder), new_state

    def _chunks(self, kernel, cell, seq: Tensor, state: State, lengths: Tensor) -> tuple[Tensor, State]:
        """One layer, one direction: seq (B, T, I) sorted by ``lengths`` (descending), state of (B, H)."""
        batch, steps = seq.shape[0], seq.shape[1]
        weights = [getattr(cell, name) for name in _TORCH_PARAMS]
        bounds = sorted(set(lengths.tolist()))  # distinct lengths, ascending
        pieces: list[Tensor] = []  # (B, t1 - t0, H) each, zero for the sequences already done
        ended: list[State] = []  # states of the sequences ending at each bound
        t0, h = 0, state
        for t1 in bounds:
            running = int((lengths >= t1).sum())  # the first `running` sequences reach t1
            still = int((lengths > t1).sum())
            hx = tuple(s[:running].unsqueeze(0) for s in h)  # (1, running, H)
            hx = hx if len(hx) == 2 else hx[0]
            # one layer, no dropout, one direction, batch first
            result = kernel(seq[:running, t0:t1], hx, weights, True, 1, 0.0, self.training, False, True)
            pieces.append(F.pad(result[0], (0, 0, 0, 0, 0, batch - running)))
            h = tuple(r[0] for r in result[1:])  # (running, H)
            ended.append(tuple(s[still:] for s in h))
            t0 = t1
        out = torch.cat(pieces, dim=1)  # (B, max length, H)
        if t0 < steps:
            out = F.pad(out, (0, 0, 0, steps - t0))
        final = tuple(torch.cat([e[i] for e in reversed(ended)]) for i in range(len(state)))  # longest first
        return out, final

    # ------------------------------------------------------------------ scan

    def _run_scan(self, x: Tensor, state: State, lengths: Tensor | None, parallel: bool | None = None):
        """Every layer and direction as one linear scan (``rnnlab.scan``). Past a sequence's length
        a_t = 1 and b_t = 0, so its state stays at its last real step's and the output is zeroed."""
        from rnnlab.scan import linear_scan

        batch, steps = x.shape[0], x.shape[1]
        D = self.num_directions
        mask = None  # (B, T, 1): True where a step is real
        if lengths is not None:
            mask = (torch.arange(steps)[None, :] < lengths[:, None]).to(x.device).unsqueeze(-1)
        reverse = _reverse_index(steps, batch, lengths, x.device) if D == 2 else None
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                cell = self.cells[k]
                seq = layer_input if direction == 0 else _flip_batch_first(layer_input, reverse)
                h = linear_scan(cell, cell.project(seq), state[0][k], mask, parallel)  # (B, T, H)
                finals.append((h[:, -1],))
                out = h if mask is None else h * mask
                outputs.append(out if direction == 0 else _flip_batch_first(out, reverse))
            layer_input = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)  # (B, T, D*H)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        return layer_input, (torch.stack([f[0] for f in finals]),)

    # ------------------------------------------------------------------ explicit

    def _run_explicit(self, x: Tensor, state: State, lengths: Tensor | None, record: bool, handwritten: bool = False):
        steps, batch = x.shape[1], x.shape[0]
        D = self.num_directions
        mask = None  # (T, B, 1): True where a step is real
        if lengths is not None:
            mask = (torch.arange(steps)[:, None] < lengths[None, :]).to(x.device).unsqueeze(-1)
        reverse = _reverse_index(steps, batch, lengths, x.device) if D == 2 else None
        layer_input = x.transpose(0, 1)  # (T, B, I): time-major inside the loop
        finals: list[State] = []
        tensors: dict[tuple[int, int], dict[str, Tensor]] = {}
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                cell = self.cells[k]
                seq = layer_input if direction == 0 else _flip(layer_input, reverse)
                if handwritten and not record:
                    out, final = bptt.layer(cell, seq, tuple(s[k] for s in state), mask)
                    recorded = {}
                else:
                    out, final, recorded = _scan(cell, seq, tuple(s[k] for s in state), mask, record)
                if direction == 1:
                    out = _flip(out, reverse)
                    recorded = {n: _flip(v, reverse) for n, v in recorded.items()}
                outputs.append(out)
                finals.append(final)
                if record:
                    tensors[(layer, direction)] = {n: v.transpose(0, 1) for n, v in recorded.items()}
            layer_input = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)  # (T, B, D*H)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        output = layer_input.transpose(0, 1).contiguous()  # (B, T, D*H)
        new_state = tuple(torch.stack([f[i] for f in finals]) for i in range(len(self.state_names)))
        return output, new_state, tensors


def _scan(cell: Cell, x: Tensor, state: State, mask: Tensor | None, record: bool):
    """Run one cell over time-major x (T, B, I) from ``state``.

    Returns the outputs (T, B, H) (zero where ``mask`` is False), the state after the last real
    step, and, if ``record``, every step's states and gates as (T, B, H) tensors.
    Iterates over ``unbind`` views: indexing xw[t] inside the loop would make backward quadratic in T.
    """
    xw = cell.project(x)  # (T, B, G*H): one matrix product for all steps
    h0, state0 = state[0], state
    outputs, states = [], []
    if mask is None:
        for xw_t in xw.unbind(0):
            state = cell.recur(xw_t, state)
            outputs.append(state[0])
            states.append(state)
    else:
        for xw_t, m_t in zip(xw.unbind(0), mask.unbind(0)):  # m_t (B, 1)
            new = cell.recur(xw_t, state)
            state = tuple(torch.where(m_t, n, s) for n, s in zip(new, state))
            outputs.append(new[0] * m_t)
            states.append(state)
    recorded: dict[str, Tensor] = {}
    if record:
        for i, name in enumerate(cell.state_names):
            recorded[name] = torch.stack([s[i] for s in states])  # (T, B, H)
        h_prev = torch.cat([h0.unsqueeze(0), recorded["h"][:-1]])  # (T, B, H): h_{t-1}
        if hasattr(cell, "gates_of"):  # gates that read more of the state than h (peepholes)
            previous = tuple(torch.cat([s0.unsqueeze(0), recorded[n][:-1]]) for s0, n in zip(state0, cell.state_names))
            recorded.update(zip(cell.gate_names, cell.gates_of(xw, previous)))
        else:
            recorded.update(zip(cell.gate_names, cell.gates(xw, h_prev)))
        if mask is not None:
            recorded = {name: value * mask for name, value in recorded.items()}
    return torch.stack(outputs), state, recorded


STEP_KERNELS = {  # torch's whole-sequence kernel -> its one-step function
    torch.lstm: torch.lstm_cell,
    torch.gru: torch.gru_cell,
    torch.rnn_tanh: torch.rnn_tanh_cell,
    torch.rnn_relu: torch.rnn_relu_cell,
}


def full_lengths(inputs: Tensor) -> Tensor:
    """(B,) lengths of a batch without padding: every sequence is T long (inputs (B, T, ...))."""
    return torch.full((inputs.shape[0],), inputs.shape[1], dtype=torch.int64)


def stretches_pay(lengths: Tensor) -> bool:
    """Whether a ragged batch should run in stretches between distinct lengths rather than packed.

    Each stretch is one kernel call, so it pays when stretches are long: measured on CPU (bidirectional
    LSTM, ``benchmarks/recurrent_speed.py``), 3.0x faster than packed at B 32, T 260 (about 8 steps per
    stretch) and 7.0x at B 64, T 400, but 0.76x at B 64, T 30 (about one step per stretch).
    """
    return int(lengths.max()) >= 4 * len(set(lengths.tolist()))


def _reverse_index(steps: int, batch: int, lengths: Tensor | None, device) -> Tensor | None:
    """(T, B) time indices that reverse each sequence within its own length (padding stays put)."""
    if lengths is None:
        return None
    t = torch.arange(steps)[:, None]  # (T, 1)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    return idx.to(device)


def _flip_batch_first(x: Tensor, index: Tensor | None) -> Tensor:
    """``_flip`` for batch-first x (B, T, F)."""
    return _flip(x.transpose(0, 1), index).transpose(0, 1)


def _flip(x: Tensor, index: Tensor | None) -> Tensor:
    """Reverse time-major x (T, B, F) per sequence; ``index`` from ``_reverse_index`` (None: all of T)."""
    if index is None:
        return x.flip(0)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


class Stepper:
    """Feeds a unidirectional ``Recurrent`` one time step per call, keeping its state.

        stepper = recurrent.stepper(batch_size=1)
        y_t = stepper.step(x_t)        # x_t (B, I) -> y_t (B, H), the last layer's h_t
        stepper.state                  # tuple of (L, B, H), as ``Recurrent.forward`` returns it

    A thin holder of the state around ``Recurrent.step``.
    """

    def __init__(self, recurrent: Recurrent, batch_size: int = 1, state: State | None = None) -> None:
        if recurrent.bidirectional:
            raise ValueError("a bidirectional network needs the whole sequence; it cannot be stepped")
        self.recurrent = recurrent
        self.state = recurrent.initial_state(batch_size) if state is None else tuple(state)

    def step(self, x: Tensor) -> Tensor:
        y, self.state = self.recurrent.step(x, self.state)
        return y


# ---------------------------------------------------------------------- torch.nn names


def _torch_names(module: Recurrent) -> dict[str, str]:
    """{'cells.{k}.{param}': '{param}_l{layer}{suffix}'} for the four torch.nn parameters."""
    names = {}
    for k in range(len(module.cells)):
        layer, direction = divmod(k, module.num_directions)
        suffix = "_reverse" if direction else ""
        for p in _TORCH_PARAMS:
            names[f"cells.{k}.{p}"] = f"{p}_l{layer}{suffix}"
    return names


def _to_torch_names(module: Recurrent, state_dict, prefix: str, local_metadata) -> None:
    for ours, theirs in _torch_names(module).items():
        if prefix + ours in state_dict:
            state_dict[prefix + theirs] = state_dict.pop(prefix + ours)


def _from_torch_names(module: Recurrent, state_dict, prefix: str, *args) -> None:
    for ours, theirs in _torch_names(module).items():
        if prefix + theirs in state_dict:
            state_dict[prefix + ours] = state_dict.pop(prefix + theirs)


def from_torch(module: nn.RNNBase) -> Recurrent:
    """A ``Recurrent`` with the same configuration and weights as a torch.nn.RNN/LSTM/GRU."""
    if not module.bias or getattr(module, "proj_size", 0) or not module.batch_first:
        raise ValueError("from_torch needs bias=True, proj_size=0 and batch_first=True")
    if isinstance(module, nn.LSTM):
        cell = LSTMCell
    elif isinstance(module, nn.GRU):
        cell = GRUCell
    else:
        nonlinearity = module.nonlinearity

        def cell(i: int, h: int) -> Cell:
            return RNNCell(i, h, nonlinearity)

    rec = Recurrent(cell, module.input_size, module.hidden_size, module.num_layers, module.bidirectional, module.dropout)
    rec.load_state_dict(module.state_dict())
    return rec


def to_torch(rec: Recurrent) -> nn.RNNBase:
    """A torch.nn.RNN/LSTM/GRU (batch_first) with the same configuration and weights."""
    if not rec.fused:
        raise ValueError("only the plain RNN, LSTM and GRU cells have a torch.nn counterpart")
    cell = rec.cells[0]
    kwargs = dict(num_layers=rec.num_layers, bidirectional=rec.bidirectional, dropout=rec.dropout, batch_first=True)
    if isinstance(cell, LSTMCell):
        module = nn.LSTM(rec.input_size, rec.hidden_size, **kwargs)
    elif isinstance(cell, GRUCell):
        module = nn.GRU(rec.input_size, rec.hidden_size, **kwargs)
    else:
        module = nn.RNN(rec.input_size, rec.hidden_size, nonlinearity=cell.nonlinearity, **kwargs)
    weight = cell.weight_hh
    module.to(dtype=weight.dtype, device=weight.device)
    module.load_state_dict(rec.state_dict())
    return module
