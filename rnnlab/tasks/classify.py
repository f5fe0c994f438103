"""Sequence classification (many-to-one): sentiment from text, classes from series.

Sources (exactly one): ``imdb`` (aclImdb_v1.tar.gz, read directly; its test split is the test
set), ``sst`` (a folder with stsa.binary.{train,dev,test}), ``nsmc`` (Korean movie reviews, a folder
with ratings_{train,test}.txt(.gz)), ``csv`` (+ ``test_csv``: any CSV/TSV with a text column and a
label column), ``ts`` (+ ``test_ts``: UEA/sktime .ts series).

Text becomes ids of words, of subword units (sentencepiece, learned from the training texts: what
suits a language whose words carry their endings, such as Korean) or of characters, as ``tokens``
says; every vocabulary comes from the training split only. Series are standardised with the
training split's mean and std. With ``pretrain_embeddings``, word2vec first learns word vectors from
the training texts, IMDB's unlabelled reviews (an IMDB source) and the texts of ``embedding_corpus``;
they start the embedding table, and the words word2vec knows join the vocabulary after the training
split's own (no validation or test text is ever read for either).

A validation part (``val_fraction`` of the training split, unless the source has its own: SST's dev
file) picks the best weights; the test split is scored once at the end with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.batching import BucketBatches, eval_batches
from rnnlab.data.encoders import CharEncoder, FeatureEncoder, SubwordEncoder, WordEncoder, encoder_from_dict
from rnnlab.data.sentiment import read_imdb, read_nsmc, read_sst
from rnnlab.data.tables import Split, holdout, read_table
from rnnlab.data.uea import read_ts
from rnnlab.data.word2vec import corpus_texts, train_word_vectors
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import classification_scores
from rnnlab.models.classifier import ClassifierConfig, build_classifier
from rnnlab.models.inputs import set_word_vectors
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig


@dataclass(frozen=True)
class ClassifierModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    hidden_size: int = 128  # [N] hidden units per layer and direction
    num_layers: int = 1  # [N] recurrent layers
    bidirectional: bool = True  # read each sequence both ways
    pooling: Literal["last", "mean", "max", "meanmax", "attention"] = "meanmax"  # how outputs over time become one vector
    dropout: float = 0.3  # [P] dropout probability
    embedding_dim: int = 128  # [N] word embedding size
    baseline: bool = False  # bag-of-embeddings model, no recurrence


@dataclass(frozen=True)
class ClassifyData(Config):
    imdb: str | None = None  # [TAR] aclImdb_v1.tar.gz (read directly)
    sst: str | None = None  # [DIR] folder with stsa.binary.{train,dev,test}
    nsmc: str | None = None  # [DIR] folder with the Korean reviews ratings_{train,test}.txt(.gz)
    csv: str | None = None  # [FILE] CSV/TSV with a text and a label column
    test_csv: str | None = None  # [FILE] test CSV with the same columns
    text_column: str = "text"  # [C] text column of the CSV files
    label_column: str = "label"  # [C] label column of the CSV files
    ts: str | None = None  # [FILE] UEA/sktime .ts training file
    test_ts: str | None = None  # [FILE] UEA/sktime .ts test file
    tokens: Literal["words", "subwords", "chars"] = "words"  # what a text is cut into
    subwords: int = 8000  # [N] subword units to learn (with --tokens subwords)
    vocab_size: int = 30_000  # [N] words kept
    min_count: int = 2  # [N] times a word must occur in the training texts to get its own id
    max_tokens: int | None = 400  # [N] keep the last N words of each text
    crop: bool = True  # cut each training batch to its shortest text (no padding: faster)
    pretrain_embeddings: bool = False  # start the embeddings from word2vec on the training (and unlabelled) texts
    embedding_corpus: str | None = None  # [FILE] more text for word2vec: aclImdb_v1.tar.gz or a file of one text per line
    batch_size: int = 64  # [N] sequences per batch
    val_fraction: float = 0.1  # [F] training share held out to pick the best weights

    def __post_init__(self) -> None:
        if len([n for n in ("imdb", "sst", "nsmc", "csv", "ts") if getattr(self, n)]) != 1:
            raise ConfigError("give exactly one data source: --imdb, --sst, --nsmc, --csv or --ts")
        if self.pretrain_embeddings and self.tokens != "words":
            raise ConfigError("word2vec learns vectors of words: --pretrain-embeddings needs --tokens words")
        if self.subwords < 8:
            raise ConfigError(f"subwords must be at least 8, got {self.subwords}")
        if self.embedding_corpus and not self.pretrain_embeddings:
            raise ConfigError("an embedding corpus is text for word2vec: add --pretrain-embeddings")
        if self.batch_size < 1 or self.vocab_size < 3 or self.min_count < 1:
            raise ConfigError("batch size and min count must be positive and the vocabulary at least 3 words")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max tokens must be positive, got {self.max_tokens}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class ClassifyOptions(Config):
    model: ClassifierModel = field(default_factory=ClassifierModel)
    data: ClassifyData = None  # a data source is required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=10, eval_every=100, lr=2e-3))


@dataclass(frozen=True)
class LabelledData(Config):
    csv: str | None = None  # [FILE] classifier: CSV with text and label columns; forecaster: a series
    text_column: str = "text"  # [C] text column of --csv
    label_column: str = "label"  # [C] label column of --csv
    ts: str | None = None  # [FILE] classifier: a UEA .ts file


@dataclass
class RawData:
    train: Split
    val: Split | None
    test: Split | None
    input: str  # "text" or "series"
    unlabelled: list = field(default_factory=list)  # extra texts for pretraining embeddings (IMDB's unsup)


@dataclass
class ClassifierLearned(Learned):
    labels: list[str]  # class names in id order
    encoder: WordEncoder | SubwordEncoder | CharEncoder | FeatureEncoder
    input: str  # "text" or "series"
    vectors: object = None  # word2vec's vectors, when it ran (used once, to start the embeddings; not saved)

    def to_dict(self) -> dict:
        return {"labels": self.labels, "encoder": self.encoder.to_dict(), "input": self.input}

    def files(self) -> dict[str, bytes]:
        return {"subwords.spm": self.encoder.words.proto} if isinstance(self.encoder, SubwordEncoder) else {}

    @classmethod
    def load(cls, saved: dict, read) -> ClassifierLearned:
        return cls(list(saved["labels"]), encoder_from_dict(saved["encoder"], read), saved.get("input", "text"))

    def encode(self, split: Split, what: str) -> tuple[list, list[int]]:
        index = {name: i for i, name in enumerate(self.labels)}
        unknown = sorted(set(split.labels) - set(index))
        if unknown:
            raise DataError(f"the {what} split has label(s) training never saw: {', '.join(map(repr, unknown[:5]))}")
        return [self.encoder.encode(x) for x in split.inputs], [index[y] for y in split.labels]


def read_source(d: ClassifyData, seed: int) -> RawData:
    if d.imdb:
        data = read_imdb(d.imdb)
        train, val = holdout(Split(data["train"][0], [str(y) for y in data["train"][1]]), d.val_fraction, seed)
        test = Split(data["test"][0], [str(y) for y in data["test"][1]])
        return RawData(train, val, test, "text", unlabelled=data["unsup"][0])
    if d.nsmc:
        data = read_nsmc(d.nsmc)
        train, val = holdout(Split(data["train"][0], [str(y) for y in data["train"][1]]), d.val_fraction, seed)
        return RawData(train, val, Split(data["test"][0], [str(y) for y in data["test"][1]]), "text")
    if d.sst:
        parts = {name: Split(*read_sst(Path(d.sst) / f"stsa.binary.{name}")) for name in ("train", "dev", "test")}
        parts = {k: Split(v.inputs, [str(y) for y in v.labels]) for k, v in parts.items()}
        return RawData(parts["train"], parts["dev"], parts["test"], "text")
    if d.csv:
        train, val = holdout(read_table(d.csv, d.text_column, d.label_column), d.val_fraction, seed)
        test = read_table(d.test_csv, d.text_column, d.label_column) if d.test_csv else None
        return RawData(train, val, test, "text")
    train, val = holdout(Split(*read_ts(d.ts)), d.val_fraction, seed)
    return RawData(train, val, Split(*read_ts(d.test_ts)) if d.test_ts else None, "series")


def label_order(label: str):
    """Numbers in numeric order (1, 2, 10), other labels alphabetically."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


