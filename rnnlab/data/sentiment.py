"""Sentiment data in its usual distribution formats, read as (texts, labels).

* IMDB (Maas et al. 2011) straight from ``aclImdb_v1.tar.gz``: ``aclImdb/{train,test}/{pos,neg}/*.txt``,
  label 1 = positive; and the 50,000 unlabelled ``aclImdb/train/unsup/*.txt`` reviews, which the
  data set provides for unsupervised learning (no labels, never scored).
* SST (Socher et al. 2013) sentence files ``stsa.binary.{train,dev,test}``: ``label sentence`` per line.
* NSMC-style Korean movie reviews (Park 2015): ``ratings_{train,test}.txt(.gz)``, ``id document label``.
"""

from __future__ import annotations

import gzip
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


def read_nsmc(folder: str | Path) -> dict[str, tuple[list[str], list[int]]]:
    """{'train': (texts, labels), 'test': (texts, labels)} from a folder holding the NSMC files
    ``ratings_{train,test}.txt`` (or ``.txt.gz``): tab-separated ``id document label``, label 1 for a
    positive review. Reviews with no text (the published files hold a few) are left out."""
    root = Path(folder)
    out = {}
    for split in ("train", "test"):
        names = [root / f"ratings_{split}.txt.gz", root / f"ratings_{split}.txt"]
        path = next((p for p in names if p.is_file()), None)
        if path is None:
            raise DataError(f"{folder}: expected ratings_{split}.txt(.gz) (the NSMC layout; rnnlab data fetch nsmc)")
        data = read_bytes(path)
        try:
            lines = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8").splitlines()
        except (OSError, EOFError, UnicodeDecodeError):
            raise DataError(f"{path}: not a UTF-8 text file (or gzip of one)") from None
        if not lines or lines[0].split("\t") != ["id", "document", "label"]:
            raise DataError(f"{path}: expected the header id<TAB>document<TAB>label")
        texts, labels = [], []
        for n, line in enumerate(lines[1:], 2):
            fields = line.split("\t")
            if len(fields) != 3 or fields[2] not in ("0", "1"):
                raise DataError(f"{path}:{n}: expected id<TAB>document<TAB>0 or 1, got {line[:60]!r}")
            if fields[1].strip():
                texts.append(fields[1])
                labels.append(int(fields[2]))
        out[split] = (texts, labels)
    return out
