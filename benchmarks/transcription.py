"""CTC transcription of spoken digit strings (3-7 FSDD digits joined with pauses), the test speaker
never heard in training: character error rate with greedy and prefix-beam-search decoding.

    python benchmarks/transcription.py [--minutes 15]

Goal: CER <= 10%.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import make_options, train, transcribe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15)
    args = parser.parse_args()
    options = make_options(
        transcribe.TASK,
        data={"fsdd": str(DATA / "speech/fsdd")},
        train={"max_minutes": args.minutes, "eval_every": 200, "lr": 2e-3},
    )
    trained = train(transcribe.TASK, options, fresh(RUNS / "transcribe"), progress=False)
    result, test = trained.result, trained.test
    rows = [
        {
            "decoding": "greedy (best path)",
            "CER": f"{100 * test['cer_greedy']:.2f}%",
            "whole strings right": f"{100 * test['exact_greedy']:.1f}%",
        },
        {
            "decoding": f"prefix beam search ({options.model.beam})",
            "CER": f"{100 * test['cer_beam']:.2f}%",
            "whole strings right": f"{100 * test['exact_beam']:.1f}%",
        },
    ]
    print(markdown(rows))
    print(
        f"training: {result.step} steps, {result.elapsed / 60:.1f} min, best validation CER "
        f"{100 * result.best_metrics.get('val_cer', float('nan')):.2f}% at step {result.best_step}"
    )
    save("transcription", rows)


if __name__ == "__main__":
    main()
