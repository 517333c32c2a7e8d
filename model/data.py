"""Plot tables -> per-plot 6-day series (the real training and evaluation data).

Reads folders with the layout of ``shared/data/slovak-grassland``: ``train/S2/*.csv``
(``PLOTID, Date, ndvi, mask``; ``mask`` 1 = clear; ``-9999`` = missing) and
``train/S1/*.csv`` (``PLOTID, Date, VV, VH`` in dB), optionally
``test/SK_poly/*.csv`` (``plotID, Date, ndvi, mask``; Sentinel-2 only). File names
are globbed, never hard-coded. Bins are anchored to an epoch (pass
``pipeline.timegrid.EPOCH``; the default equals it) and hold the mean of the clear
observations (S2) or acquisitions (S1, per orbit direction) that fall into them.
Plain pandas/numpy: no geo libraries.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Default epoch of the 6-day grid (equal to ``pipeline.timegrid.EPOCH``).
DEFAULT_EPOCH = dt.date(2015, 1, 1)
_MISSING = -9999.0
_S1_TIME = re.compile(r"_(\d{8})T(\d{2})(\d{2})\d{2}_")


@dataclass(frozen=True)
class PlotSeries:
    """Binned series, one row per plot-year.

    Attributes:
        plot: plot identifier per row.
        year: season year per row.
        start: first day of the first bin per row (``datetime64[D]``).
        ndvi: ``(N, T)`` mean clear NDVI per bin, NaN = none.
        vv: ``(N, T, 2)`` mean VV (dB) per bin and orbit direction (ascending,
            descending), NaN = no acquisition.
        vh: ``(N, T, 2)`` mean VH (dB), same layout.
    """

    plot: np.ndarray
    year: np.ndarray
    start: np.ndarray
    ndvi: np.ndarray
    vv: np.ndarray
    vh: np.ndarray

    def doy(self, step_days: int = 6) -> np.ndarray:
        """``(N, T)`` float32 day of year (1-366) of each bin's centre."""
        return bin_doy(self.start, self.ndvi.shape[1], step_days)

    def take(self, rows: np.ndarray) -> PlotSeries:
        """Subset of rows (boolean mask or indices)."""
        return PlotSeries(
            self.plot[rows], self.year[rows], self.start[rows],
            self.ndvi[rows], self.vv[rows], self.vh[rows],
        )


def day_of_year(dates: np.ndarray) -> np.ndarray:
    """Day of year (1 = 1 January) of ``datetime64`` values, as float32."""
    d = np.asarray(dates).astype("datetime64[D]")
    jan1 = d.astype("datetime64[Y]").astype("datetime64[D]")
    return ((d - jan1).astype(np.int64) + 1).astype(np.float32)


