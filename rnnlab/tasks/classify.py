"""Sequence classification (many-to-one), end to end: sentiment from text, classes from series.

Sources (exactly one):

    imdb=aclImdb_v1.tar.gz            IMDB reviews, read from the tarball; test = its test split
    sst=DIR                           SST-2 sentences: DIR/stsa.binary.{train,dev,test}
    csv=FILE (+ test_csv=FILE)        any CSV/TSV with a text column and a label column
    ts=FILE (+ test_ts=FILE)          UEA/sktime .ts multivariate series, variable length

Text becomes word ids (vocabulary from the training split only); series are standardised with the
training split's mean and std. With ``pretrain_embeddings``, word2vec first learns word vectors from
the training texts, IMDB's unlabelled reviews (an IMDB source) and the texts of ``embedding_corpus``;
they start the embedding table, and the words word2vec knows join the vocabulary after the training
split's own (no validation or test text is ever read for either).

A validation part (``val_fraction`` of the training split, unless the source has its own: SST's dev
file) picks the best weights; the test split is scored once at the end with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab import checkpoint
from rnnlab.data.batching import BucketBatches, eval_batches
from rnnlab.data.encoders import FeatureEncoder, WordEncoder, encoder_from_dict
from rnnlab.data.sentiment import read_imdb, read_sst
from rnnlab.data.uea import read_ts
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.classifier import ClassifierConfig, build_classifier
from rnnlab.tasks.runs import options_from_dict, start_or_resume
from rnnlab.train import TrainConfig, Trainer

KIND = "classifier"


@dataclass(frozen=True)
class ClassifySource:
    imdb: str | None = None
    sst: str | None = None
    csv: str | None = None
    test_csv: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    ts: str | None = None
    test_ts: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("imdb", "sst", "csv", "ts") if getattr(self, n)]
        if len(given) != 1:
            raise ConfigError("give exactly one data source: --imdb, --sst, --csv or --ts")


@dataclass
class Split:
    inputs: list  # texts (str) or series ((T, F) arrays)
    labels: list[str]


@dataclass
class RawData:
    train: Split
    val: Split | None
    test: Split | None
    kind: str  # "text" or "series"
    unlabelled: list = field(default_factory=list)  # extra texts for pretraining embeddings (IMDB's unsup)


def read_table(path: str, text_column: str, label_column: str | None) -> Split:
    """Texts and labels from a CSV (or TSV, by extension or sniffing) file, with clear errors."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    try:
        sep = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
        df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    columns = [c for c in (text_column, label_column) if c is not None]
    for c in columns:
        if c not in df.columns:
            raise DataError(f"{path}: no column {c!r}; columns are {', '.join(map(str, df.columns))}")
    texts = df[text_column].tolist()
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(f"{path}: row {empty[0] + 2} has an empty {text_column!r}")
    labels = df[label_column].str.strip().tolist() if label_column else []
    missing = [i for i, label in enumerate(labels) if not label]
    if missing:
        raise DataError(f"{path}: row {missing[0] + 2} has no {label_column!r}")
    if not texts:
        raise DataError(f"{path}: no rows")
    return Split(texts, labels)


def _holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """A stratified random ``fraction`` of ``split`` for validation (None when fraction is 0)."""
    if fraction <= 0:
        return split, None
    rng = np.random.default_rng(seed)
    val_idx = []
    labels = np.array(split.labels)
    for label in sorted(set(split.labels)):
        idx = rng.permutation(np.flatnonzero(labels == label))
        val_idx.extend(idx[: max(1, int(round(len(idx) * fraction)))] if len(idx) > 1 else [])
    val = set(val_idx)
    train_idx = [i for i in range(len(labels)) if i not in val]
    pick = lambda idx: Split([split.inputs[i] for i in idx], [split.labels[i] for i in idx])  # noqa: E731
    return pick(train_idx), pick(sorted(val))


def load_source(src: ClassifySource, val_fraction: float, seed: int) -> RawData:
    if src.imdb:
        data = read_imdb(src.imdb)
        train, val = _holdout(Split(data["train"][0], [str(y) for y in data["train"][1]]), val_fraction, seed)
        test = Split(data["test"][0], [str(y) for y in data["test"][1]])
        return RawData(train, val, test, "text", unlabelled=data["unsup"][0])
    if src.sst:
        folder = Path(src.sst)
        parts = {}
        for name in ("train", "dev", "test"):
            texts, labels = read_sst(folder / f"stsa.binary.{name}")
            parts[name] = Split(texts, [str(y) for y in labels])
        return RawData(parts["train"], parts["dev"], parts["test"], "text")
    if src.csv:
        train, val = _holdout(read_table(src.csv, src.text_column, src.label_column), val_fraction, seed)
        test = read_table(src.test_csv, src.text_column, src.label_column) if src.test_csv else None
        return RawData(train, val, test, "text")
    series, labels = read_ts(src.ts)
    train, val = _holdout(Split(series, labels), val_fraction, seed)
    test = Split(*read_ts(src.test_ts)) if src.test_ts else None
    return RawData(train, val, test, "series")


