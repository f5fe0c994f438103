"""Time series from CSV files: an index or date column and one or more numeric value columns.

df = read_series("msft_daily.csv", values=["Close"], index="Date")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.errors import DataError


def read_series(path: str | Path, values: list[str] | None = None, index: str | None = None):
    """A pandas DataFrame of float64 value columns indexed by ``index`` (the first column by default).

    ``values`` defaults to every column except the index. Errors name the column and row.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    if df.empty:
        raise DataError(f"{path}: no rows")
    columns = list(df.columns)
    index = index or columns[0]
    if index not in columns:
        raise DataError(f"{path}: no column {index!r}; columns are {', '.join(map(str, columns))}")
    if values is None:
        values = [c for c in columns if c != index]
        if not values:
            raise DataError(f"{path}: no value column besides {index!r}")
    for c in values:
        if c not in columns:
            raise DataError(f"{path}: no column {c!r}; columns are {', '.join(map(str, columns))}")
    out = df.set_index(index)[values]
    for c in values:
        numeric = pd.to_numeric(out[c], errors="coerce")
        bad = numeric.isna() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {c!r} row {row + 2} is {out[c].iloc[row]!r}, not a number "
                "(fill or drop missing values first)"
            )
        out[c] = numeric.astype(float)
    return out