class ClassifyTask(Task):
    name, kind = "classify", "classifier"
    help = "sequence classification (many-to-one): sentiment, series classes"
    description = (
        "Train a sequence classifier (or, with --baseline, a bag-of-embeddings model) on one source: IMDB, SST-2, "
        "a CSV of texts and labels, or UEA .ts series. Prints test accuracy, macro-F1 and the confusion matrix."
    )
    Options, ModelConfig, Learned, EvalData = ClassifyOptions, ClassifierConfig, ClassifierLearned, LabelledData

    def read(self, options: ClassifyOptions) -> RawData:
        return read_source(options.data, options.train.seed)

    def fit(self, options: ClassifyOptions, raw: RawData) -> ClassifierLearned:
        names = sorted(set(raw.train.labels), key=label_order)
        if len(names) < 2:
            raise DataError(f"the training data has only one class ({names[0]!r}); a classifier needs two or more")
        if raw.input == "series":
            return ClassifierLearned(names, FeatureEncoder.fit(raw.train.inputs), raw.input)
        d, vectors = options.data, None
        if d.tokens == "subwords":
            return ClassifierLearned(names, SubwordEncoder.fit(raw.train.inputs, d.subwords, d.max_tokens), raw.input)
        if d.tokens == "chars":
            return ClassifierLearned(names, CharEncoder.fit(raw.train.inputs, d.min_count, d.max_tokens), raw.input)
        if d.pretrain_embeddings:
            corpus = raw.train.inputs + raw.unlabelled + corpus_texts(d.embedding_corpus)
            vectors = train_word_vectors(corpus, options.model.embedding_dim, d.min_count, options.train.seed)
        extra = vectors.index_to_key if vectors is not None else ()
        encoder = WordEncoder.fit(raw.train.inputs, d.vocab_size, d.min_count, d.max_tokens, extra)
        return ClassifierLearned(names, encoder, raw.input, vectors)

    def encode(self, options, learned: ClassifierLearned, raw: RawData) -> dict:
        splits = {"train": raw.train, "validation": raw.val, "test": raw.test}
        return {name: learned.encode(split, name) if split else None for name, split in splits.items()}

    def model_config(self, options: ClassifyOptions, learned: ClassifierLearned) -> ClassifierConfig:
        m = options.model
        return ClassifierConfig(
            num_classes=len(learned.labels),
            **learned.encoder.input_config(),
            embedding_dims=(m.embedding_dim,) if learned.input == "text" else (),
            cell=m.cell,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            bidirectional=m.bidirectional,
            pooling=m.pooling,
            dropout=m.dropout,
            recurrent=not m.baseline,
        )

    def check_learned(self, learned: ClassifierLearned, config: ClassifierConfig) -> None:
        if len(learned.labels) != config.num_classes or learned.encoder.input_config() != {
            k: getattr(config, k) for k in learned.encoder.input_config()
        }:
            raise ValueError("the labels or the input encoder do not fit the model's sizes")

    def build(self, config: ClassifierConfig):
        return build_classifier(config)

    def init_model(self, model, learned: ClassifierLearned) -> None:
        if learned.vectors is not None:
            set_word_vectors(model.input.tables[0], learned.encoder.vocab.words, learned.vectors)

    def batches(self, options: ClassifyOptions, data: dict) -> BucketBatches:
        items, labels = data["train"]
        d = options.data
        return BucketBatches(items, min(d.batch_size, len(items)), labels=labels, seed=options.train.seed, crop=d.crop)

    def validator(self, options, learned: ClassifierLearned, data: dict):
        def validate(model) -> dict[str, float]:
            if data["validation"] is None:
                return {}
            s = classification_scores(model, *data["validation"], learned.labels)
            return {
                "val_loss": s["loss"],
                "val_accuracy": s["accuracy"],
                "val_macro_f1": s["macro_f1"],
                "score": s["accuracy"],
            }

        return validate

    def test(self, run, data: dict) -> dict | None:
        return None if data["test"] is None else classification_scores(run.model, *data["test"], run.learned.labels)

    def evaluate(self, run, given: LabelledData | None) -> dict:
        if given is None:
            split = self.read(run.options).test
            if split is None:
                raise DataError(f"{run.path} was trained without a test split; give --csv or --ts")
        elif given.ts:
            split = Split(*read_ts(given.ts))
        elif given.csv:
            split = read_table(given.csv, given.text_column, given.label_column)
        else:
            raise ConfigError("give the data to score: --csv FILE or --ts FILE")
        return classification_scores(run.model, *run.learned.encode(split, "evaluation"), run.learned.labels)

    def format_scores(self, what: str, s: dict) -> str:
        what = what or f"{s['examples']:,} examples"
        lines = [f"{what}: accuracy {100 * s['accuracy']:.2f}%, macro-F1 {100 * s['macro_f1']:.2f}%, loss {s['loss']:.4f}"]
        labels = s["labels"]
        width = max(6, *(len(x) for x in labels))
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(" " * (width + 2) + " ".join(f"{x:>{width}}" for x in labels))
        lines += [
            f"  {label:>{width}}" + " ".join(f"{n:>{width}}" for n in row) for label, row in zip(labels, s["confusion"])
        ]
        return "\n".join(lines)

    def predict(self, run, inputs: list, csv: str | None = None, text_column: str = "text", ts: str | None = None) -> list:
        """(label, class probabilities) for each text or series (and those of --csv / --ts)."""
        if ts:
            inputs = inputs + read_ts(ts)[0]
        if csv:
            inputs = inputs + read_table(csv, text_column, None).inputs
        if not inputs:
            what = "series to classify: --ts FILE" if run.learned.input == "series" else "texts to classify"
            raise DataError(f"give {what} (as arguments, --file FILE or --csv FILE)")
        items = [run.learned.encoder.encode(x) for x in inputs]
        out: list = [None] * len(items)
        with torch.inference_mode():
            for batch in eval_batches(items, 128):
                probs = run.model(batch.inputs.to(device_of(run.model)), batch.lengths)[0].softmax(-1).cpu().numpy()
                for i, p in zip(batch.index.tolist(), probs):
                    out[i] = (inputs[i], run.learned.labels[int(p.argmax())], p)
        return out

    def format_prediction(self, prediction) -> str:
        x, label, probs = prediction
        shown = x if isinstance(x, str) else f"series of {len(x)} steps"
        return f"{label}\t{probs.max():.3f}\t{shown[:100]}"


TASK = ClassifyTask()
