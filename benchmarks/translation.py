"""Multi30k German -> English: the attention model trained for an hour on this machine, scored on
test2016 with greedy decoding and with beam search, beside the same model without attention.

    python benchmarks/translation.py [--minutes 60] [--ablation-minutes 20]

Goals: test BLEU >= 30 with attention + beam search; beam search (width 5) through the 1,000 test
sentences in under a minute. BLEU is sacrebleu's corpus BLEU on detokenised, cased text (its
default settings).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import make_options, train, translate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--ablation-minutes", type=float, default=20)
    args = parser.parse_args()
    data = {"multi30k": str(DATA / "translation/multi30k"), "src_lang": "de", "tgt_lang": "en"}
    variants = {  # (model, minutes)
        "LSTM encoder-decoder, additive attention": ({"attention": "additive"}, args.minutes),
        "same, no attention (fixed context)": ({"attention": "none"}, args.ablation_minutes),
    }
    rows = []
    for label, (model, minutes) in variants.items():
        started = time.perf_counter()
        options = make_options(translate.TASK, model=model, data=data, train={"max_minutes": minutes, "eval_every": 500})
        name = "translate_attention" if model["attention"] != "none" else "translate_no_attention"
        trained = train(translate.TASK, options, fresh(RUNS / name), progress=False)
        result, test = trained.result, trained.test
        for decoding, s in test.items():
            rows.append(
                {
                    "model": label,
                    "decoding": decoding,
                    "test BLEU": f"{s['bleu']:.2f}",
                    "decoding seconds (1,000 sentences)": f"{s['seconds']:.1f}",
                    "training minutes": round(result.elapsed / 60, 1),
                    "steps": result.step,
                    "best validation BLEU (greedy)": f"{result.best_metrics.get('val_bleu_greedy', 0):.2f}",
                }
            )
            print(rows[-1], flush=True)
        print("examples:", *test[f"beam {options.model.beam}"]["examples"], sep="\n  ")
        print(f"wall minutes: {(time.perf_counter() - started) / 60:.1f}", flush=True)
    print(markdown(rows))
    save("translation", rows)


if __name__ == "__main__":
    main()