def bin_doy(start: np.ndarray, t: int, step_days: int = 6) -> np.ndarray:
    """``(N, T)`` day of year of the centres of ``t`` bins from each row's ``start``."""
    s = np.asarray(start).astype("datetime64[D]").reshape(-1, 1)
    offs = (np.arange(t) * step_days + step_days // 2).astype("timedelta64[D]")
    return day_of_year(s + offs[None, :])


def read_s2_tables(files: list[Path]) -> pd.DataFrame:
    """Clear Sentinel-2 observations (``plot, date, ndvi``) of plot tables."""
    frames = []
    for f in files:
        df = pd.read_csv(f)
        pid = "PLOTID" if "PLOTID" in df.columns else "plotID"
        missing = {pid, "Date", "ndvi", "mask"} - set(df.columns)
        if missing:
            raise ValueError(f"{f}: missing columns {sorted(missing)}")
        frames.append(
            pd.DataFrame({"plot": df[pid].astype(str), "date": df["Date"],
                          "ndvi": df["ndvi"], "mask": df["mask"]})
        )
    s2 = pd.concat(frames, ignore_index=True)
    clear = (s2["mask"] == 1) & (s2["ndvi"] >= -1) & (s2["ndvi"] <= 1)
    s2 = s2[clear].drop(columns="mask")
    s2["date"] = pd.to_datetime(s2["date"], format="ISO8601")
    return s2


def orbit_direction(index: pd.Series, lon: pd.Series | None) -> np.ndarray:
    """0 = ascending, 1 = descending, from the acquisition time in a scene id.

    Sentinel-1 passes cross the equator near 18:00 local solar time ascending and
    06:00 descending; local time is UTC plus longitude/15 h. Ids without a parsable
    time count as ascending.
    """
    parts = index.astype(str).str.extract(_S1_TIME)
    hour = pd.to_numeric(parts[1], errors="coerce") + pd.to_numeric(parts[2], errors="coerce") / 60
    shift = 0.0 if lon is None else pd.to_numeric(lon, errors="coerce").fillna(0.0) / 15.0
    local = (hour + shift) % 24
    return np.where(local.notna() & (local < 12.0), 1, 0).astype(np.int64)


def read_s1_tables(files: list[Path]) -> pd.DataFrame:
    """Sentinel-1 acquisitions (``plot, date, vv, vh, dir``) of plot tables."""
    frames = []
    for f in files:
        df = pd.read_csv(f)
        missing = {"PLOTID", "Date", "VV", "VH"} - set(df.columns)
        if missing:
            raise ValueError(f"{f}: missing columns {sorted(missing)}")
        if "system:index" in df.columns:
            direction = orbit_direction(df["system:index"], df.get("Longitude"))
        else:
            direction = np.zeros(len(df), dtype=np.int64)
        frames.append(
            pd.DataFrame({"plot": df["PLOTID"].astype(str), "date": df["Date"],
                          "vv": df["VV"], "vh": df["VH"], "dir": direction})
        )
    if not frames:
        return pd.DataFrame(columns=["plot", "date", "vv", "vh", "dir"])
    s1 = pd.concat(frames, ignore_index=True)
    ok = (s1["vv"] > -60) & (s1["vv"] < 30) & (s1["vh"] > -60) & (s1["vh"] < 30)
    s1 = s1[ok].copy()
    s1["date"] = pd.to_datetime(s1["date"], format="ISO8601")
    return s1


def bin_series(
    s2: pd.DataFrame,
    s1: pd.DataFrame,
    months: tuple[int, int] = (4, 10),
    epoch: dt.date = DEFAULT_EPOCH,
    step_days: int = 6,
) -> PlotSeries:
    """Bin long tables onto the epoch-anchored grid, one row per plot and year.

    The season of year ``y`` spans the bins covering the first day of ``months[0]``
    to the last day of ``months[1]``; seasons of different lengths are NaN padded at
    the end to the longest one.
    """
    s2 = s2.assign(year=s2["date"].dt.year)
    keys = s2[["plot", "year"]].drop_duplicates().sort_values(["plot", "year"])
    keys = keys.reset_index(drop=True)
    ep = pd.Timestamp(epoch)

    def season(year: int) -> tuple[int, int]:
        s = pd.Timestamp(year=year, month=months[0], day=1)
        e = pd.Timestamp(year=year, month=months[1], day=1) + pd.offsets.MonthEnd(0)
        return (s - ep).days // step_days, (e - ep).days // step_days

    years = keys["year"].to_numpy()
    first = np.array([season(int(y))[0] for y in years])
    last = np.array([season(int(y))[1] for y in years])
    t = int((last - first).max()) + 1 if len(keys) else 0
    n = len(keys)
    row_of = {(p, y): i for i, (p, y) in enumerate(zip(keys["plot"], years, strict=True))}
    ndvi = np.full((n, t), np.nan, dtype=np.float32)
    vv = np.full((n, t, 2), np.nan, dtype=np.float32)
    vh = np.full((n, t, 2), np.nan, dtype=np.float32)

    def locate(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.array(
            [row_of.get((p, y), -1) for p, y in zip(df["plot"], df["date"].dt.year, strict=True)],
            dtype=np.int64,
        )
        bins = ((df["date"] - ep).dt.days // step_days).to_numpy()
        col = bins - np.where(rows >= 0, first[rows.clip(0)], 0)
        span = np.where(rows >= 0, last[rows.clip(0)] - first[rows.clip(0)], -1)
        ok = (rows >= 0) & (col >= 0) & (col <= span)
        return rows, col, ok

    rows, col, ok = locate(s2)
    g = pd.DataFrame({"r": rows[ok], "c": col[ok], "v": s2["ndvi"].to_numpy()[ok]})
    m = g.groupby(["r", "c"])["v"].mean()
    ndvi[m.index.get_level_values(0), m.index.get_level_values(1)] = m.to_numpy()

    if len(s1):
        rows, col, ok = locate(s1)
        g = pd.DataFrame({"r": rows[ok], "c": col[ok], "d": s1["dir"].to_numpy()[ok],
                          "vv": s1["vv"].to_numpy()[ok], "vh": s1["vh"].to_numpy()[ok]})
        m2 = g.groupby(["r", "c", "d"])[["vv", "vh"]].mean()
        r, c, d = (m2.index.get_level_values(i).to_numpy() for i in range(3))
        vv[r, c, d] = m2["vv"].to_numpy()
        vh[r, c, d] = m2["vh"].to_numpy()

    start = (np.datetime64(epoch, "D") + (first * step_days).astype("timedelta64[D]"))
    log.info("binned %d plot-years x %d dates", n, t)
    return PlotSeries(keys["plot"].to_numpy(), years, start, ndvi, vv, vh)


def read_plot_series(
    data_dir: Path,
    months: tuple[int, int] = (4, 10),
    epoch: dt.date = DEFAULT_EPOCH,
    s2_only: bool = False,
) -> PlotSeries:
    """Read the ``train/S1`` + ``train/S2`` series, or the ``test/SK_poly`` S2-only ones.

    Args:
        data_dir: folder with the slovak-grassland layout.
        months: first and last month of the season.
        epoch: grid anchor (``pipeline.timegrid.EPOCH``).
        s2_only: read ``test/SK_poly/*.csv`` (Sentinel-2 only plots, no S1) instead.
    """
    data_dir = Path(data_dir)
    if s2_only:
        s2_files, s1_files = sorted((data_dir / "test" / "SK_poly").glob("*.csv")), []
    else:
        s2_files = sorted((data_dir / "train" / "S2").glob("*.csv"))
        s1_files = sorted((data_dir / "train" / "S1").glob("*.csv"))
    if not s2_files:
        raise FileNotFoundError(f"no Sentinel-2 tables under {data_dir}")
    s2, s1 = read_s2_tables(s2_files), read_s1_tables(s1_files)
    return bin_series(s2, s1, months=months, epoch=epoch)
