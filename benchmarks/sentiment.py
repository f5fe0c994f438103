"""Sentiment on real data: IMDB (from the tarball), SST-2 and Korean movie reviews (NSMC recipe).
The recurrent model (a 2-layer bidirectional LSTM whose embeddings start from word2vec) beside the same model with random
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

For the Korean reviews the question is first what a text is cut into: whitespace words (a Korean
word carries its particles and endings, so 영화가, 영화는 and 영화를 are three rare words), subword
units learned from the training reviews (sentencepiece, unigram) or characters (Hangul syllables).
``--tokens-steps`` trains each for the same number of steps (the same reviews seen; steps, unlike
minutes, do not depend on what else the machine runs); the long run then uses the winner.

    python benchmarks/sentiment.py [--only imdb sst2 nsmc] [--minutes-imdb 20] [--minutes-sst 20]
                                   [--minutes-nsmc 20] [--tokens-steps 1250]

Goals: IMDB test accuracy >= 90%, SST-2 >= 82%, NSMC >= 86% within 20 minutes.
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
    parser.add_argument("--minutes-nsmc", type=float, default=20, help="NSMC: minutes of the long run (0: skip it)")
    parser.add_argument("--tokens-steps", type=int, default=1250, help="NSMC: steps per tokenisation (0: skip)")
    parser.add_argument("--tokens", default=None, help="NSMC: the tokenisation of the long run (default: the best)")
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
    if "nsmc" in args.only:
        rows += nsmc(args)
    print(markdown(rows))
    if args.only != ["nsmc"]:
        save("sentiment", rows)
    else:
        name = "sentiment_nsmc" if args.minutes_nsmc else "sentiment_nsmc_tokens"
        save(name + (f"_{args.tokens}" if args.tokens else ""), rows)


def nsmc(args) -> list[dict]:
    rows, model = [], {"hidden_size": 256, "num_layers": 2, "dropout": 0.3}
    data = {"nsmc": str(DATA / "sentiment/nsmc"), "batch_size": 64, "max_tokens": 150}
    by_tokens = {}
    if args.tokens_steps:
        for tokens in ("words", "subwords", "chars"):
            budget = {"max_steps": args.tokens_steps, "eval_every": 250}
            row = run(f"nsmc_{tokens}_short", model, data | {"tokens": tokens}, budget)
            by_tokens[tokens] = float(row["best validation accuracy"].rstrip("%"))
            rows.append({"data": f"NSMC, {tokens}, {args.tokens_steps} steps", **row})
    if not args.minutes_nsmc:  # the comparison alone
        return rows
    tokens = args.tokens or max(by_tokens, key=by_tokens.get, default="subwords")
    budget = {"max_minutes": args.minutes_nsmc, "eval_every": 500, "weight_decay": 0.1}
    rows.append({"data": f"NSMC, {tokens}", **run(f"nsmc_bilstm_{tokens}", model, data | {"tokens": tokens}, budget)})
    bag = {"max_minutes": 6, "eval_every": 200}
    bag_name = "nsmc_bag" if tokens == "subwords" else f"nsmc_bag_{tokens}"
    rows.append({"data": f"NSMC, {tokens}", **run(bag_name, model | {"baseline": True}, data | {"tokens": tokens}, bag)})
    return rows


if __name__ == "__main__":
    main()
