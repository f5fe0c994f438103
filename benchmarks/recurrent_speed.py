"""Forward+backward speed of rnnlab's Recurrent against bare torch.nn.LSTM / GRU / RNN, same run.

    python benchmarks/recurrent_speed.py [--repeats 7] [--threads 2]

For each cell and size it times one forward and backward pass of (B, T, H) -> (B, T, H), with the
same weights, through: bare torch.nn, rnnlab's fused path (``Recurrent.forward``) and rnnlab's
explicit Python loop (``Recurrent.forward_explicit``). It prints tokens/s and the ratio to torch.nn
(goal: fused >= 0.95x). Calls are interleaved and the median of the repeats is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians  # noqa: E402

from rnnlab.recurrent import from_torch  # noqa: E402

SIZES = [(32, 128, 256), (64, 128, 512)]  # (B, T, H)
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, median of {args.repeats}")
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
                    "fused": fwd_bwd(ours.forward, x),
                    "explicit": fwd_bwd(ours.forward_explicit, x),
                },
                repeats=args.repeats,
            )
            tps = {k: B * T / v for k, v in times.items()}
            r_fused, r_explicit = tps["fused"] / tps["torch"], tps["explicit"] / tps["torch"]
            worst = min(worst, r_fused)
            print(
                f"{name:5} {B:>3} {T:>4} {H:>4} | {tps['torch']:>14,.0f} | {tps['fused']:>11,.0f} {r_fused:>5.2f}x | "
                f"{tps['explicit']:>14,.0f} {r_explicit:>5.2f}x"
            )
    print(f"slowest fused ratio: {worst:.2f}x (goal >= 0.95x)")


if __name__ == "__main__":
    main()
