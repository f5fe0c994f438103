"""Generation speed at batch 1: rnnlab's sampler against bare torch.nn.LSTM called once per step.

    python benchmarks/generation_speed.py [--hidden 512] [--tokens 2000] [--repeats 5]

Both generate from the same model (Embedding 64 -> LSTM H -> Linear 65, Tiny Shakespeare's 65
symbols) with the same sampling code; the reference feeds each token through ``nn.LSTM`` with the
state passed back in, which is how a torch.nn user writes it. Goal: rnnlab >= 2x.
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

    times = interleaved_medians({"rnnlab": ours, "nn.LSTM": bare_nn_lstm}, repeats=args.repeats, warmup=1)
    tps = {k: args.tokens / v for k, v in times.items()}
    print(
        f"batch 1, LSTM H {args.hidden}, {args.tokens} tokens, median of {args.repeats}, {torch.get_num_threads()} threads"
    )
    for k, v in tps.items():
        print(f"  {k:8} {v:8,.0f} tokens/s")
    print(f"ratio rnnlab / nn.LSTM per step: {tps['rnnlab'] / tps['nn.LSTM']:.2f}x (goal >= 2x)")


if __name__ == "__main__":
    main()
