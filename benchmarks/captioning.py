"""Image captioning on the first 1,000 Flickr8k images: a CNN trained from scratch feeds an LSTM
decoder; corpus BLEU-4 on the 100 held-out test images beside two non-learned baselines.

    python benchmarks/captioning.py [--minutes 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import caption, make_options, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15)
    args = parser.parse_args()
    options = make_options(
        caption.TASK,
        data={"folder": str(DATA / "captioning/flickr8k_1000")},
        train={"max_minutes": args.minutes, "eval_every": 200, "lr": 2e-3},
    )
    trained = train(caption.TASK, options, fresh(RUNS / "caption"), progress=False)
    result, test = trained.result, trained.test
    rows = [{"captions from": k, "test BLEU-4": f"{v:.2f}"} for k, v in test.items() if k != "examples"]
    print(markdown(rows))
    print(f"training: {result.step} steps, {result.elapsed / 60:.1f} min, best at step {result.best_step}")
    for image, text in test["examples"]:
        print(f"  {image}: {text}")
    save("captioning", rows + [{"examples": test["examples"]}])


if __name__ == "__main__":
    main()
