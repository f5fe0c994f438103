"""CoNLL-style column files for tagging (CoNLL-2000 chunking: ``word POS chunk``), one token per
line, a blank line between sentences; read from a plain file or from inside a zip (NLTK's
``conll2000.zip`` holds ``conll2000/train.txt`` and ``conll2000/test.txt``).

The first column is the word, the last the tag, any columns between are extra token features.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from rnnlab.data.text import check_regular_file, max_file_bytes, read_bytes
from rnnlab.errors import DataError
from rnnlab.extras import require

Sentence = tuple[list[list[str]], list[str]]  # (per token: [word, feature...], per token: tag)


def parse_columns(text: str, name: str) -> list[Sentence]:
    sentences, tokens, tags, width = [], [], [], None
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{name}:{n}: expected whitespace-separated columns (word ... tag), got {line[:60]!r}")
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataError(f"{name}:{n}: expected {width} columns like the lines before, got {len(fields)}")
        tokens.append(fields[:-1])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise DataError(f"{name}: no sentences found")
    return sentences


def read_conll(path: str | Path, member: str | None = None) -> list[Sentence]:
    """Sentences from a column file, or from ``member`` inside a zip archive."""
    p = check_regular_file(path)
    name = str(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.endswith(member or "")]
                if member is None or not names:
                    raise DataError(f"{path}: name a file inside the archive: {', '.join(z.namelist()[:6])}")
                if z.getinfo(names[0]).file_size > max_file_bytes():
                    raise DataError(f"{path}:{names[0]}: larger than rnnlab reads ({max_file_bytes():,} bytes)")
                data, name = z.read(names[0]), f"{path}:{names[0]}"
        else:
            data = read_bytes(p)
        return parse_columns(data.decode("utf-8"), name)
    except UnicodeDecodeError:
        raise DataError(f"{name}: not valid UTF-8") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip archive ({e})") from None


def chunk_f1(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Chunk-level precision, recall and F1 (a chunk counts only if its type and span both match),
    computed by seqeval in its default mode, which follows the CoNLL-2000 conlleval script."""
    metrics = require("seqeval.metrics", "text")
    f1_score, precision_score, recall_score = metrics.f1_score, metrics.precision_score, metrics.recall_score

    return {
        "precision": float(precision_score(gold, predicted)),
        "recall": float(recall_score(gold, predicted)),
        "f1": float(f1_score(gold, predicted)),
    }