@dataclass(frozen=True)
class ClassifyOptions:
    source: ClassifySource
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "meanmax"
    dropout: float = 0.3
    embedding_dim: int = 128  # word embeddings (text input)
    baseline: bool = False  # the bag-of-embeddings model instead of the recurrent one
    vocab_size: int = 30_000
    min_count: int = 2
    max_tokens: int | None = 400  # keep the last N words of a text
    crop: bool = True  # training batches cut to their shortest text (no padding: faster)
    pretrain_embeddings: bool = False  # word2vec on the training texts (and IMDB's unlabelled ones) first
    embedding_corpus: str | None = None  # more text for word2vec: an IMDB tarball or a file, one text per line
    batch_size: int = 64
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=10, eval_every=100, lr=2e-3))

    def __post_init__(self) -> None:
        if self.embedding_corpus and not self.pretrain_embeddings:
            raise ConfigError("an embedding corpus is text for word2vec: add --pretrain-embeddings")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassifyOptions:
        return options_from_dict(cls, d, source=ClassifySource)


@dataclass
class ClassifierRun:
    path: Path
    model: torch.nn.Module
    encoder: WordEncoder | FeatureEncoder
    labels: list[str]
    config: dict


def encode_split(encoder, split: Split, label_index: dict[str, int], what: str) -> tuple[list, list[int]]:
    unknown = sorted(set(split.labels) - set(label_index))
    if unknown:
        raise DataError(f"the {what} split has label(s) training never saw: {', '.join(map(repr, unknown[:5]))}")
    return [encoder.encode(x) for x in split.inputs], [label_index[y] for y in split.labels]


