"""Multivariate series classification on the UEA sets (JapaneseVowels, BasicMotions): recurrent
classifier beside the non-recurrent baseline (mean and max of each feature over time, then an MLP).

    python benchmarks/series_classification.py

Goals: JapaneseVowels test accuracy >= 97%, BasicMotions >= 95%.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import classify, make_options, train  # noqa: E402

SETS = {"JapaneseVowels": 2000, "BasicMotions": 1500}  # training steps


def main() -> None:
    rows = []
    for name, steps in SETS.items():
        data = {"ts": str(DATA / f"seqclass/{name}_TRAIN.ts"), "test_ts": str(DATA / f"seqclass/{name}_TEST.ts")}
        for label, baseline in (("bidirectional LSTM", False), ("no recurrence (pooled MLP)", True)):
            options = make_options(
                classify.TASK,
                model={"hidden_size": 64, "dropout": 0.2, "baseline": baseline},
                data={**data, "batch_size": 16, "val_fraction": 0.0},
                train={"max_steps": steps, "eval_every": steps, "lr": 3e-3},
            )
            trained = train(classify.TASK, options, fresh(RUNS / f"{name}_{baseline}"), progress=False)
            result, test = trained.result, trained.test
            rows.append(
                {
                    "data": name,
                    "model": label,
                    "test accuracy": f"{100 * test['accuracy']:.2f}%",
                    "macro-F1": f"{100 * test['macro_f1']:.2f}%",
                    "steps": result.step,
                    "seconds": round(result.elapsed),
                }
            )
            print(rows[-1], flush=True)
    print(markdown(rows))
    save("series_classification", rows)


if __name__ == "__main__":
    main()
