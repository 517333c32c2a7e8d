"""Reading and writing the plain CSV tables of ``fill-table`` and ``mowing-table``.

One place for what both commands check before their own rules: the file is a
readable CSV with the required columns, at least one row and no empty id;
numeric columns hold numbers or empty cells; outputs appear atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.storage import atomic_write

#: Cell values read as "no value".
EMPTY = ("", "nan", "na", "null", "none")


def read_csv_table(path: Path, required: Sequence[str], optional: str,
                   need: str | None = None) -> pd.DataFrame:
    """The table as strings, columns stripped; InputError (one line) for what is unusable.

    ``optional`` describes the optional columns for the missing-column message; ``need``
    the columns a table should have, where more than ``required`` (default: those).
    """
    need = need or ",".join(required)
    if not path.is_file():
        raise InputError(f"--input {path}: no such file; pass a CSV with columns {need}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--input {path}: not a readable CSV ({msg})") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            f"--input {path}: missing column(s) {', '.join(missing)}; need {need} ({optional})"
        )
    if df.empty:
        raise InputError(f"--input {path}: the table has no rows")
    empty_id = df["id"].str.strip().eq("")
    if empty_id.any():
        raise InputError(
            f"--input {path}: row {int(np.flatnonzero(empty_id.to_numpy())[0]) + 2} has an empty id"
        )
    return df


def numeric_column(df: pd.DataFrame, col: str, path: Path, gap: str) -> np.ndarray:
    """A column as float64, NaN for empty cells; InputError naming the first non-number.

    ``gap`` says what an empty cell means (for the message).
    """
    raw = df[col].astype(str).str.strip()
    empty = raw.str.lower().isin(EMPTY)
    values = pd.to_numeric(raw.where(~empty, ""), errors="coerce")
    bad = values.isna() & ~empty
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"--input {path}: column {col!r} row {i + 2} holds {raw.iloc[i]!r}, not a number "
            f"(leave the cell empty for {gap})"
        )
    return values.to_numpy(dtype=np.float64)


def write_csv_atomic(df: pd.DataFrame, output: Path, float_format: str | None = None) -> None:
    """Write a CSV through a temporary file in the same folder, then rename."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output) as tmp, open(tmp, "w", newline="") as fh:
        df.to_csv(fh, index=False, float_format=float_format)
