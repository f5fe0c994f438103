"""Minimal RNNs (minGRU, minLSTM: rnnlab/scan.py) against torch.nn.LSTM, forward + backward, same run.

    python benchmarks/minimal_rnn.py [--repeats 7] [--threads 2] [--device cpu]

Table 1 (speed): for each (B, T, H), tokens/s of one training pass (forward, backward) of
(B, T, H) -> (B, T, H) through bare ``torch.nn.LSTM`` (input H, hidden H) and through
``Recurrent(MinGRUCell / MinLSTMCell)`` with the parallel (log-space) scan and with the sequential
one, interleaved, median of the repeats; the ratio is against torch.nn.LSTM of the same hidden size.
Goal: minimal RNNs >= 2x torch.nn.LSTM at T >= 256.

Table 2 (which scan): minGRU, B 32, H 256, T from 1 to 1024 (and 4096 on a GPU, the issue's goal
there: parallel >= 10x sequential): parallel against sequential, which is where
``rnnlab.scan.prefer_parallel``'s rule comes from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians  # noqa: E402

from rnnlab.memory import keep_freed_memory  # noqa: E402
from rnnlab.recurrent import Recurrent  # noqa: E402
from rnnlab.scan import MinGRUCell, MinLSTMCell, linear_scan  # noqa: E402

SIZES = [(32, 64, 256), (32, 256, 256), (16, 512, 128), (16, 1024, 256), (64, 256, 512)]  # (B, T, H)
CROSSOVER = [1, 2, 4, 8, 16, 32, 64, 256, 1024]


def fwd_bwd(fn, x):
    def call():
        out, _ = fn(x)
        out.sum().backward()

    return call


def scanned(rec: Recurrent, parallel: bool):
    """rec's forward with the scan forced to one kind (``linear_scan(..., parallel)``)."""

    def run(x):
        state = rec.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        return rec._run_scan(x, state, None, parallel=parallel)

    return run


def speed_table(repeats: int, device: torch.device) -> None:
    print("   B     T    H | torch.nn.LSTM tok/s |  minGRU par tok/s ratio |  minGRU seq ratio | minLSTM par ratio")
    for batch, steps, hidden in SIZES:
        x = torch.randn(batch, steps, hidden, device=device)
        lstm = nn.LSTM(hidden, hidden, batch_first=True).to(device)
        mingru = Recurrent(MinGRUCell, hidden, hidden).to(device)
        minlstm = Recurrent(MinLSTMCell, hidden, hidden).to(device)
        fns = {
            "lstm": fwd_bwd(lstm, x),
            "mingru_par": fwd_bwd(scanned(mingru, True), x),
            "mingru_seq": fwd_bwd(scanned(mingru, False), x),
            "minlstm_par": fwd_bwd(scanned(minlstm, True), x),
        }
        t = interleaved_medians(fns, repeats)
        tok = {k: batch * steps / v for k, v in t.items()}
        r = {k: tok[k] / tok["lstm"] for k in tok}
        print(
            f"{batch:4d} {steps:5d} {hidden:4d} | {tok['lstm']:19,.0f} | {tok['mingru_par']:16,.0f}"
            f" {r['mingru_par']:5.2f}x | {r['mingru_seq']:16.2f}x | {r['minlstm_par']:16.2f}x"
        )


def crossover_table(repeats: int, device: torch.device) -> None:
    print("minGRU B 32 H 256: which scan")
    print("     T | parallel ms | sequential ms | parallel / sequential speed")
    batch, hidden = 32, 256
    cell = MinGRUCell(hidden, hidden).to(device)
    for steps in CROSSOVER + ([4096] if device.type == "cuda" else []):
        x = torch.randn(batch, steps, hidden, device=device)
        h0 = torch.zeros(batch, hidden, device=device)

        def run(parallel, x=x, h0=h0):
            def call():
                linear_scan(cell, cell.project(x), h0, None, parallel).sum().backward()

            return call

        t = interleaved_medians({"par": run(True), "seq": run(False)}, repeats)
        print(f"{steps:6d} | {1e3 * t['par']:11.2f} | {1e3 * t['seq']:13.2f} | {t['seq'] / t['par']:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # as rnnlab's commands run: freed memory kept for reuse (RNNLAB_KEEP_MEMORY=0: glibc's default)
    print("allocator: " + ("freed memory kept (rnnlab/memory.py)" if keep_freed_memory() else "glibc's default"))
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, float32, median of {args.repeats}")
    speed_table(args.repeats, device)
    crossover_table(args.repeats, device)


if __name__ == "__main__":
    main()