def scores(model, items: list, labels: list[int], batch_size: int = 128) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of ``model`` on encoded items; also the predictions."""
    from sklearn.metrics import f1_score

    model.eval()
    predictions = np.zeros(len(items), dtype=np.int64)
    total = 0.0
    with torch.inference_mode():
        for batch in eval_batches(items, batch_size, labels=labels):
            logits = model(batch.inputs, batch.lengths)
            total += float(F.cross_entropy(logits, batch.labels, reduction="sum"))
            predictions[batch.index.numpy()] = logits.argmax(-1).numpy()
    y = np.array(labels)
    return {
        "loss": total / len(items),
        "accuracy": float((predictions == y).mean()),
        "macro_f1": float(f1_score(y, predictions, average="macro")),
        "predictions": predictions,
    }


def train(options: ClassifyOptions, out: Path, resume: bool = False, progress: bool = True):
    """Train a classifier into ``out``; returns (TrainResult, ClassifierRun, test scores or None)."""
    out = Path(out)
    options = start_or_resume(out, KIND, options, resume)
    raw = load_source(options.source, options.val_fraction, options.train.seed)
    names = sorted(set(raw.train.labels), key=_label_key)
    if len(names) < 2:
        raise DataError(f"the training data has only one class ({names[0]!r}); a classifier needs two or more")
    index = {name: i for i, name in enumerate(names)}
    vectors = None  # word2vec's, when it runs
    if raw.kind != "text":
        encoder = FeatureEncoder.fit(raw.train.inputs)
    elif resume:  # the vocabulary the saved weights were trained with
        encoder = encoder_from_dict(checkpoint.load(out, KIND).config["encoder"])
    else:
        if options.pretrain_embeddings:
            corpus = raw.train.inputs + raw.unlabelled + corpus_texts(options.embedding_corpus)
            vectors = train_word_vectors(corpus, options.embedding_dim, options.min_count, options.train.seed)
        extra = vectors.index_to_key if vectors is not None else ()
        encoder = WordEncoder.fit(raw.train.inputs, options.vocab_size, options.min_count, options.max_tokens, extra)
    train_items, train_labels = encode_split(encoder, raw.train, index, "training")
    val = encode_split(encoder, raw.val, index, "validation") if raw.val else None

    torch.manual_seed(options.train.seed)
    model_config = ClassifierConfig(
        num_classes=len(names),
        **encoder.input_config(),
        embedding_dims=(options.embedding_dim,) if raw.kind == "text" else (),
        cell=options.cell,
        hidden_size=options.hidden_size,
        num_layers=options.num_layers,
        bidirectional=options.bidirectional,
        pooling=options.pooling,
        dropout=options.dropout,
        recurrent=not options.baseline,
    )
    model = build_classifier(model_config)
    if vectors is not None:
        set_word_vectors(model.input.tables[0], encoder.vocab, vectors)
    batches = BucketBatches(
        train_items,
        min(options.batch_size, len(train_items)),
        labels=train_labels,
        seed=options.train.seed,
        crop=options.crop,
    )

    def evaluate(m) -> dict[str, float]:
        if val is None:
            return {}
        s = scores(m, *val)
        return {
            "val_loss": s["loss"],
            "val_accuracy": s["accuracy"],
            "val_macro_f1": s["macro_f1"],
            "score": s["accuracy"],
        }

    def describe() -> dict:
        return {
            "model": model_config.to_dict(),
            "labels": names,
            "encoder": encoder.to_dict(),
            "options": options.to_dict(),
            "input": raw.kind,
        }

    trainer = Trainer(model, batches, evaluate, options.train, out, KIND, describe, progress)
    if resume:
        trainer.restore()
    result = trainer.fit()
    run = load_run(out)
    test = None
    if raw.test is not None and result.interrupted is None:
        test = scores(run.model, *encode_split(run.encoder, raw.test, index, "test"))
    return result, run, test


def corpus_texts(path: str | None) -> list[str]:
    """Unlabelled texts for word2vec: an IMDB tarball gives its training and unlabelled reviews
    (never its test reviews); any other file, one text per non-empty line."""
    if path is None:
        return []
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file (the embedding corpus)")
    if p.name.endswith((".tar.gz", ".tgz", ".tar")):
        data = read_imdb(p)
        return data["train"][0] + data["unsup"][0]
    try:
        texts = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (the embedding corpus: one text per line)") from None
    if not texts:
        raise DataError(f"{path}: holds no text (the embedding corpus: one text per line)")
    return texts


def train_word_vectors(texts: list[str], dim: int, min_count: int, seed: int):
    """word2vec (gensim: CBOW, window 5, 5 epochs) over ``texts``, which must not include any text
    that is scored. A word needs at least two sightings (and ``min_count``) for a vector.
    Returns gensim ``KeyedVectors``; ``index_to_key`` lists its words, most frequent first."""
    from gensim.models import Word2Vec

    from rnnlab.data.words import tokenize

    sentences = [tokenize(t) for t in texts]
    model = Word2Vec(sentences, vector_size=dim, window=5, min_count=max(2, min_count), workers=2, epochs=5, seed=seed)
    return model.wv


def set_word_vectors(table: torch.nn.Embedding, vocab, vectors) -> int:
    """Copy the vectors of the vocabulary's words into the embedding table, rescaled to the table's
    initial spread (rows of <pad>, <unk> and of words without a vector are left as they are).
    Returns how many rows were set."""
    rows = [(i, word) for i, word in enumerate(vocab.words) if i > 1 and word in vectors]
    if not rows:
        return 0
    with torch.no_grad():
        found = torch.from_numpy(np.stack([vectors[word] for _, word in rows]))  # (N, E)
        scale = table.weight[2:].std() / found.std()  # keep the table's initial scale
        table.weight[[i for i, _ in rows]] = found * scale
    return len(rows)


def _label_key(label: str):
    """Numbers in numeric order (1, 2, 10), other labels alphabetically."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def load_run(path: str | Path) -> ClassifierRun:
    ckpt = checkpoint.load(path, KIND)
    try:
        config = ClassifierConfig(**ckpt.config["model"])
        encoder = encoder_from_dict(ckpt.config["encoder"])
        labels = list(ckpt.config["labels"])
    except (KeyError, TypeError, ValueError, DataError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a classifier ({e})") from None
    model = build_classifier(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return ClassifierRun(ckpt.path, model.eval(), encoder, labels, ckpt.config)


def predict(run: ClassifierRun, inputs: list) -> list[tuple[str, np.ndarray]]:
    """(label, class probabilities) for each text or series."""
    items = [run.encoder.encode(x) for x in inputs]
    out: list = [None] * len(items)
    with torch.inference_mode():
        for batch in eval_batches(items, 128):
            probs = run.model(batch.inputs, batch.lengths).softmax(-1).numpy()
            for i, p in zip(batch.index.tolist(), probs):
                out[i] = (run.labels[int(p.argmax())], p)
    return out


def evaluate(run: ClassifierRun, inputs: list, labels: list[str]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows: true class, columns: predicted)."""
    from sklearn.metrics import confusion_matrix

    index = {name: i for i, name in enumerate(run.labels)}
    items, y = encode_split(run.encoder, Split(inputs, labels), index, "evaluation")
    s = scores(run.model, items, y)
    s["confusion"] = confusion_matrix(y, s["predictions"], labels=list(range(len(run.labels))))
    return s
