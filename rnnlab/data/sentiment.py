"""Sentiment data in its usual distribution formats, read as (texts, labels).

* IMDB (Maas et al. 2011) straight from ``aclImdb_v1.tar.gz``: ``aclImdb/{train,test}/{pos,neg}/*.txt``,
  label 1 = positive; and the 50,000 unlabelled ``aclImdb/train/unsup/*.txt`` reviews, which the
  data set provides for unsupervised learning (no labels, never scored).
* SST (Socher et al. 2013) sentence files ``stsa.binary.{train,dev,test}``: ``label sentence`` per line.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from rnnlab.data.text import check_regular_file, read_bytes
from rnnlab.errors import DataError

SPLITS = ("train", "test")


def read_imdb(tarball: str | Path) -> dict[str, tuple[list[str], list[int]]]:
    """{'train': (texts, labels), 'test': (texts, labels), 'unsup': (texts, [])}: 25,000, 25,000 and
    50,000 reviews, in the tarball's order."""
    path = check_regular_file(tarball)
    out: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in (*SPLITS, "unsup")}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) != 4 or parts[1] not in SPLITS:
                    continue
                if parts[2] == "unsup":
                    out["unsup"][0].append(tar.extractfile(member).read().decode("utf-8"))
                    continue
                if parts[2] not in ("pos", "neg"):
                    continue
                text = tar.extractfile(member).read().decode("utf-8")
                texts, labels = out[parts[1]]
                texts.append(text)
                labels.append(int(parts[2] == "pos"))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{tarball}: not a readable tar archive ({e})") from None
    except UnicodeDecodeError:
        raise DataError(f"{tarball}: holds a review that is not UTF-8 (expected aclImdb_v1.tar.gz)") from None
    if not out["train"][0]:
        raise DataError(f"{tarball}: holds no aclImdb/train/{{pos,neg}}/*.txt reviews")
    return out


def read_sst(path: str | Path) -> tuple[list[str], list[int]]:
    """One ``label sentence`` per line (the harvardnlp stsa.* files)."""
    try:
        lines = read_bytes(path).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    texts, labels = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, _, sentence = line.partition(" ")
        if not label.isdigit() or not sentence.strip():
            raise DataError(f"{path}:{n}: expected 'label sentence', got {line[:60]!r}")
        texts.append(sentence)
        labels.append(int(label))
    return texts, labels
