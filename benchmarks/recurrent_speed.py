"""Forward+backward speed of rnnlab's Recurrent against bare torch.nn.LSTM / GRU / RNN, same run.

    python benchmarks/recurrent_speed.py [--repeats 7] [--threads 2] [--tables dense ragged handwritten]

For each cell and size it times one forward and backward pass of (B, T, H) -> (B, T, H), with the
same weights, through: bare torch.nn, rnnlab's fused path (``Recurrent.forward``) and rnnlab's
explicit Python loop (``Recurrent.forward_explicit``). It prints tokens/s and the ratio to torch.nn
(goal: fused >= 0.95x). Calls are interleaved and the median of the repeats is used.

The handwritten table times the explicit path three ways: autograd through the Python loop
(``forward_explicit``), the hand-written BPTT of rnnlab/bptt.py with every step's maths as torch
operations from Python (``forward_handwritten`` inside ``native.disabled()``), and the same BPTT
through the fused C++ kernels of rnnlab/native.py (``forward_handwritten``, the default on CPU),
for the three torch cells (against their own torch kernel) and the cells torch has no kernel for
(layer-norm LSTM, peephole LSTM: against torch.nn.LSTM of the same size), with the GFLOP/s the
fused kernels reach beside a large sgemm's, measured in the same run. It is where
``Recurrent._handwritten_wins`` (GRU and RNN: fused kernels; ``HANDWRITTEN_UP_TO`` without them)
comes from.

The charlm table times the same at the default character model's layer (input 64, H 768, B 32,
T 128): the LSTM, the layer-norm LSTM and the GRU through the fused kernels against torch.nn.LSTM
(GRU: torch.nn.GRU).

The ragged table times bidirectional LSTMs over batches of mixed lengths (lengths uniform in
[T/5, T]): torch.nn over a packed sequence (``pack_padded_sequence``, the usual way) against
rnnlab's fused path, which runs torch's unpacked kernel between distinct lengths
(``forward_fused``), and ``Recurrent(x, lengths=...)``, which in training on a CPU takes one masked
pass of the fused kernels of rnnlab/native.py instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians  # noqa: E402

from rnnlab import native  # noqa: E402
from rnnlab.cells import CELLS  # noqa: E402
from rnnlab.memory import keep_freed_memory  # noqa: E402
from rnnlab.recurrent import Recurrent, from_torch  # noqa: E402

SIZES = [(32, 128, 256), (64, 128, 512)]  # (B, T, H)
RAGGED = [(32, 260, 80, 128, 2), (64, 400, 128, 128, 1), (64, 30, 256, 256, 2)]  # (B, T, I, H, layers)
MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def fwd_bwd(fn, x):
    def call():
        out, _ = fn(x)
        out.sum().backward()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=["dense", "ragged", "handwritten", "charlm"],
        default=["dense", "ragged", "handwritten", "charlm"],
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # as rnnlab's commands run: freed memory kept for reuse (RNNLAB_KEEP_MEMORY=0: glibc's default)
    print("allocator: " + ("freed memory kept (rnnlab/memory.py)" if keep_freed_memory() else "glibc's default"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, median of {args.repeats}")
    if "dense" in args.tables:
        dense(args.repeats)
    if "ragged" in args.tables:
        ragged(args.repeats)
    if "handwritten" in args.tables:
        handwritten(args.repeats)
    if "charlm" in args.tables:
        charlm(args.repeats)


def dense(repeats: int) -> None:
    print(
        f"{'cell':5} {'B':>3} {'T':>4} {'H':>4} | {'torch.nn tok/s':>14} | {'fused tok/s':>11} {'ratio':>6} | "
        f"{'explicit tok/s':>14} {'ratio':>6}"
    )
    worst = float("inf")
    for name, cls in MODULES.items():
        for B, T, H in SIZES:
            torch.manual_seed(0)
            ref = cls(H, H, batch_first=True)
            ours = from_torch(ref)
            x = torch.randn(B, T, H, requires_grad=True)
            times = interleaved_medians(
                {
                    "torch": fwd_bwd(ref, x),
                    "fused": fwd_bwd(ours.forward_fused, x),
                    "explicit": fwd_bwd(ours.forward_explicit, x),
                },
                repeats=repeats,
            )
            tps = {k: B * T / v for k, v in times.items()}
            r_fused, r_explicit = tps["fused"] / tps["torch"], tps["explicit"] / tps["torch"]
            worst = min(worst, r_fused)
            print(
                f"{name:5} {B:>3} {T:>4} {H:>4} | {tps['torch']:>14,.0f} | {tps['fused']:>11,.0f} {r_fused:>5.2f}x | "
                f"{tps['explicit']:>14,.0f} {r_explicit:>5.2f}x"
            )
    print(f"slowest fused ratio: {worst:.2f}x (goal >= 0.95x)")


HANDWRITTEN_SIZES = [(32, 128, 256), (64, 128, 512), (16, 512, 128), (32, 128, 128)]  # (B, T, H)
GEMMS_PER_TOKEN = {"lstm": 4, "gru": 3, "rnn": 1, "lnlstm": 4, "peephole": 4}  # gates: G of (G*H, H) products


def sgemm_peak(repeats: int) -> float:
    """GFLOP/s of a 1024^3 float32 matrix product, the machine's practical peak for these threads."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = interleaved_medians({"mm": lambda: a @ b}, repeats=repeats)["mm"]
    return 2 * 1024**3 / seconds / 1e9


