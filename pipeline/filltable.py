"""``fill-table``: the SF gap filler applied to a plain CSV table.

Input columns ``id,date,ndvi`` (one row per series and date; each id's dates 6 days
apart from any start date; empty ndvi = gap), optional ``vv,vh`` (Sentinel-1
backscatter in dB, may be empty; a table without them is Sentinel-2 only, which is
also how the shipped network fills: its card withholds per-pixel Sentinel-1) and an
optional ``orbit`` column (``ascending``/``descending``, also ``asc``/``desc``/``A``/
``D``; empty = unknown, treated as ascending). Output columns
``id,date,ndvi_filled,ndvi_std`` for every input row, in input order; observed dates
keep their NDVI; series without any NDVI observation get empty values. Each row's
date also gives the network its day of year (grassland seasons are seasonal). The
output appears atomically (temporary file, then rename).

By default the network is first adapted to the table (:mod:`model.adapt`): fine-tuned
on the series' own clear dates, kept only if that is better on a held-out fifth of the
series, with its std calibrated there. Tables with fewer than ``model.adapt.MIN_SERIES``
usable series are filled with the weights as shipped; ``adapt=False`` always does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.tables import numeric_column, read_csv_table, write_csv_atomic

if TYPE_CHECKING:
    from model.adapt import Adaptation
    from model.data import PlotSeries

log = logging.getLogger(__name__)

REQUIRED = ("id", "date", "ndvi")
#: Optional Sentinel-1 columns (dB); absent = no radar for any row.
RADAR = ("vv", "vh")
STEP_DAYS = 6
_ORBITS = {"ascending": 0, "asc": 0, "a": 0, "descending": 1, "desc": 1, "d": 1}
#: Plausible backscatter range in dB; values outside are most likely linear units or junk.
DB_RANGE = (-60.0, 30.0)


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Read and validate a fill-table input.

    Returns the table (with parsed ``_date`` and ``_dir`` columns) and the row-aligned
    ndvi, vv and vh values. Raises :class:`InputError` with a one-line message.
    """
    path = Path(path)
    df = read_csv_table(path, REQUIRED, "optional: vv,vh in dB, orbit",
                        ",".join(REQUIRED + RADAR))
    ids = df["id"].str.strip()
    df["id"] = ids
    dates = pd.to_datetime(df["date"].str.strip(), errors="coerce", format="ISO8601")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(
            f"--input {path}: row {i + 2} has date {df['date'].iloc[i]!r}; use ISO dates "
            "like 2023-05-01"
        )
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    df["_date"] = dates.dt.normalize()
    ndvi = numeric_column(df, "ndvi", path, "a gap")
    out_of_range = np.isfinite(ndvi) & ((ndvi < -1) | (ndvi > 1))
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise InputError(
            f"--input {path}: ndvi {ndvi[i]} in row {i + 2} is outside [-1, 1]; pass NDVI, "
            "not scaled reflectance"
        )
    vv, vh = (numeric_column(df, c, path, "a gap") if c in df.columns else
              np.full(len(df), np.nan) for c in RADAR)
    for name, v in (("vv", vv), ("vh", vh)):
        bad = np.isfinite(v) & ((v < DB_RANGE[0]) | (v > DB_RANGE[1]))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"--input {path}: {name} {v[i]} in row {i + 2} is outside {DB_RANGE} dB; "
                "pass backscatter in dB (10*log10 of linear)"
            )
    if "orbit" in df.columns:
        key = df["orbit"].str.strip().str.lower()
        unknown = ~key.isin([*_ORBITS, ""])
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise InputError(
                f"--input {path}: orbit {df['orbit'].iloc[i]!r} in row {i + 2}; use "
                "ascending or descending (or leave empty)"
            )
        df["_dir"] = key.map(_ORBITS).fillna(0).astype(int)
    else:
        df["_dir"] = 0
    _check_dates(df, path)
    return df, ndvi, vv, vh


def _check_dates(df: pd.DataFrame, path: Path) -> None:
    """Every id's dates must be unique and exactly 6 days apart once sorted."""
    order = df.sort_values(["id", "_date"], kind="stable")
    same_id = order["id"].eq(order["id"].shift())
    gap = (order["_date"] - order["_date"].shift()).dt.days
    bad = same_id & gap.ne(STEP_DAYS)
    if bad.any():
        row = order[bad].iloc[0]
        g = gap[bad].iloc[0]
        what = "a repeated date" if g == 0 else f"dates {int(g)} days apart"
        raise InputError(
            f"--input {path}: id {row['id']!r} has {what} at {row['_date'].date()}; each "
            f"series needs one row per date, {STEP_DAYS} days apart, without holes "
            "(add rows with empty ndvi for gaps)"
        )


