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

from rnnlab.errors import DataError

IGNORE = -100


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
    names = []
    for line in (root / "activity_labels.txt").read_text().splitlines():
        if line.strip():
            _, name = line.split(maxsplit=1)
            names.append(name.strip().replace("\\_", "_"))
    segments = np.loadtxt(root / "labels.txt", dtype=np.int64, ndmin=2)
    recordings = []
    for path in sorted(root.glob("acc_exp*_user*.txt")):
        exp, user = map(int, re.findall(r"\d+", path.stem))
        frames = np.loadtxt(path, dtype=np.float32, ndmin=2)
        labels = np.full(len(frames), IGNORE, dtype=np.int64)
        for _, _, activity, start, end in segments[(segments[:, 0] == exp) & (segments[:, 1] == user)]:
            labels[start - 1 : end] = activity - 1
        recordings.append(Recording(exp, user, frames, labels))
    if not recordings:
        raise DataError(f"{folder}: no acc_expNN_userNN.txt recordings")
    return recordings, names
