"""Parallel text for translation: line-aligned files, and batches of sentence pairs.

A corpus is a Multi30k-style folder holding ``{train,val,test_2016_flickr}.{LANG}(.gz)``, or
explicit (source, target) files per split, one sentence per line, aligned by line.

    src, tgt = read_pairs(files("train", folder="multi30k", src_lang="de", tgt_lang="en"))
    batch = PairBatches(src_ids, tgt_ids, batch_size=64, seed=0).batch(step)   # a PairBatch
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.data.batching import BucketBatches, PaddedBatch
from rnnlab.data.text import read_bytes
from rnnlab.data.tokens import IGNORE, PAD
from rnnlab.errors import DataError

SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}  # the Multi30k file names


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, or of a gzip of one."""
    data = read_bytes(path)
    try:
        data = gzip.decompress(data) if Path(path).suffix == ".gz" else data
        return data.decode("utf-8").rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError, EOFError):
        raise DataError(f"{path}: not a readable UTF-8 text file (or gzip of one)") from None


def folder_files(folder: str, split: str, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    """The (source, target) files of a split in a Multi30k-style folder (None if absent; training must exist)."""
    name = SPLITS[split]
    found = []
    for lang in (src_lang, tgt_lang):
        for suffix in (".gz", ""):
            path = Path(folder) / f"{name}.{lang}{suffix}"
            if path.is_file():
                found.append(str(path))
                break
    if len(found) < 2:
        if split == "train":
            raise DataError(f"{folder}: no {name}.{src_lang}(.gz) and {name}.{tgt_lang}(.gz)")
        return None
    return found[0], found[1]


def read_pairs(files: tuple[str, str] | None) -> tuple[list[str], list[str]] | None:
    """(source lines, target lines) of two aligned files (None for no files)."""
    if files is None:
        return None
    src, tgt = read_lines(files[0]), read_lines(files[1])
    if len(src) != len(tgt):
        raise DataError(f"{files[0]} has {len(src)} lines but {files[1]} has {len(tgt)}: they must align")
    return src, tgt


@dataclass
class PairBatch:
    src: torch.Tensor  # (B, S)
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T): BOS y_1 ... y_n, PAD after
    tgt_out: torch.Tensor  # (B, T): y_1 ... y_n EOS, IGNORE after
    sampling_prob: float = 0.0  # share of decoder steps fed the model's own guess (scheduled sampling)
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return int((self.tgt_out != IGNORE).sum())


def pair_batch(padded: PaddedBatch, sampling_prob: float = 0.0) -> PairBatch:
    """From a PaddedBatch whose targets are BOS ... EOS sequences padded with IGNORE."""
    full = padded.targets  # (B, T + 1)
    tgt_in = full[:, :-1].masked_fill(full[:, :-1] == IGNORE, PAD)
    return PairBatch(padded.inputs, padded.lengths, tgt_in, full[:, 1:], sampling_prob)


class PairBatches:
    """Length-bucketed sentence pairs; each batch carries the share of decoder steps fed the model's
    own guess at its step: 1 - teacher_forcing, ramped up to ``scheduled_sampling`` over ``ramp_steps``."""

    def __init__(
        self, src: list, tgt: list, batch_size: int, seed: int, teacher_forcing=1.0, scheduled_sampling=0.0, ramp_steps=None
    ) -> None:
        self.inner = BucketBatches(src, batch_size, targets=tgt, seed=seed)
        self.teacher_forcing, self.scheduled_sampling = teacher_forcing, scheduled_sampling
        self.ramp_steps = ramp_steps or 10 * len(self.inner)  # the step budget, else ten epochs

    def __len__(self) -> int:
        return len(self.inner)

    def sampling_prob(self, step: int) -> float:
        p = 1.0 - self.teacher_forcing
        if self.scheduled_sampling > 0:
            p = max(p, self.scheduled_sampling * min(1.0, step / self.ramp_steps))
        return p

    def batch(self, step: int) -> PairBatch:
        return pair_batch(self.inner.batch(step), self.sampling_prob(step))
