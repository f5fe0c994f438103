"""Spoken digit strings built from the Free Spoken Digit Dataset (8 kHz, ``{digit}_{speaker}_{index}.wav``).

Utterances of 3-7 digits are built by joining recordings with random pauses of 0.05-0.3 s of faint
noise. The test speaker (yweweler) is never heard in training: george, jackson, lucas, nicolas and
theo train on their recordings 0-44 of each digit, and their recordings 45-49 validate. (With theo
held out for validation instead, four training voices, 16 minutes: 26% CER on theo, 13.0% on
yweweler, measured.) Training utterances are drawn afresh for every step (from the step number:
resumable) and augmented (vocal tract length perturbation, masked mel bands); validation and test
sets are fixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.audio import RATE, log_mel, mask_bands, read_wav
from rnnlab.data.batching import pad
from rnnlab.errors import DataError
from rnnlab.extras import require

TRAIN_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
TEST_SPEAKERS = ("yweweler",)
VAL_FROM_INDEX = 45  # a training speaker's recordings 45-49 of each digit validate, 0-44 train
SPLITS = ("train", "val", "test")

Pool = dict[int, list[np.ndarray]]  # digit -> recordings


def read_fsdd(folder: str | Path) -> dict[str, Pool]:
    """split -> digit -> recordings: the test speaker's for test, the others' split by recording index."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{folder}: no such folder (expected the FSDD recordings digit_speaker_index.wav)")
    files = sorted(root.glob("*.wav"))
    if not files:
        raise DataError(f"{folder}: no .wav recordings (expected the FSDD layout digit_speaker_index.wav)")
    out = {split: {d: [] for d in range(10)} for split in SPLITS}
    for path in files:
        m = re.fullmatch(r"(\d)_([a-z]+)_(\d+)", path.stem)
        if not m:
            continue
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        if speaker in TEST_SPEAKERS:
            out["test"][digit].append(read_wav(path))
        elif speaker in TRAIN_SPEAKERS:
            out["val" if index >= VAL_FROM_INDEX else "train"][digit].append(read_wav(path))
    for split in ("train", "test"):
        missing = [d for d, recordings in out[split].items() if not recordings]
        if missing:
            raise DataError(
                f"{folder}: no {split} recordings of the digit(s) {', '.join(map(str, missing))} "
                f"(training speakers {', '.join(TRAIN_SPEAKERS)}; test speaker {', '.join(TEST_SPEAKERS)})"
            )
    if not all(out["val"].values()):
        out["val"] = out["train"]  # a corpus without recordings 45-49: validate on training voices' other takes
    return out


def make_utterance(pool: Pool, rng: np.random.Generator, augment: bool = False) -> tuple[np.ndarray, str]:
    """3-7 random digits joined by pauses of faint noise -> (audio, "583").

    With ``augment`` (training only), every recording is resampled by a random factor in [0.85, 1.15]
    and played back at 8 kHz, which shifts its pitch and formants as a shorter or longer vocal tract
    would (vocal tract length perturbation, Jaitly & Hinton 2013): five training voices become many.
    """
    librosa = require("librosa", "audio")

    digits = rng.integers(0, 10, rng.integers(3, 8))
    level = rng.uniform(0.001, 0.01) if augment else 0.003
    noise = lambda seconds: (rng.standard_normal(int(seconds * RATE)) * level).astype(np.float32)  # noqa: E731
    pieces = [noise(rng.uniform(0.05, 0.3))]
    for d in digits:
        recordings = pool[int(d)]
        audio = recordings[rng.integers(len(recordings))]
        if augment:
            audio = librosa.resample(audio, orig_sr=RATE, target_sr=int(RATE * rng.uniform(0.85, 1.15)))
        pieces.append(audio)
        pieces.append(noise(rng.uniform(0.05, 0.3)))
    return np.concatenate(pieces), "".join(str(int(d)) for d in digits)


def fixed_set(pool: Pool, size: int, seed: int) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng([seed, 12345])
    return [make_utterance(pool, rng) for _ in range(size)]


@dataclass
class SpeechBatch:
    inputs: torch.Tensor  # (B, T, 40) normalised log-mel
    lengths: torch.Tensor  # (B,)
    labels: torch.Tensor  # (sum of label lengths,) digits + 1 (0 is the blank)
    label_lengths: torch.Tensor
    texts: list[str]
    reset: bool = True

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def rows(self, rows: slice) -> SpeechBatch:
        """The utterances ``rows`` of the batch (the labels are one flat tensor, cut by their lengths)."""
        ends = self.label_lengths.cumsum(0)
        first, last = int(ends[rows.start] - self.label_lengths[rows.start]), int(ends[rows.stop - 1])
        return SpeechBatch(
            self.inputs[rows], self.lengths[rows], self.labels[first:last], self.label_lengths[rows], self.texts[rows]
        )


def make_batch(
    utterances: list[tuple[np.ndarray, str]], mean: np.ndarray, std: np.ndarray, rng: np.random.Generator | None = None
) -> SpeechBatch:
    """Features for each utterance (with ``rng``, training: masked bands), padded into one batch."""
    feats = [(log_mel(a) - mean) / std for a, _ in utterances]
    if rng is not None:
        feats = [mask_bands(f, rng) for f in feats]
    feats = [torch.from_numpy(f.astype(np.float32)) for f in feats]
    texts = [t for _, t in utterances]
    labels = torch.tensor([int(ch) + 1 for t in texts for ch in t], dtype=torch.int64)
    return SpeechBatch(
        pad(feats), torch.tensor([len(f) for f in feats]), labels, torch.tensor([len(t) for t in texts]), texts
    )


class SpeechBatches:
    def __init__(self, pool: Pool, batch_size: int, mean, std, seed: int) -> None:
        self.pool, self.batch_size, self.mean, self.std, self.seed = pool, batch_size, mean, std, seed

    def __len__(self) -> int:
        return 100  # utterances are drawn afresh every step; an "epoch" is just a unit of count

    def batch(self, step: int) -> SpeechBatch:
        rng = np.random.default_rng([self.seed, step])
        utterances = [make_utterance(self.pool, rng, augment=True) for _ in range(self.batch_size)]
        return make_batch(utterances, self.mean, self.std, rng)
