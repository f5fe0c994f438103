"""Generation speed at batch 1: rnnlab's sampler against bare torch.nn.LSTM called once per step.

    python benchmarks/generation_speed.py [--hidden 512] [--tokens 2000] [--repeats 5]

Both generate from the same model (Embedding 64 -> LSTM H -> Linear 65, Tiny Shakespeare's 65
symbols) with the same sampling code; the reference feeds each token through ``nn.LSTM`` with the
state passed back in, which is how a torch.nn user writes it. Goal: rnnlab >= 2x, and >= 8,000
tokens/s at H 512 on one thread (how ``rnnlab sample`` runs).

The machine's bound: a step at batch 1 must read every weight once (W_ih, W_hh, the output layer:
``weight_bytes``), so tokens/s can be at most (bandwidth / weight_bytes). The bandwidth is measured
in the same run as a matrix-vector product over a matrix of the same size, repeated (the weights
stay in cache, as they do during generation) and, for scale, as a 256 MB copy (main memory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians  # noqa: E402

from rnnlab.data.vocab import CharVocab  # noqa: E402
from rnnlab.decoding import SamplingOptions, sample_next  # noqa: E402
from rnnlab.models.lm import CharLM, CharLMConfig  # noqa: E402
from rnnlab.recurrent import to_torch  # noqa: E402
from rnnlab.tasks.charlm import generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab = CharVocab(tuple(chr(32 + i) for i in range(65)))
    model = CharLM(CharLMConfig(len(vocab), hidden_size=args.hidden)).eval()
    lstm = to_torch(model.rnn).eval()
    options = SamplingOptions(temperature=0.8)

    def ours():
        for _ in generate(model, vocab, "A", args.tokens, options, seed=0):
            pass

    def bare_nn_lstm():
        g = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            token, state = torch.tensor([[33]]), None
            for _ in range(args.tokens):
                y, state = lstm(model.embed(token), state)  # (1, 1, H)
                token = sample_next(model.head(y[:, -1]), options, g)[None]

    def on_threads(fn, n):
        def call():
            torch.set_num_threads(n)
            fn()
            torch.set_num_threads(args.threads)

        return call

    fns = {"rnnlab": ours, "nn.LSTM": bare_nn_lstm}
    others = [n for n in (1, 2) if n != args.threads]
    fns |= {f"rnnlab, {n} thread{'s' * (n > 1)}": on_threads(ours, n) for n in others}
    times = interleaved_medians(fns, repeats=args.repeats, warmup=1)
    tps = {k: args.tokens / v for k, v in times.items()}
    print(
        f"batch 1, LSTM H {args.hidden}, {args.tokens} tokens, median of {args.repeats}, {torch.get_num_threads()} threads"
    )
    for k, v in tps.items():
        print(f"  {k:18} {v:8,.0f} tokens/s")
    print(f"ratio rnnlab / nn.LSTM per step: {tps['rnnlab'] / tps['nn.LSTM']:.2f}x (goal >= 2x)")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) - model.embed.weight.nbytes
    cached, memory = bandwidths(weight_bytes, args.repeats)
    print(
        f"weights read per token: {weight_bytes / 1e6:.2f} MB; bandwidth: {cached:.1f} GB/s (matrix-vector product "
        f"of that size, cached), {memory:.1f} GB/s (256 MB copy, main memory)"
    )
    bound = cached * 1e9 / weight_bytes
    print(f"bound at the cached bandwidth: {bound:,.0f} tokens/s; rnnlab reaches {tps['rnnlab'] / bound:.0%} of it")


def bandwidths(weight_bytes: int, repeats: int) -> tuple[float, float]:
    """GB/s reading a (weight_bytes)-sized matrix in a matrix-vector product, and copying 256 MB."""
    rows = 2048
    matrix = torch.randn(rows, weight_bytes // 4 // rows)
    vector = torch.randn(matrix.shape[1])
    big = torch.empty(64 * 2**20)
    target = torch.empty_like(big)

    def matvec():
        for _ in range(100):
            torch.mv(matrix, vector)

    def copy():
        target.copy_(big)

    times = interleaved_medians({"mv": matvec, "copy": copy}, repeats=repeats, warmup=2)
    return 100 * matrix.nbytes / times["mv"] / 1e9, 2 * big.nbytes / times["copy"] / 1e9


if __name__ == "__main__":
    main()
