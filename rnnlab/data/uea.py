"""The UEA/sktime ``.ts`` format for multivariate series classification, any number of dimensions,
equal or variable length::

    @problemName JapaneseVowels
    @dimensions 12
    @classLabel true 1 2 3 ...
    @data
    1.86,1.89,...:-0.20,-0.19,...:...:1        <- one series per line: each dimension's values
                                                   (comma-separated), dimensions separated by ':',
                                                   the class label last
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data.text import read_bytes
from rnnlab.errors import DataError


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """([(T_i, D) float32 arrays], [label strings])."""
    try:
        lines = read_bytes(path).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 .ts file") from None
    series, labels, in_data, dims = [], [], False, None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@dimensions"):
                value = line.split()[1:2]
                if not value or not value[0].isdigit() or int(value[0]) < 1:
                    raise DataError(f"{path}:{n}: expected '@dimensions N', got {line[:60]!r}")
                dims = int(value[0])
            if line.lower() == "@data":
                in_data = True
            continue
        *fields, label = line.split(":")
        if not fields:
            raise DataError(f"{path}:{n}: expected values:...:label, got {line[:60]!r}")
        if dims is not None and len(fields) != dims:
            raise DataError(f"{path}:{n}: expected {dims} dimensions, got {len(fields)}")
        try:
            columns = [np.array([float(v) for v in f.split(",")], dtype=np.float32) for f in fields]
        except ValueError:
            raise DataError(f"{path}:{n}: a value is not a number") from None
        if len({len(c) for c in columns}) != 1:
            raise DataError(f"{path}:{n}: the dimensions have different lengths")
        x = np.stack(columns, axis=1)  # (T, D)
        if not np.isfinite(x).all():
            raise DataError(f"{path}:{n}: missing or infinite values (NaN) are not supported")
        series.append(x)
        labels.append(label.strip())
    if not in_data or not series:
        raise DataError(f"{path}: no @data section with series (is it a .ts file?)")
    return series, labels