def handwritten(repeats: int) -> None:
    peak = sgemm_peak(repeats)
    print(f"hand-written BPTT (rnnlab/bptt.py); sgemm 1024^3 on these threads: {peak:.0f} GFLOP/s")
    print(f"fused kernels (rnnlab/native.py): {'built' if native.available() else 'NOT available: ' + native.why_not()}")
    print(
        f"{'cell':8} {'B':>3} {'T':>4} {'H':>4} | {'reference':>15} {'tok/s':>9} | {'autograd loop':>13} | "
        f"{'Python BPTT':>11} | {'fused kernels':>13} {'GFLOP/s':>8}"
    )
    for name in GEMMS_PER_TOKEN:
        for B, T, H in HANDWRITTEN_SIZES:
            torch.manual_seed(0)
            reference = MODULES.get(name, nn.LSTM)(H, H, batch_first=True)
            ours = Recurrent(CELLS[name], H, H)
            x = torch.randn(B, T, H, requires_grad=True)

            def python_bptt(ours=ours, x=x):
                with native.disabled():
                    fwd_bwd(ours.forward_handwritten, x)()

            times = interleaved_medians(
                {
                    "torch": fwd_bwd(reference, x),
                    "autograd": fwd_bwd(ours.forward_explicit, x),
                    "python": python_bptt,
                    "fused": fwd_bwd(ours.forward_handwritten, x),
                },
                repeats=repeats,
            )
            tps = {k: B * T / v for k, v in times.items()}
            # forward: input and hidden products; backward: twice that (inputs' and weights' gradients)
            flops = 3 * 2 * GEMMS_PER_TOKEN[name] * H * (H + H) * B * T
            ref_name = f"torch.nn.{type(reference).__name__}"
            print(
                f"{name:8} {B:>3} {T:>4} {H:>4} | {ref_name:>15} {tps['torch']:>9,.0f} | "
                f"{tps['autograd'] / tps['torch']:>12.2f}x | {tps['python'] / tps['torch']:>10.2f}x | "
                f"{tps['fused'] / tps['torch']:>12.2f}x {flops / times['fused'] / 1e9:>8.1f}",
                flush=True,
            )


CHARLM_SIZE = (32, 128, 64, 768)  # (B, T, I, H): the default character model's layer and batch


def charlm(repeats: int) -> None:
    """The fused kernels against torch's kernel at the default character model's size, which is
    what ``Recurrent._handwritten_wins`` weighs for the LSTM on equal lengths."""
    B, T, In, H = CHARLM_SIZE
    print(f"the character model's layer: B {B}, T {T}, input {In}, H {H} (forward + backward, ms per pass)")
    print(f"{'cell':8} | {'reference':>15} {'ms':>7} | {'fused kernels ms':>16} {'ratio':>6}")
    for name in ("lstm", "lnlstm", "gru"):
        torch.manual_seed(0)
        reference = MODULES.get(name, nn.LSTM)(In, H, batch_first=True)
        ours = Recurrent(CELLS[name], In, H)
        x = torch.randn(B, T, In)
        times = interleaved_medians({"torch": fwd_bwd(reference, x), "fused": fwd_bwd(ours.forward_handwritten, x)}, repeats)
        ref_name = f"torch.nn.{type(reference).__name__}"
        print(
            f"{name:8} | {ref_name:>15} {1e3 * times['torch']:>7.1f} | {1e3 * times['fused']:>16.1f} "
            f"{times['torch'] / times['fused']:>5.2f}x",
            flush=True,
        )


def ragged(repeats: int) -> None:
    print("bidirectional LSTM, ragged batches (lengths uniform in [T/5, T])")
    head = f"{'B':>3} {'T':>4} {'I':>4} {'H':>4} {'L':>2} | {'torch.nn packed tok/s':>21} | {'fused by length':>15} |"
    print(f"{head} {'rnnlab tok/s':>12} {'ratio':>6}")
    for B, T, In, H, layers in RAGGED:
        tps = ragged_case(B, T, In, H, layers, repeats)
        print(
            f"{B:>3} {T:>4} {In:>4} {H:>4} {layers:>2} | {tps['torch']:>21,.0f} | "
            f"{tps['by_length'] / tps['torch']:>14.2f}x | {tps['ours']:>12,.0f} {tps['ours'] / tps['torch']:>5.2f}x",
            flush=True,
        )


def ragged_case(B: int, T: int, In: int, H: int, layers: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    ref = nn.LSTM(In, H, layers, batch_first=True, bidirectional=True)
    ours = from_torch(ref)
    x = torch.randn(B, T, In, requires_grad=True)
    lengths = torch.randint(T // 5, T + 1, (B,))
    lengths[0] = T

    def packed(x):
        seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return nn.utils.rnn.pad_packed_sequence(ref(seq)[0], batch_first=True)

    def ragged(x):
        return ours(x, lengths=lengths)

    def by_length(x):
        return ours.forward_fused(x, lengths=lengths)

    times = interleaved_medians(
        {"torch": fwd_bwd(packed, x), "by_length": fwd_bwd(by_length, x), "ours": fwd_bwd(ragged, x)}, repeats=repeats
    )
    return {k: int(lengths.sum()) / v for k, v in times.items()}


if __name__ == "__main__":
    main()
