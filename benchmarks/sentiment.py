"""Sentiment on real data: IMDB (from the tarball) and SST-2. The recurrent model (a 2-layer
bidirectional LSTM whose embeddings start from word2vec) beside the same model with random
embeddings (what pretraining adds) and the bag-of-embeddings baseline (what word order adds),
each trained within a time budget on this machine.

word2vec learns from unlabelled text only, never from a scored text: IMDB's training reviews and its
50,000 unlabelled ones (for IMDB and for SST-2, whose sentences are film reviews too). For SST-2
the words word2vec knows join the vocabulary after the training sentences' own, so a test word
that the 6,920 training sentences never hold can still have a meaning (tokens outside the
vocabulary on the test set: 8.0% -> 1.1%).

"minutes" is the trainer's time; "wall minutes" everything from reading the data to the test score,
word2vec included. Both IMDB LSTMs get one minute less than the budget (word2vec's share, kept
for both so that they train equally long).
The settings come from a sweep (2-layer over 1-layer, weight decay 0.1; for SST-2 a hidden size of
256 and a peak learning rate of 1e-3 held up over three seeds).

    python benchmarks/sentiment.py [--only imdb sst2] [--minutes-imdb 20] [--minutes-sst 20]

Goals: IMDB test accuracy >= 90%, SST-2 >= 82%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import DATA, RUNS, fresh, markdown, save  # noqa: E402

from rnnlab.tasks import classify, make_options, train  # noqa: E402

IMDB = DATA / "sentiment/aclImdb_v1.tar.gz"


def run(name: str, model: dict, data: dict, budget: dict) -> dict:
    started = time.perf_counter()
    options = make_options(classify.TASK, model=model, data=data, train=budget)
    trained = train(classify.TASK, options, fresh(RUNS / name), progress=False)
    result, test = trained.result, trained.test
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
    parser.add_argument("--minutes-sst", type=float, default=20)
    args = parser.parse_args()
    rows = []
    if "imdb" in args.only:
        data = {"imdb": str(IMDB), "max_tokens": 400, "batch_size": 64}
        budget = {"max_minutes": args.minutes_imdb - 1, "eval_every": 100, "weight_decay": 0.1}
        two_layers = {"num_layers": 2}
        rows.append(
            {"data": "IMDB", **run("imdb_bilstm_word2vec", two_layers, data | {"pretrain_embeddings": True}, budget)}
        )
        rows.append({"data": "IMDB", **run("imdb_bilstm_random", two_layers, data, budget)})
        bag = {**two_layers, "baseline": True}
        rows.append({"data": "IMDB", **run("imdb_bag", bag, data, {"max_minutes": 6, "eval_every": 100})})
    if "sst2" in args.only:
        model = {"hidden_size": 256, "num_layers": 2, "dropout": 0.5}
        data = {"sst": str(DATA / "sentiment/sst"), "batch_size": 32, "vocab_size": 50_000}
        word2vec = {"pretrain_embeddings": True, "embedding_corpus": str(IMDB)}
        budget = {"max_steps": 3000, "max_minutes": args.minutes_sst, "eval_every": 50, "lr": 1e-3}
        rows.append({"data": "SST-2", **run("sst2_bilstm_word2vec", model, data | word2vec, budget)})
        rows.append({"data": "SST-2", **run("sst2_bilstm_random", model, data, budget)})
        rows.append({"data": "SST-2", **run("sst2_bag", model | {"baseline": True}, data, budget | {"lr": 2e-3})})
    print(markdown(rows))
    save("sentiment", rows)


if __name__ == "__main__":
    main()
