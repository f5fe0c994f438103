"""Sequence tagging (many-to-many, aligned): a label for every step.

Sources (exactly one): ``hapt`` (the UCI HAPT raw accelerometer recordings, per-frame activities,
split by recording; unlabelled frames ignored) or ``conll`` (CoNLL column files, word ... tag:
NLTK's conll2000.zip holds train.txt and test.txt; or a plain training file, + ``test_file``).

Frame data trains on windows of ``window`` frames and is scored window by window over whole
recordings; scores count labelled steps only. Chunk tags (B-X / I-X / O) are also scored at the
chunk level (precision, recall, F1, as conlleval does).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnlab.cells import CellName
from rnnlab.config import Config
from rnnlab.data.batching import BucketBatches
from rnnlab.data.conll import read_conll
from rnnlab.data.encoders import ColumnEncoder, FeatureEncoder, encoder_from_dict
from rnnlab.data.hapt import hapt_splits
from rnnlab.device import device_of
from rnnlab.errors import ConfigError, DataError
from rnnlab.evaluation import tagging_scores
from rnnlab.models.tagger import TaggerConfig, build_tagger
from rnnlab.tasks.base import Learned, Task
from rnnlab.train import TrainConfig


@dataclass(frozen=True)
class TaggerModel(Config):
    cell: CellName = "lstm"  # recurrent cell
    hidden_size: int = 128  # [N] hidden units per layer and direction
    num_layers: int = 1  # [N] recurrent layers
    bidirectional: bool = True  # read the whole sequence both ways (off: a causal tagger, usable online)
    dropout: float = 0.3  # [P] dropout probability
    embedding_dim: int = 100  # [N] word embedding size (extra columns and the word shape get 16 each)
    baseline: bool = False  # per-step MLP, no context


@dataclass(frozen=True)
class TagData(Config):
    hapt: str | None = None  # [DIR] HAPT raw data folder (acc_exp*_user*.txt, labels.txt)
    conll: str | None = None  # [FILE] conll2000.zip, or a CoNLL column training file
    test_file: str | None = None  # [FILE] CoNLL column test file (with a plain --conll file)
    window: int = 256  # [N] frames per training window (frame data)
    batch_size: int = 32  # [N] sequences per batch
    val_fraction: float = 0.1  # [F] share of a CoNLL training file held out to pick the best weights

    def __post_init__(self) -> None:
        if bool(self.hapt) == bool(self.conll):
            raise ConfigError("give exactly one data source: --hapt or --conll")
        if self.window < 2 or self.batch_size < 1:
            raise ConfigError(f"need window >= 2 and batch size >= 1, got {self.window} and {self.batch_size}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class TagOptions(Config):
    model: TaggerModel = field(default_factory=TaggerModel)
    data: TagData = None  # a data source is required
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=10, eval_every=200, lr=2e-3))


@dataclass(frozen=True)
class ColumnData(Config):
    conll: str | None = None  # [FILE] tagger: a CoNLL column file


@dataclass
class TagSplit:
    inputs: list  # sentences (tokens with columns) or (T, F) frame arrays
    tags: list  # per sequence: list of tag names (str), or an int array of class ids with IGNORE


@dataclass
class RawTags:
    splits: dict[str, TagSplit | None]  # train, val, test
    input: str  # "tokens" or "frames"
    names: list[str]  # tag names in id order


@dataclass
class TaggerLearned(Learned):
    tags: list[str]
    encoder: ColumnEncoder | FeatureEncoder
    input: str  # "tokens" or "frames"

    def to_dict(self) -> dict:
        return {"tags": self.tags, "encoder": self.encoder.to_dict(), "input": self.input}

    @classmethod
    def load(cls, saved: dict, read) -> TaggerLearned:
        return cls(list(saved["tags"]), encoder_from_dict(saved["encoder"]), saved.get("input", "tokens"))

    def encode(self, split: TagSplit) -> tuple[list, list, list[str]]:
        """(inputs, targets, tag names) for a split. Token tags become ids; a tag the model never saw
        in training gets a new id after them (scored as an error, never predicted). Frame labels are
        class ids already."""
        items = [self.encoder.encode(x) for x in split.inputs]
        if self.input != "tokens":
            return items, [torch.as_tensor(t, dtype=torch.int64) for t in split.tags], self.tags
        names = list(self.tags) + sorted({t for tags in split.tags for t in tags} - set(self.tags))
        index = {n: i for i, n in enumerate(names)}
        return items, [torch.tensor([index[t] for t in tags]) for tags in split.tags], names


def read_column_split(path: str) -> TagSplit:
    """A CoNLL column file (or the test.txt inside a conll2000-style zip) as a split."""
    sentences = read_conll(path, "test.txt") if zipfile.is_zipfile(path) else read_conll(path)
    return TagSplit([s[0] for s in sentences], [s[1] for s in sentences])


class TagTask(Task):
    name, kind = "tag", "tagger"
    help = "sequence tagging (many-to-many aligned): frames, chunks"
    description = (
        "Train a tagger (or, with --baseline, a per-step MLP): HAPT accelerometer frames or CoNLL column files "
        "(word ... tag). Prints test accuracy, macro-F1 and chunk F1 at the end."
    )
    Options, ModelConfig, Learned, EvalData = TagOptions, TaggerConfig, TaggerLearned, ColumnData

    def read(self, options: TagOptions) -> RawTags:
        d = options.data
        if d.hapt:
            pieces, names = hapt_splits(d.hapt, d.window)
            splits = {k: TagSplit([p[0] for p in v], [p[1] for p in v]) for k, v in pieces.items()}
            return RawTags(splits, "frames", names)
        if zipfile.is_zipfile(d.conll):
            train, test = read_conll(d.conll, "train.txt"), read_conll(d.conll, "test.txt")
        else:
            train, test = read_conll(d.conll), read_conll(d.test_file) if d.test_file else None
        order = np.random.default_rng(options.train.seed).permutation(len(train))
        n_val = int(round(len(train) * d.val_fraction))
        parts = {"train": [train[i] for i in order[n_val:]], "val": [train[i] for i in order[:n_val]], "test": test}
        splits = {k: TagSplit([s[0] for s in v], [s[1] for s in v]) if v else None for k, v in parts.items()}
        return RawTags(splits, "tokens", sorted({t for tags in splits["train"].tags for t in tags}))

    def fit(self, options, raw: RawTags) -> TaggerLearned:
        if len(raw.names) < 2:
            raise DataError("the training data has only one tag; a tagger needs two or more")
        train = raw.splits["train"].inputs
        encoder = ColumnEncoder.fit(train, min_count=2) if raw.input == "tokens" else FeatureEncoder.fit(train)
        return TaggerLearned(raw.names, encoder, raw.input)

    def encode(self, options, learned: TaggerLearned, raw: RawTags) -> dict:
        return {k: learned.encode(v) if v else None for k, v in raw.splits.items()}

    def model_config(self, options: TagOptions, learned: TaggerLearned) -> TaggerConfig:
        m = options.model
        dims = (m.embedding_dim, *[16] * (len(learned.encoder.vocabs) - 1)) if learned.input == "tokens" else ()
        return TaggerConfig(
            num_tags=len(learned.tags),
            **learned.encoder.input_config(),
            embedding_dims=dims,
            cell=m.cell,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            bidirectional=m.bidirectional,
            dropout=m.dropout,
            recurrent=not m.baseline,
        )

    def check_learned(self, learned: TaggerLearned, config: TaggerConfig) -> None:
        if len(learned.tags) != config.num_tags or learned.encoder.input_config() != {
            k: getattr(config, k) for k in learned.encoder.input_config()
        }:
            raise ValueError("the tags or the input encoder do not fit the model's sizes")

    def build(self, config: TaggerConfig):
        return build_tagger(config)

    def batches(self, options: TagOptions, data: dict) -> BucketBatches:
        items, targets, _ = data["train"]
        return BucketBatches(items, min(options.data.batch_size, len(items)), targets=targets, seed=options.train.seed)

    def validator(self, options, learned, data: dict):
        def validate(model) -> dict[str, float]:
            if data["val"] is None:
                return {}
            s = tagging_scores(model, *data["val"])
            chunk = {"val_chunk_f1": s["chunk_f1"]} if "chunk_f1" in s else {}
            main = s.get("chunk_f1", s["macro_f1"])
            return {
                "val_loss": s["loss"],
                "val_accuracy": s["accuracy"],
                "val_macro_f1": s["macro_f1"],
                **chunk,
                "score": main,
            }

        return validate

    def test(self, run, data: dict) -> dict | None:
        return None if data["test"] is None else tagging_scores(run.model, *data["test"])

    def evaluate(self, run, given: ColumnData | None) -> dict:
        if given is not None and given.conll:
            split = read_column_split(given.conll)
        else:
            split = self.read(run.options).splits["test"]
            if split is None:
                raise DataError(f"{run.path} has no test split; give --conll FILE")
        return tagging_scores(run.model, *run.learned.encode(split))

    def format_scores(self, what: str, s: dict) -> str:
        what = what or f"{s['sequences']:,} sequences"
        line = f"{what}: per-step accuracy {100 * s['accuracy']:.2f}%, macro-F1 {100 * s['macro_f1']:.2f}%"
        if "chunk_f1" in s:
            line += (
                f", chunk F1 {100 * s['chunk_f1']:.2f}% (precision {100 * s['chunk_precision']:.2f}%, "
                f"recall {100 * s['chunk_recall']:.2f}%)"
            )
        return line

    def predict(self, run, inputs: list) -> list:
        """Tags for one sentence given as words (extra columns, if the model was trained with some, as word/POS)."""
        if not inputs:
            raise DataError("give the sentence to tag as words, e.g. rnnlab predict RUN He reckons the deficit")
        if run.learned.input != "tokens":
            raise DataError("a frame tagger tags recordings; use rnnlab eval for them")
        tokens = [w.split("/") if "/" in w[1:] else [w] for w in inputs]
        ids = run.learned.encoder.encode(tokens)
        with torch.inference_mode():
            logits, _ = run.model(ids[None].to(device_of(run.model)), torch.tensor([len(tokens)]))
        return [(word, run.learned.tags[int(i)]) for word, i in zip(inputs, logits[0].argmax(-1))]

    def format_prediction(self, prediction) -> str:
        return "\t".join(prediction)


TASK = TagTask()
