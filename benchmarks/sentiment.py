"""Sentiment on real data: IMDB (from the tarball) and SST-2, each recurrent model (with random and
with word2vec-initialised embeddings) beside the bag-of-embeddings baseline, trained within a time
budget on this machine. "minutes" is the trainer's time; "wall minutes" everything from reading the
tarball to the test score, word2vec included (its trainer gets 3 minutes less to stay within budget).
The bag-of-embeddings baselines converge in a fraction of the time and get a quarter (IMDB) or half
(SST-2) of the budget.

    python benchmarks/sentiment.py [--only imdb sst2] [--minutes-imdb 20] [--minutes-sst 6]

Goals: IMDB test accuracy >= 90%, SST-2 >= 82%.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import classify  # noqa: E402
from rnnlab.train import TrainConfig  # noqa: E402


def run(name: str, options: classify.ClassifyOptions) -> dict:
    started = time.perf_counter()
    result, run_, test = classify.train(options, fresh(RUNS / name), progress=False)
    wall = (time.perf_counter() - started) / 60
    return {
        "model": name,
        "test accuracy": f"{100 * test['accuracy']:.2f}%",
        "test macro-F1": f"{100 * test['macro_f1']:.2f}%",
        "best validation accuracy": f"{100 * result.best_metrics.get('val_accuracy', float('nan')):.2f}%",
        "best at step": result.best_step,
        "steps": result.step,
        "minutes": round(result.elapsed / 60, 1),
        "wall minutes": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["imdb", "sst2"])
    parser.add_argument("--minutes-imdb", type=float, default=20)
    parser.add_argument("--minutes-sst", type=float, default=6)
    args = parser.parse_args()
    rows = []
    if "imdb" in args.only:
        src = classify.ClassifySource(imdb=str(DATA / "sentiment/aclImdb_v1.tar.gz"))
        base = classify.ClassifyOptions(
            src, max_tokens=400, batch_size=64, train=TrainConfig(max_minutes=args.minutes_imdb, eval_every=100, patience=6)
        )
        rows.append({"data": "IMDB", **run("imdb_bilstm", base)})
        w2v = replace(base, pretrain_embeddings=True, train=replace(base.train, max_minutes=args.minutes_imdb - 3))
        rows.append({"data": "IMDB", **run("imdb_bilstm_word2vec", w2v)})
        bag = replace(base, baseline=True, train=replace(base.train, max_minutes=args.minutes_imdb / 4))
        rows.append({"data": "IMDB", **run("imdb_bag", bag)})
    if "sst2" in args.only:
        src = classify.ClassifySource(sst=str(DATA / "sentiment/sst"))
        base = classify.ClassifyOptions(
            src,
            max_tokens=None,
            batch_size=32,
            min_count=1,
            dropout=0.5,
            train=TrainConfig(max_minutes=args.minutes_sst, eval_every=50, patience=8),
        )
        rows.append({"data": "SST-2", **run("sst2_bilstm", base)})
        rows.append({"data": "SST-2", **run("sst2_bilstm_word2vec", replace(base, pretrain_embeddings=True))})
        bag = replace(base, baseline=True, train=replace(base.train, max_minutes=args.minutes_sst / 2))
        rows.append({"data": "SST-2", **run("sst2_bag", bag)})
    print(markdown(rows))
    save("sentiment", rows)


if __name__ == "__main__":
    main()
