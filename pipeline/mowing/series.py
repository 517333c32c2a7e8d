"""Cut detection on series of the 6-day grid, and ``mowing-table`` on plain CSV tables.

The table path does what the cube path does, per series: bin raw acquisitions
onto the epoch-anchored 6-day grid (mean of the clear NDVI of a bin; VV/VH
averaged in linear power), fill with a :class:`~pipeline.fill.Filler`, detect.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.fill import Filler, fill_block
from pipeline.mowing.detect import LEARNED, DetectParams, default_params, detect
from pipeline.tables import numeric_column, read_csv_table, write_csv_atomic
from pipeline.timegrid import EPOCH, TimeGrid

log = logging.getLogger(__name__)

REQUIRED = ("id", "date", "ndvi")
OPTIONAL = ("vv", "vh")


def grid_axes(grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
    """Day numbers since :data:`EPOCH` and day of year of the bin centres."""
    centres = grid.starts + pd.Timedelta(days=grid.step_days / 2)
    days = (centres - pd.Timestamp(EPOCH)) / pd.Timedelta(days=1)
    return np.asarray(days, float), np.asarray(centres.day_of_year, float)


def days_to_dates(days: np.ndarray) -> list[str]:
    """ISO dates of day numbers since :data:`EPOCH` (finite values only)."""
    base = pd.Timestamp(EPOCH)
    return [(base + pd.Timedelta(days=float(d))).strftime("%Y-%m-%d") for d in days
            if np.isfinite(d)]


def detect_on_grid(
    ndvi: np.ndarray,
    std: np.ndarray | None,
    grid: TimeGrid,
    method: str = "zdrop",
    params: DetectParams | None = None,
) -> np.ndarray:
    """Cut dates ``(N, MAX_EVENTS)`` in days since :data:`EPOCH` for ``(N, T)`` series."""
    days, doy = grid_axes(grid)
    return detect(ndvi, std, days, doy, method, params)


def read_acquisitions(path: Path) -> pd.DataFrame:
    """Read and validate a ``mowing-table`` input (raw acquisitions on their own dates).

    Returns columns ``id``, ``date`` (datetime), ``ndvi``, ``vv``, ``vh`` (NaN where
    empty or absent). A Sentinel-1-only table (``vv`` and/or ``vh``, no ``ndvi``
    column) is read as one whose every optical acquisition is cloudy, with a warning:
    every detector reads NDVI (per-point radar is speckle; the filler withholds it),
    so it yields no cuts. Raises :class:`InputError` with a one-line message.
    """
    path = Path(path)
    df = read_csv_table(path, REQUIRED[:2], "optional vv,vh in dB", ",".join(REQUIRED))
    if "ndvi" not in df.columns:
        if not any(c in df.columns for c in OPTIONAL):
            raise InputError(f"--input {path}: missing column(s) ndvi; need "
                             f"{','.join(REQUIRED)} (optional vv,vh in dB)")
        log.warning("--input %s: no ndvi column; the detectors read NDVI (per-point "
                    "Sentinel-1 is speckle), so a Sentinel-1-only table gives no cuts", path)
        df["ndvi"] = ""
    ids = df["id"].str.strip()
    dates = pd.to_datetime(df["date"].str.strip(), errors="coerce", format="ISO8601")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(f"--input {path}: row {i + 2} has date {df['date'].iloc[i]!r}; use "
                         "ISO dates like 2023-05-01")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame({"id": ids, "date": dates.dt.normalize()})
    out["ndvi"] = numeric_column(df, "ndvi", path, "a cloudy/missing value")
    bad = np.isfinite(out["ndvi"]) & ((out["ndvi"] < -1) | (out["ndvi"] > 1))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"--input {path}: ndvi {out['ndvi'].iloc[i]} in row {i + 2} is "
                         "outside [-1, 1]; pass NDVI, not scaled reflectance")
    for col in OPTIONAL:
        out[col] = (
            numeric_column(df, col, path, "a cloudy/missing value")
            if col in df.columns
            else np.nan
        )
        bad = np.isfinite(out[col]) & ((out[col] < -60) | (out[col] > 30))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"--input {path}: {col} {out[col].iloc[i]} in row {i + 2} is not "
                             "backscatter in dB (expected -60..30); pass 10*log10 of linear")
    return out


def bin_series(
    df: pd.DataFrame,
) -> list[tuple[TimeGrid, list[str], np.ndarray, np.ndarray, np.ndarray]]:
    """Bin acquisitions per id onto the 6-day grid covering that id's dates.

    Returns groups of ids sharing one grid: ``(grid, ids, ndvi (N, T), vv (N, T, 2),
    vh (N, T, 2))``. NDVI is the mean of a bin's values; VV/VH the mean in linear
    power, in dB, as the ascending (first) direction.
    """
    groups: dict[tuple[int, int], list[str]] = {}
    grids: dict[str, TimeGrid] = {}
    for key, g in df.groupby("id", sort=True):
        grid = TimeGrid.covering(g["date"].min(), g["date"].max())
        grids[str(key)] = grid
        groups.setdefault((grid.first, grid.count), []).append(str(key))
    out = []
    for (first, count), ids in groups.items():
        grid = TimeGrid(first=first, count=count)
        row = {k: i for i, k in enumerate(ids)}
        sub = df[df["id"].isin(ids)]
        r = sub["id"].map(row).to_numpy()
        b = grid.bin_index(sub["date"].to_numpy())
        ndvi = np.full((len(ids), count), np.nan, np.float32)
        vv = np.full((len(ids), count, 2), np.nan, np.float32)
        vh = np.full((len(ids), count, 2), np.nan, np.float32)
        frame = pd.DataFrame({"r": r, "b": b, "ndvi": sub["ndvi"].to_numpy(),
                              "vv": 10 ** (sub["vv"].to_numpy() / 10),
                              "vh": 10 ** (sub["vh"].to_numpy() / 10)})
        m = frame.groupby(["r", "b"])[["ndvi", "vv", "vh"]].mean()  # NaN skipped
        ri, bi = m.index.get_level_values(0), m.index.get_level_values(1)
        ndvi[ri, bi] = m["ndvi"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            vv[ri, bi, 0] = 10 * np.log10(m["vv"].to_numpy())
            vh[ri, bi, 0] = 10 * np.log10(m["vh"].to_numpy())
        out.append((grid, ids, ndvi, vv, vh))
    return out


def mowing_table(
    input: Path,
    output: Path,
    filler: Filler | None,
    method: str = "zdrop",
    params: DetectParams | None = None,
    min_probability: float | None = None,
) -> int:
    """Detect cuts in every series of a CSV table; write ``id,event_date``; return the count.

    With the ``learned`` detector the table has a third column, ``probability`` (of a
    cut within a bin of the date), and no filler is used: the detector reads the binned
    observations and their gaps itself.

    Args:
        input: CSV with columns ``id,date,ndvi`` and optional ``vv,vh`` (dB); one row
            per acquisition on its own date, empty ndvi = cloudy.
        output: CSV to write (atomically), one row per detected cut.
        filler: gap filler applied on the 6-day grid before detection (it gets each
            bin's day of year where it takes one); ``None`` = detect on the binned
            observations alone (raw series).
        method: detector, see :data:`pipeline.mowing.detect.DETECTORS`.
        params: rule thresholds; default: the shipped ones for a filled or a raw
            series (:func:`pipeline.mowing.detect.default_params`).
        min_probability: ``learned`` only: report cuts at least this likely.
    """
    if method in LEARNED:
        return _learned_table(Path(input), Path(output), method, min_probability)
    if params is None:
        params = default_params(method, "observed" if filler is None else "filled")
    df = read_acquisitions(Path(input))
    rows: list[tuple[str, str]] = []
    for grid, ids, ndvi, vv, vh in bin_series(df):
        if filler is None:
            mean, std = ndvi, None
        else:
            doy = grid_axes(grid)[1].astype(np.float32)
            mean, std = fill_block(filler, ndvi, vv[..., 0], vv[..., 1], vh[..., 0], vh[..., 1],
                                   doy=doy)
        cuts = detect_on_grid(mean, std, grid, method, params)
        for key, c in zip(ids, cuts, strict=True):
            rows.extend((key, d) for d in days_to_dates(c))
    table = pd.DataFrame(rows, columns=["id", "event_date"])
    write_csv_atomic(table, Path(output))
    log.info("%d cuts in %d series -> %s", len(table), df["id"].nunique(), output)
    return len(table)




def _learned_table(input: Path, output: Path, method: str, min_probability: float | None
                   ) -> int:
    """``mowing_table`` with a learned detector: ``id,event_date,probability``."""
    from pipeline.mowing.learned import detect_learned

    df = read_acquisitions(input)
    rows: list[tuple[str, str, float]] = []
    for grid, ids, ndvi, _, _ in bin_series(df):
        days, doy = grid_axes(grid)
        cuts, probs = detect_learned(ndvi, days, doy, method, min_probability=min_probability)
        for key, c, p in zip(ids, cuts, probs, strict=True):
            ok = np.isfinite(c)
            rows.extend((key, d, round(float(q), 3))
                        for d, q in zip(days_to_dates(c[ok]), p[ok], strict=True))
    table = pd.DataFrame(rows, columns=["id", "event_date", "probability"])
    write_csv_atomic(table, output)
    log.info("%d cuts in %d series -> %s", len(table), df["id"].nunique(), output)
    return len(table)
