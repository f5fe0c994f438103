"""UCI HAPT raw accelerometer recordings with per-frame activity labels (Reyes-Ortiz et al.).

    acc_expNN_userNN.txt   one frame per line at 50 Hz: x y z acceleration (g)
    labels.txt             'exp user activity start_frame end_frame' (1-based, inclusive)
    activity_labels.txt    'id NAME'

Frames outside every labelled segment get IGNORE (-100): they count in neither loss nor score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.text import check_regular_file, read_text
from rnnlab.data.tokens import IGNORE
from rnnlab.errors import DataError


@dataclass
class Recording:
    experiment: int
    user: int
    frames: np.ndarray  # (T, 3) float32
    labels: np.ndarray  # (T,) int64 class index 0..11, or IGNORE


def read_hapt(folder: str | Path) -> tuple[list[Recording], list[str]]:
    """(recordings, activity names in class-index order)."""
    root = Path(folder)
    if not (root / "labels.txt").is_file() or not (root / "activity_labels.txt").is_file():
        raise DataError(f"{folder}: expected labels.txt and activity_labels.txt (the HAPT raw data)")
    try:
        names = [line.split(maxsplit=1)[1].strip().replace("\\_", "_") for line in _lines(root / "activity_labels.txt")]
        segments = np.loadtxt(check_regular_file(root / "labels.txt"), dtype=np.int64, ndmin=2)
        if segments.size and segments.shape[1] != 5:
            raise ValueError("labels.txt needs 5 columns: exp user activity start end")
        recordings = []
        for path in sorted(root.glob("acc_exp*_user*.txt")):
            exp, user = map(int, re.findall(r"\d+", path.stem)[:2])
            frames = np.loadtxt(check_regular_file(path), dtype=np.float32, ndmin=2)
            if frames.shape[1] != 3 or not np.isfinite(frames).all():
                raise ValueError(f"{path.name} needs 3 finite numbers per line")
            labels = np.full(len(frames), IGNORE, dtype=np.int64)
            for _, _, activity, start, end in segments[(segments[:, 0] == exp) & (segments[:, 1] == user)]:
                if not (1 <= activity <= len(names) and 1 <= start <= end <= len(frames)):
                    raise ValueError(f"labels.txt: segment {start}-{end} of activity {activity} does not fit {path.name}")
                labels[start - 1 : end] = activity - 1
            recordings.append(Recording(exp, user, frames, labels))
    except (ValueError, IndexError) as e:
        raise DataError(f"{folder}: not the HAPT raw data layout ({e})") from None
    if not recordings:
        raise DataError(f"{folder}: no acc_expNN_userNN.txt recordings")
    return recordings, names


def _lines(path: Path) -> list[str]:
    return [line for line in read_text(path).splitlines() if line.strip()]


# Split by recording: each of the four users recorded two sessions; the first of every user trains,
# the second of users 1-2 validates, the second of users 3-4 tests. (With only four users, holding a
# whole user out mostly measures how the phone sat on that user: measured, see the README.)
HAPT_EXPERIMENTS = {"train": (1, 3, 5, 7), "val": (2, 4), "test": (6, 8)}


def windows(frames: np.ndarray, labels: np.ndarray, window: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames, labels) pieces of ``window`` steps every ``stride`` steps, the last one flush with the end."""
    starts = list(range(0, max(1, len(frames) - window + 1), stride))
    if starts[-1] + window < len(frames):
        starts.append(len(frames) - window)
    return [(frames[s : s + window], labels[s : s + window]) for s in starts]


def hapt_splits(folder: str | Path, window: int) -> tuple[dict[str, list[tuple[np.ndarray, np.ndarray]]], list[str]]:
    """({split: [(frames (W, 3), labels (W,))]}, activity names): windows of every recording of each
    split (overlapping by half for training), leaving out windows without a single labelled frame."""
    recordings, names = read_hapt(folder)
    splits = {}
    for part, experiments in HAPT_EXPERIMENTS.items():
        stride = window // 2 if part == "train" else window
        pieces = [w for r in recordings if r.experiment in experiments for w in windows(r.frames, r.labels, window, stride)]
        splits[part] = [p for p in pieces if (p[1] != IGNORE).any()]
    if not splits["train"] or not splits["test"]:
        raise DataError(f"{folder}: expected the recordings acc_exp01 ... acc_exp08")
    return splits, names
