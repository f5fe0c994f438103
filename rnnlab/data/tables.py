"""Labelled examples: texts and labels from CSV/TSV tables, and stratified validation splits.

split = read_table("reviews.csv", "text", "label")     # Split(inputs=[...], labels=[...])
train, val = holdout(split, 0.1, seed=0)               # 10% of each class held out
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.data.text import check_regular_file
from rnnlab.errors import DataError
from rnnlab.extras import require


@dataclass
class Split:
    inputs: list  # texts (str) or series ((T, F) arrays)
    labels: list[str]


def read_table(path: str, text_column: str, label_column: str | None) -> Split:
    """Texts and labels from a CSV (or TSV, by extension) file, with clear errors."""
    pd = require("pandas", "text")

    p = check_regular_file(path)
    try:
        sep = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
        df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
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


def holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """A stratified random ``fraction`` of ``split`` for validation (None when fraction is 0).
    A class with a single example stays in training."""
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
    return pick(train_idx), (pick(sorted(val)) if val else None)
