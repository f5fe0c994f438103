"""Commands of the supervised tasks: train classify / tag / forecast, predict, and eval for every kind."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from rnnlab import checkpoint
from rnnlab.cli.common import FMT, add_model_flags, add_train_flags, interrupted, run_dir, save_scores, train_config
from rnnlab.errors import RnnlabError
from rnnlab.tasks import classify, forecast, tag

CLASSIFY = classify.ClassifyOptions(classify.ClassifySource(csv="-"))
TAG = tag.TagOptions(tag.TagSource(conll="-"))
FORECAST = forecast.ForecastOptions(csv="-")


def add_train_parsers(tasks) -> None:
    c = tasks.add_parser(
        "classify",
        formatter_class=FMT,
        help="sequence classification (many-to-one): sentiment, series classes",
        description="Train a sequence classifier (or, with --baseline, a bag-of-embeddings model) on one source: "
        "IMDB, SST-2, a CSV of texts and labels, or UEA .ts series. Prints test accuracy, macro-F1 and the "
        "confusion matrix at the end.",
    )
    src = c.add_argument_group("data (one source)")
    src.add_argument("--imdb", metavar="TAR", help="aclImdb_v1.tar.gz (read directly)")
    src.add_argument("--sst", metavar="DIR", help="folder with stsa.binary.{train,dev,test}")
    src.add_argument("--csv", metavar="FILE", help="CSV/TSV with a text and a label column")
    src.add_argument("--test-csv", metavar="FILE", help="test CSV with the same columns")
    src.add_argument("--text-column", metavar="C", help="text column of --csv (default: text)")
    src.add_argument("--label-column", metavar="C", help="label column of --csv (default: label)")
    src.add_argument("--ts", metavar="FILE", help="UEA/sktime .ts training file")
    src.add_argument("--test-ts", metavar="FILE", help="UEA/sktime .ts test file")
    add_model_flags(c, CLASSIFY.cell, CLASSIFY.hidden_size, CLASSIFY.num_layers, CLASSIFY.dropout)
    c.add_argument("--unidirectional", action="store_true", default=None, help="one direction only (default: both)")
    c.add_argument(
        "--pooling",
        choices=["last", "mean", "max", "meanmax", "attention"],
        help=f"how the outputs over time become one vector (default: {CLASSIFY.pooling})",
    )
    c.add_argument("--embedding", type=int, metavar="N", help=f"word embedding size (default: {CLASSIFY.embedding_dim})")
    c.add_argument("--baseline", action="store_true", default=None, help="bag-of-embeddings model, no recurrence")
    c.add_argument(
        "--pretrain-embeddings",
        action="store_true",
        default=None,
        help="start the word embeddings from word2vec trained on the training texts (and IMDB's unlabelled "
        "reviews, and --embedding-corpus); the words it learns join the vocabulary",
    )
    c.add_argument(
        "--embedding-corpus",
        metavar="FILE",
        help="more text for --pretrain-embeddings: aclImdb_v1.tar.gz (its training and unlabelled reviews) "
        "or a text file, one text per line",
    )
    c.add_argument("--vocab-size", type=int, metavar="N", help=f"words kept (default: {CLASSIFY.vocab_size})")
    c.add_argument("--max-tokens", type=int, metavar="N", help=f"keep the last N words (default: {CLASSIFY.max_tokens})")
    c.add_argument("--batch-size", type=int, metavar="N", help=f"sequences per batch (default: {CLASSIFY.batch_size})")
    c.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help=f"training share held out to pick the best weights (default: {CLASSIFY.val_fraction})",
    )
    add_train_flags(c, CLASSIFY.train, Path("runs/classify"), f"default: {CLASSIFY.train.max_minutes:g}")
    c.set_defaults(func=cmd_train_classify)

    t = tasks.add_parser(
        "tag",
        formatter_class=FMT,
        help="sequence tagging (many-to-many aligned): frames, chunks",
        description="Train a tagger (or, with --baseline, a per-step MLP): HAPT accelerometer frames or CoNLL "
        "column files (word ... tag). Prints test accuracy, macro-F1 and chunk F1 at the end.",
    )
    src = t.add_argument_group("data (one source)")
    src.add_argument("--hapt", metavar="DIR", help="HAPT raw data folder (acc_exp*_user*.txt, labels.txt)")
    src.add_argument("--conll", metavar="FILE", help="conll2000.zip, or a CoNLL column training file")
    src.add_argument("--test-file", metavar="FILE", help="CoNLL column test file (with a plain --conll file)")
    add_model_flags(t, TAG.cell, TAG.hidden_size, TAG.num_layers, TAG.dropout)
    t.add_argument(
        "--unidirectional",
        action="store_true",
        default=None,
        help="causal tagger, usable online (default: bidirectional)",
    )
    t.add_argument("--embedding", type=int, metavar="N", help=f"word embedding size (default: {TAG.embedding_dim})")
    t.add_argument("--baseline", action="store_true", default=None, help="per-step MLP, no context")
    t.add_argument("--window", type=int, metavar="N", help=f"frames per training window (default: {TAG.window})")
    t.add_argument("--batch-size", type=int, metavar="N", help=f"sequences per batch (default: {TAG.batch_size})")
    add_train_flags(t, TAG.train, Path("runs/tag"), f"default: {TAG.train.max_minutes:g}")
    t.set_defaults(func=cmd_train_tag)

    f = tasks.add_parser(
        "forecast",
        formatter_class=FMT,
        help="forecasting: numbers ahead in time, beside naive baselines",
        description="Train a forecaster on the start of a CSV series and evaluate it walking forward over the "
        "held-out tail, beside the naive and seasonal-naive forecasts; writes forecast.png.",
    )
    f.add_argument("--csv", metavar="FILE", help="CSV with an index/date column and value columns")
    f.add_argument("--target", metavar="C", help="column to forecast (default: the first value column)")
    f.add_argument("--values", nargs="+", metavar="C", help="value columns the model reads (default: all numeric)")
    f.add_argument("--index", metavar="C", help="index/date column (default: the first column)")
    f.add_argument("--horizon", type=int, metavar="K", help=f"forecast 1..K steps ahead (default: {FORECAST.horizon})")
    f.add_argument("--window", type=int, metavar="W", help=f"past steps the model reads (default: {FORECAST.window})")
    f.add_argument("--season", type=int, metavar="M", help="seasonal period for seasonal naive and MASE")
    f.add_argument("--log", action="store_true", default=None, help="model log(values): multiplicative growth")
    f.add_argument("--test-fraction", type=float, metavar="F", help=f"held-out tail (default: {FORECAST.test_fraction})")
    add_model_flags(f, FORECAST.cell, FORECAST.hidden_size, FORECAST.num_layers, FORECAST.dropout)
    f.add_argument("--baseline", action="store_true", default=None, help="an MLP on the window, no recurrence")
    f.add_argument("--batch-size", type=int, metavar="N", help=f"windows per batch (default: {FORECAST.batch_size})")
    add_train_flags(
        f,
        FORECAST.train,
        Path("runs/forecast"),
        f"default: none; {FORECAST.train.max_steps} steps when neither budget is given",
    )
    f.set_defaults(func=cmd_train_forecast)


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "predict",
        formatter_class=FMT,
        help="use a trained classifier, tagger or forecaster on new inputs",
        description="Classifier: texts as arguments, --file (one per line), --csv (a text column) or --ts. "
        "Tagger: a sentence as arguments (word or word/POS). Forecaster: the next values after the end of its "
        "series, or of --csv.",
    )
    p.add_argument("run", metavar="RUN", help="checkpoint folder")
    p.add_argument("inputs", nargs="*", metavar="TEXT", help="texts to classify, or the words of a sentence to tag")
    p.add_argument("--file", metavar="FILE", help="a UTF-8 file of texts, one per line")
    p.add_argument("--csv", metavar="FILE", help="CSV of texts (classifier) or a series (forecaster)")
    p.add_argument("--text-column", metavar="C", default="text", help="text column of --csv")
    p.add_argument("--ts", metavar="FILE", help="UEA .ts series to classify")
    p.set_defaults(func=cmd_predict)

    e = sub.add_parser(
        "eval",
        formatter_class=FMT,
        help="score a trained model",
        description="Character model: nats/char and bits/char on --text (default: its validation text). "
        "Classifier and tagger: accuracy, macro-F1, confusion matrix / chunk F1 on their test split, or on "
        "--csv / --ts / --conll. Forecaster: errors beside the baselines on its series' tail, or on --csv.",
    )
    e.add_argument("run", metavar="RUN", help="checkpoint folder")
    e.add_argument("--text", metavar="FILE", help="character model: a UTF-8 text file")
    e.add_argument("--csv", metavar="FILE", help="classifier: CSV with text and label columns; forecaster: a series")
    e.add_argument("--text-column", metavar="C", default="text", help="text column of --csv")
    e.add_argument("--label-column", metavar="C", default="label", help="label column of --csv")
    e.add_argument("--ts", metavar="FILE", help="classifier: a UEA .ts file")
    e.add_argument("--conll", metavar="FILE", help="tagger: a CoNLL column file")
    e.set_defaults(func=cmd_eval)


# ---------------------------------------------------------------------- train


def _flags(args, names: dict[str, str]) -> dict:
    """{option field: value} for the flags that were given."""
    return {field: getattr(args, flag) for flag, field in names.items() if getattr(args, flag) is not None}


COMMON = {
    "cell": "cell",
    "hidden": "hidden_size",
    "layers": "num_layers",
    "dropout": "dropout",
    "baseline": "baseline",
    "batch_size": "batch_size",
}


def cmd_train_classify(args) -> int:
    names = {
        **COMMON,
        "pooling": "pooling",
        "embedding": "embedding_dim",
        "vocab_size": "vocab_size",
        "max_tokens": "max_tokens",
        "val_fraction": "val_fraction",
        "pretrain_embeddings": "pretrain_embeddings",
        "embedding_corpus": "embedding_corpus",
    }
    source_flags = ["imdb", "sst", "csv", "test_csv", "text_column", "label_column", "ts", "test_ts"]
    out = run_dir(args, Path("runs/classify"), [*names, *source_flags, "unidirectional"])
    if args.resume:
        options = replace(CLASSIFY, train=train_config(args, CLASSIFY.train))
    else:
        source = classify.ClassifySource(**{k: getattr(args, k) for k in source_flags if getattr(args, k) is not None})
        extra = {"bidirectional": False} if args.unidirectional else {}
        options = replace(CLASSIFY, source=source, **_flags(args, names), **extra, train=train_config(args, CLASSIFY.train))
    result, run, test = classify.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "classify")
    _report_best(out, result)
    if test is not None:
        _print_classification("test", test, run.labels)
        save_scores(out, test)
    return 0


def cmd_train_tag(args) -> int:
    names = {**COMMON, "embedding": "embedding_dim", "window": "window"}
    source_flags = ["hapt", "conll", "test_file"]
    out = run_dir(args, Path("runs/tag"), [*names, *source_flags, "unidirectional"])
    if args.resume:
        options = replace(TAG, train=train_config(args, TAG.train))
    else:
        source = tag.TagSource(**{k: getattr(args, k) for k in source_flags if getattr(args, k) is not None})
        extra = {"bidirectional": False} if args.unidirectional else {}
        options = replace(TAG, source=source, **_flags(args, names), **extra, train=train_config(args, TAG.train))
    result, run, test = tag.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "tag")
    _report_best(out, result)
    if test is not None:
        _print_tagging("test", test)
        save_scores(out, test)
    return 0


def cmd_train_forecast(args) -> int:
    names = {
        **COMMON,
        "target": "target",
        "index": "index",
        "horizon": "horizon",
        "window": "window",
        "season": "season",
        "log": "log",
        "test_fraction": "test_fraction",
    }
    out = run_dir(args, Path("runs/forecast"), [*names, "csv", "values"])
    if args.resume:
        options = replace(FORECAST, train=train_config(args, FORECAST.train))
    else:
        if not args.csv:
            raise RnnlabError("give the series: --csv FILE")
        values = tuple(args.values) if args.values else None
        options = replace(
            FORECAST, csv=args.csv, values=values, **_flags(args, names), train=train_config(args, FORECAST.train)
        )
    result, run, report = forecast.train(options, out, resume=args.resume, progress=not args.quiet)
    if result.interrupted is not None:
        return interrupted(result, out, "forecast")
    _report_best(out, result)
    print(forecast.table_text(report))
    path = forecast.plot(report, Path(out) / "forecast.png", title=f"{run.options.csv}: {report.target}")
    save_scores(out, report.table)
    print(f"wrote {path}")
    return 0


def _report_best(out: Path, result) -> None:
    best = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "score")
    at = f" (best at step {result.best_step}: {best})" if result.best_step else ""
    print(f"saved {out}: step {result.step}, {result.elapsed / 60:.1f} min{at}")


def _print_classification(what: str, s: dict, labels: list[str]) -> None:
    print(f"{what}: accuracy {100 * s['accuracy']:.2f}%, macro-F1 {100 * s['macro_f1']:.2f}%, loss {s['loss']:.4f}")
    if "confusion" in s:
        width = max(6, *(len(x) for x in labels))
        print("confusion matrix (rows: true, columns: predicted)")
        print(" " * (width + 2) + " ".join(f"{x:>{width}}" for x in labels))
        for label, row in zip(labels, s["confusion"]):
            print(f"  {label:>{width}}" + " ".join(f"{n:>{width}}" for n in row))


def _print_tagging(what: str, s: dict) -> None:
    line = f"{what}: per-step accuracy {100 * s['accuracy']:.2f}%, macro-F1 {100 * s['macro_f1']:.2f}%"
    if "chunk_f1" in s:
        line += (
            f", chunk F1 {100 * s['chunk_f1']:.2f}% (precision {100 * s['chunk_precision']:.2f}%, "
            f"recall {100 * s['chunk_recall']:.2f}%)"
        )
    print(line)


# ---------------------------------------------------------------------- predict and eval


def _kind(path: str) -> str:
    return checkpoint.load(path).config["kind"]


def cmd_predict(args) -> int:
    kind = _kind(args.run)
    if kind == classify.KIND:
        run = classify.load_run(args.run)
        inputs = _classifier_inputs(args, run)
        for x, (label, probs) in zip(inputs, classify.predict(run, inputs)):
            shown = x if isinstance(x, str) else f"series of {len(x)} steps"
            print(f"{label}\t{probs.max():.3f}\t{shown[:100]}")
        return 0
    if kind == tag.KIND:
        if not args.inputs:
            raise RnnlabError("give the sentence to tag as words, e.g. rnnlab predict RUN He reckons the deficit")
        run = tag.load_run(args.run)
        for word, label in zip(args.inputs, tag.tag_sentence(run, args.inputs)):
            print(f"{word}\t{label}")
        return 0
    if kind == forecast.KIND:
        run = forecast.load_run(args.run)
        values = forecast.future(run, args.csv)
        print(
            f"next {len(values)} value(s) of {run.config['columns'][run.scaling.target]}: "
            + ", ".join(f"{v:.6g}" for v in values)
        )
        return 0
    raise RnnlabError(
        f"{args.run}: a {kind!r} model; predict works with classifiers, taggers and forecasters "
        "(for a character model use rnnlab sample)"
    )


def _classifier_inputs(args, run) -> list:
    if args.ts:
        from rnnlab.data.uea import read_ts

        return read_ts(args.ts)[0]
    if args.csv:
        return classify.read_table(args.csv, args.text_column, None).inputs
    if args.file:
        from rnnlab.data.text import read_text

        lines = [line for line in read_text(args.file).splitlines() if line.strip()]
        return lines
    if args.inputs:
        return list(args.inputs)
    if run.config.get("input") == "series":
        raise RnnlabError("give series to classify: --ts FILE")
    raise RnnlabError("give texts to classify: as arguments, --file FILE or --csv FILE")


def cmd_eval(args) -> int:
    kind = _kind(args.run)
    if kind == "charlm":
        from rnnlab.cli.lm import eval_text
        from rnnlab.tasks import charlm

        return eval_text(charlm.load_run(args.run), args.text)
    if kind == classify.KIND:
        run = classify.load_run(args.run)
        if args.ts:
            from rnnlab.data.uea import read_ts

            inputs, labels = read_ts(args.ts)
        elif args.csv:
            split = classify.read_table(args.csv, args.text_column, args.label_column)
            inputs, labels = split.inputs, split.labels
        else:
            options = classify.ClassifyOptions.from_dict(run.config["options"])
            raw = classify.load_source(options.source, options.val_fraction, options.train.seed)
            if raw.test is None:
                raise RnnlabError(f"{args.run} was trained without a test split; give --csv or --ts")
            inputs, labels = raw.test.inputs, raw.test.labels
        _print_classification(f"{len(labels):,} examples", classify.evaluate(run, inputs, labels), run.labels)
        return 0
    if kind == tag.KIND:
        run = tag.load_run(args.run)
        if args.conll:
            split, kind_of_input = tag.read_column_split(args.conll), "tokens"
        else:
            options = tag.TagOptions.from_dict(run.config["options"])
            data = tag.load_source(options.source, options.window, options.val_fraction, options.train.seed)
            split, kind_of_input = data.test, data.kind
        if split is None:
            raise RnnlabError(f"{args.run} has no test split; give --conll FILE")
        names = run.names if kind_of_input == "tokens" else None
        items, targets, extended = tag.encode_split(run.encoder, split, names)
        _print_tagging(f"{len(split.inputs):,} sequences", tag.scores(run.model, items, targets, extended or run.names))
        return 0
    if kind == forecast.KIND:
        run = forecast.load_run(args.run)
        print(forecast.table_text(forecast.walk_forward(run, forecast.prepare_for_run(run, args.csv))))
        return 0
    if kind == "translator":
        from rnnlab.tasks import translate

        run = translate.load_run(args.run)
        pairs = run.options.source.pairs("test")
        if pairs is None:
            raise RnnlabError(f"{args.run} has no test files")
        for name, s in translate.test_scores(run, *pairs).items():
            print(f"test BLEU, {name}: {s['bleu']:.2f} ({s['sentences']} sentences in {s['seconds']:.1f} s)")
        return 0
    print(f"rnnlab: {args.run} holds a {kind!r} model, which eval does not know", file=sys.stderr)
    return 2
