"""Aligned many-to-many on real data: HAPT per-frame activity labelling and CoNLL-2000 chunking,
each with a per-step baseline (no context), a causal (unidirectional) and a bidirectional tagger.

    python benchmarks/frame_labelling.py [--only hapt conll] [--minutes 6]

Goals: on HAPT the bidirectional tagger ahead of the causal one and of the per-frame MLP; CoNLL-2000
chunk F1 >= 90%.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import make_options, tag, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["hapt", "conll"])
    parser.add_argument("--minutes", type=float, default=6)
    args = parser.parse_args()
    rows = []
    budget = {"max_minutes": args.minutes, "eval_every": 100, "patience": 10}
    sets = {  # (model, data)
        "hapt": (
            {"hidden_size": 64, "dropout": 0.2},
            {"hapt": str(DATA / "framelabel/hapt_raw"), "window": 512, "batch_size": 16},
        ),
        "conll": ({"hidden_size": 128}, {"conll": str(DATA / "framelabel/conll2000.zip")}),
    }
    for name in args.only:
        model, data = sets[name]
        variants = {
            "per-step MLP (no context)": {"baseline": True},
            "causal LSTM (unidirectional)": {"bidirectional": False},
            "bidirectional LSTM": {},
        }
        for label, variant in variants.items():
            options = make_options(tag.TASK, model={**model, **variant}, data=data, train=budget)
            trained = train(tag.TASK, options, fresh(RUNS / f"{name}_{label.split()[0]}"), progress=False)
            result, test = trained.result, trained.test
            row = {
                "data": name,
                "model": label,
                "accuracy": f"{100 * test['accuracy']:.2f}%",
                "macro-F1": f"{100 * test['macro_f1']:.2f}%",
            }
            if "chunk_f1" in test:
                row["chunk F1"] = f"{100 * test['chunk_f1']:.2f}%"
            row.update({"steps": result.step, "minutes": round(result.elapsed / 60, 1)})
            rows.append(row)
            print(row, flush=True)
    for name in args.only:
        print(markdown([r for r in rows if r["data"] == name]))
    save("frame_labelling", rows)


if __name__ == "__main__":
    main()