def fill_table(input: Path, output: Path, model_path: Path | None = None,
               adapt: bool = True, adapt_steps: int | None = None) -> Adaptation | None:
    """Fill the NDVI gaps of a CSV table with SF and write ``id,date,ndvi_filled,ndvi_std``.

    Args:
        input: CSV with columns ``id,date,ndvi`` (optional ``vv,vh``, ``orbit``).
        output: CSV to write (atomically).
        model_path: SF weights; ``None`` = shipped weights.
        adapt: adapt the network to the table first (module docstring).
        adapt_steps: fine-tuning steps (default ``model.adapt.STEPS``).

    Returns:
        The adaptation report, ``None`` with ``adapt=False``.

    Raises:
        InputError: a one-line message naming the problem in the input.
    """
    from model import load_model

    df, ndvi, vv, vh = read_table(Path(input))
    sf = load_model(model_path)
    filled = np.full(len(df), np.nan)
    std = np.full(len(df), np.nan)
    order = df.sort_values(["id", "_date"], kind="stable").index.to_numpy()
    ids = df["id"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    lengths = np.diff(np.r_[starts, len(order)])
    direction = df["_dir"].to_numpy()[order]
    dates = df["_date"].to_numpy().astype("datetime64[D]")
    jan1 = dates.astype("datetime64[Y]").astype("datetime64[D]")
    doy = ((dates - jan1).astype(np.int64) + 1).astype(np.float32)
    groups = [_length_group(np.flatnonzero(lengths == t), int(t), starts, order, ndvi, vv, vh,
                            direction) for t in np.unique(lengths)]
    report = None
    if adapt:
        from model.adapt import STEPS
        from model.adapt import adapt as adapt_model

        series = _as_series(groups, int(lengths.max()), dates[order[starts]], ids[starts])
        sf, report = adapt_model(sf, series, steps=STEPS if adapt_steps is None else adapt_steps)
    for _, idx, x, a, b in groups:
        m, s = sf.predict(x, a, b, doy=doy[idx])
        filled[idx] = m
        std[idx] = s
    out = pd.DataFrame({
        "id": df["id"],
        "date": df["_date"].dt.strftime("%Y-%m-%d"),
        "ndvi_filled": filled,
        "ndvi_std": std,
    })
    write_csv_atomic(out, Path(output), float_format="%.5f")
    log.info("filled %d series, %d rows -> %s", len(starts), len(df), output)
    return report


def _length_group(
    which: np.ndarray, t: int, starts: np.ndarray, order: np.ndarray, ndvi: np.ndarray,
    vv: np.ndarray, vh: np.ndarray, direction: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The series ``which`` (all ``t`` dates long) as arrays: ``(which, idx, ndvi, vv,
    vh)``, ``idx`` the ``(n, t)`` row numbers, S1 ``(n, t, 2)`` by orbit direction."""
    pos = starts[which][:, None] + np.arange(t)[None, :]  # positions in sorted order
    idx = order[pos]
    d = direction[pos]
    a = np.full((*idx.shape, 2), np.nan, dtype=np.float32)
    b = np.full((*idx.shape, 2), np.nan, dtype=np.float32)
    rows, cols = np.indices(idx.shape)
    a[rows, cols, d] = vv[idx]
    b[rows, cols, d] = vh[idx]
    return which, idx, ndvi[idx].astype(np.float32), a, b


def _as_series(groups: list[tuple[np.ndarray, ...]], t: int, first: np.ndarray,
               ids: np.ndarray) -> PlotSeries:
    """The table's series in one array, padded with empty dates to the longest ``t``;
    ``first``: each series' first date."""
    from model.data import PlotSeries

    n = len(ids)
    nd = np.full((n, t), np.nan, np.float32)
    a = np.full((n, t, 2), np.nan, np.float32)
    b = np.full((n, t, 2), np.nan, np.float32)
    for which, _, x, va, vb in groups:
        k = x.shape[1]
        nd[which, :k], a[which, :k], b[which, :k] = x, va, vb
    # A row's date is its bin's centre: the series' bins start half a step before.
    start = first - np.timedelta64(STEP_DAYS // 2, "D")
    year = first.astype("datetime64[Y]").astype(int) + 1970
    return PlotSeries(ids, year, start, nd, a, b)
