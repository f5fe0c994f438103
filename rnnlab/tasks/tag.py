"""Sequence tagging (many-to-many, aligned), end to end: a label for every step.

Sources (exactly one):

    hapt=DIR                       HAPT raw accelerometer recordings, per-frame activities; split by
                                   recording (each user's first session trains; the second validates
                                   for users 1-2, tests for users 3-4); unlabelled frames ignored
    conll=FILE.zip | FILE          CoNLL column files (word ... tag): NLTK's conll2000.zip holds
                                   train.txt and test.txt; or a plain training file (+ test_file)

Frame data trains on windows of ``window`` frames and is scored window by window over whole
recordings; scores count labelled steps only. Chunk tags (B-X / I-X / O) are also scored at the
chunk level (precision, recall, F1, as conlleval does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab import checkpoint
from rnnlab.data.batching import BucketBatches, eval_batches
from rnnlab.data.conll import chunk_f1, read_conll
from rnnlab.data.encoders import ColumnEncoder, FeatureEncoder, encoder_from_dict
from rnnlab.data.hapt import read_hapt
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.tagger import IGNORE, TaggerConfig, build_tagger, tagging_loss
from rnnlab.tasks.runs import options_from_dict, start_or_resume
from rnnlab.train import TrainConfig, Trainer

KIND = "tagger"
# HAPT split by recording: each of the four users recorded two sessions; the first of every user trains,
# the second of users 1-2 validates, the second of users 3-4 tests. (With only four users, holding a
# whole user out mostly measures how the phone sat on that user: measured, see the README.)
HAPT_EXPERIMENTS = {"train": (1, 3, 5, 7), "val": (2, 4), "test": (6, 8)}


@dataclass(frozen=True)
class TagSource:
    hapt: str | None = None
    conll: str | None = None
    test_file: str | None = None  # for a plain CoNLL training file

    def __post_init__(self) -> None:
        if bool(self.hapt) == bool(self.conll):
            raise ConfigError("give exactly one data source: --hapt or --conll")


@dataclass
class TagSplit:
    inputs: list  # sentences (tokens with columns) or (T, F) frame arrays
    tags: list  # per sequence: list of tag names (str), or an int array of class ids with IGNORE


@dataclass
class TagData:
    train: TagSplit
    val: TagSplit | None
    test: TagSplit | None
    kind: str  # "tokens" or "frames"
    names: list[str]  # tag names in id order


def _windows(frames: np.ndarray, labels: np.ndarray, window: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    starts = list(range(0, max(1, len(frames) - window + 1), stride))
    if starts[-1] + window < len(frames):
        starts.append(len(frames) - window)
    return [(frames[s : s + window], labels[s : s + window]) for s in starts]


def load_source(src: TagSource, window: int, val_fraction: float, seed: int) -> TagData:
    if src.hapt:
        recordings, names = read_hapt(src.hapt)
        splits = {}
        for part, experiments in HAPT_EXPERIMENTS.items():
            stride = window // 2 if part == "train" else window  # overlapping for training only
            pieces = [
                w for r in recordings if r.experiment in experiments for w in _windows(r.frames, r.labels, window, stride)
            ]
            pieces = [p for p in pieces if (p[1] != IGNORE).any()]
            splits[part] = TagSplit([p[0] for p in pieces], [p[1] for p in pieces])
        if not splits["train"].inputs or not splits["test"].inputs:
            raise DataError(f"{src.hapt}: expected the recordings acc_exp01 ... acc_exp08")
        return TagData(splits["train"], splits["val"], splits["test"], "frames", names)
    path = Path(src.conll)
    import zipfile

    if zipfile.is_zipfile(path):
        train, test = read_conll(path, "train.txt"), read_conll(path, "test.txt")
    else:
        train = read_conll(path)
        test = read_conll(src.test_file) if src.test_file else None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    n_val = int(round(len(train) * val_fraction))
    val = [train[i] for i in order[:n_val]]
    train = [train[i] for i in order[n_val:]]
    names = sorted({t for _, tags in train for t in tags})
    split = lambda sents: TagSplit([s[0] for s in sents], [s[1] for s in sents]) if sents else None  # noqa: E731
    return TagData(split(train), split(val), split(test), "tokens", names)


def read_column_split(path: str) -> TagSplit:
    """A CoNLL column file (or the test.txt inside a conll2000-style zip) as a split."""
    import zipfile

    sentences = read_conll(path, "test.txt") if zipfile.is_zipfile(path) else read_conll(path)
    return TagSplit([s[0] for s in sentences], [s[1] for s in sentences])


@dataclass(frozen=True)
class TagOptions:
    source: TagSource
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    embedding_dim: int = 100  # the word's embedding; extra columns and the word shape get 16 each
    baseline: bool = False  # the per-step MLP instead of the recurrent tagger
    window: int = 256  # frames per training window (frame data)
    batch_size: int = 32
    val_fraction: float = 0.1  # of a CoNLL training file
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_minutes=10, eval_every=200, lr=2e-3))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TagOptions:
        return options_from_dict(cls, d, source=TagSource)


@dataclass
class TaggerRun:
    path: Path
    model: torch.nn.Module
    encoder: ColumnEncoder | FeatureEncoder
    names: list[str]
    config: dict


def encode_split(encoder, split: TagSplit, names: list[str] | None) -> tuple[list, list, list[str] | None]:
    """(inputs, targets, tag names) for a split. Token tags become ids in ``names``; a tag the model
    never saw in training gets a new id after them (it is scored as an error, never predicted).
    Frame labels (``names`` None) are class ids already."""
    items = [encoder.encode(x) for x in split.inputs]
    if names is None:
        return items, [torch.as_tensor(t, dtype=torch.int64) for t in split.tags], None
    extended = list(names) + sorted({t for tags in split.tags for t in tags} - set(names))
    index = {n: i for i, n in enumerate(extended)}
    return items, [torch.tensor([index[t] for t in tags]) for tags in split.tags], extended


def scores(model, items: list, targets: list, names: list[str], batch_size: int = 64) -> dict:
    """Loss, accuracy and macro-F1 over labelled steps; chunk-level F1 when the tags are B-/I-/O."""
    from sklearn.metrics import f1_score

    model.eval()
    total, count, gold, pred, seqs = 0.0, 0, [], [], [None] * len(items)
    with torch.inference_mode():
        for batch in eval_batches(items, batch_size, targets=targets):
            logits, _ = model(batch.inputs, batch.lengths)
            known = torch.where(batch.targets >= logits.shape[-1], IGNORE, batch.targets)  # unseen tags: no loss
            n = int((known != IGNORE).sum())
            total += float(tagging_loss(logits, known)) * n if n else 0.0
            count += n
            guess = logits.argmax(-1)
            for row, i in enumerate(batch.index.tolist()):
                length = int(batch.lengths[row])
                t, g = batch.targets[row, :length], guess[row, :length]
                keep = t != IGNORE
                gold.append(t[keep].numpy())
                pred.append(g[keep].numpy())
                seqs[i] = (t.tolist(), g.tolist())
    y, p = np.concatenate(gold), np.concatenate(pred)
    out = {
        "loss": total / max(count, 1),
        "accuracy": float((y == p).mean()),
        "macro_f1": float(f1_score(y, p, average="macro", labels=sorted(set(y.tolist())))),
    }
    if any(n.startswith(("B-", "I-")) for n in names):
        out.update(
            {
                f"chunk_{k}": v
                for k, v in chunk_f1(
                    [[names[i] for i in t] for t, _ in seqs], [[names[i] for i in g] for _, g in seqs]
                ).items()
            }
        )
    return out


def train(options: TagOptions, out: Path, resume: bool = False, progress: bool = True):
    """Train a tagger into ``out``; returns (TrainResult, TaggerRun, test scores or None)."""
    out = Path(out)
    options = start_or_resume(out, KIND, options, resume)
    data = load_source(options.source, options.window, options.val_fraction, options.train.seed)
    if len(data.names) < 2:
        raise DataError("the training data has only one tag; a tagger needs two or more")
    names = data.names if data.kind == "tokens" else None
    if data.kind == "tokens":
        encoder = ColumnEncoder.fit(data.train.inputs, min_count=2)
        dims = (options.embedding_dim, *[16] * (len(encoder.vocabs) - 1))
    else:
        encoder = FeatureEncoder.fit(data.train.inputs)
        dims = ()
    train_items, train_targets, _ = encode_split(encoder, data.train, names)
    val = encode_split(encoder, data.val, names) if data.val else None

    torch.manual_seed(options.train.seed)
    model_config = TaggerConfig(
        num_tags=len(data.names),
        **encoder.input_config(),
        embedding_dims=dims,
        cell=options.cell,
        hidden_size=options.hidden_size,
        num_layers=options.num_layers,
        bidirectional=options.bidirectional,
        dropout=options.dropout,
        recurrent=not options.baseline,
    )
    model = build_tagger(model_config)
    batches = BucketBatches(
        train_items, min(options.batch_size, len(train_items)), targets=train_targets, seed=options.train.seed
    )

    def evaluate(m) -> dict[str, float]:
        if val is None:
            return {}
        s = scores(m, val[0], val[1], val[2] or data.names)
        main = s.get("chunk_f1", s["macro_f1"])
        return {
            "val_loss": s["loss"],
            "val_accuracy": s["accuracy"],
            "val_macro_f1": s["macro_f1"],
            **({"val_chunk_f1": s["chunk_f1"]} if "chunk_f1" in s else {}),
            "score": main,
        }

    def describe() -> dict:
        return {
            "model": model_config.to_dict(),
            "tags": data.names,
            "encoder": encoder.to_dict(),
            "options": options.to_dict(),
            "input": data.kind,
        }

    trainer = Trainer(model, batches, evaluate, options.train, out, KIND, describe, progress)
    if resume:
        trainer.restore()
    result = trainer.fit()
    run = load_run(out)
    test = None
    if data.test is not None and result.interrupted is None:
        items, targets, extended = encode_split(run.encoder, data.test, names)
        test = scores(run.model, items, targets, extended or data.names)
    return result, run, test


def load_run(path: str | Path) -> TaggerRun:
    ckpt = checkpoint.load(path, KIND)
    try:
        config = TaggerConfig(**ckpt.config["model"])
        encoder = encoder_from_dict(ckpt.config["encoder"])
        names = list(ckpt.config["tags"])
    except (KeyError, TypeError, ValueError, DataError) as e:
        raise CheckpointError(f"{path}: config.json does not describe a tagger ({e})") from None
    model = build_tagger(config)
    checkpoint.load_module_state(model, ckpt.best_state(), ckpt.path)
    return TaggerRun(ckpt.path, model.eval(), encoder, names, ckpt.config)


def tag_sentence(run: TaggerRun, words: list[str]) -> list[str]:
    """Tags for a sentence given as words (extra columns, if the model was trained with some, as 'word/POS')."""
    tokens = [w.split("/") if "/" in w[1:] else [w] for w in words]
    ids = run.encoder.encode(tokens)
    with torch.inference_mode():
        logits, _ = run.model(ids[None], torch.tensor([len(tokens)]))
    return [run.names[int(i)] for i in logits[0].argmax(-1)]
