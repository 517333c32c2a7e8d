"""Reference mowing events and the plot series they belong to, on the 6-day grid.

Reads the slovak-grassland layout (see ``benchmarks/bench_mowing.py``):

* ``DATA/train``: ``S2/ts_<REGION>_*.csv`` (``PLOTID``, ``Date``, ``ndvi``, ``mask``)
  with ``mowing_events.gpkg`` (``PLOTID``, ``type`` k = mowing, n = not mown, ``date``);
* ``DATA/test``: ``SK_poly/*.csv`` (``plotID``, ...) with ``SK_long.gpkg`` (camera
  events: ``type`` k = mowing, p = grazing, ``date``, ``endDate``).

Per parcel-year, clear acquisitions (``mask == 1``, ndvi in [-1, 1]) are binned onto
the epoch-anchored 6-day grid from 1 March to 30 November of that year. Domains for
cross-domain validation are the region tags of the training tables' file names and
the camera parcels as one more domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd

from pipeline.mowing.series import grid_axes
from pipeline.timegrid import EPOCH, TimeGrid

Spans = list[tuple[float, float]]
Key = tuple[str, int]

#: Region tag of a training table's file name (``ts_LR_GMI_S2_LR_2021.csv`` -> LR).
_REGION = re.compile(r"^ts_([A-Za-z0-9]+)_")
#: Name of the camera-parcel domain (``DATA/test``).
CAMERA = "camera"


def _day(ts: pd.Series | pd.Timestamp) -> np.ndarray:
    return np.asarray((pd.to_datetime(ts) - pd.Timestamp(EPOCH)) / pd.Timedelta(days=1))


def load_tables(files: list[Path], plot_col: str) -> pd.DataFrame:
    """Clear acquisitions of S2 tables: columns plot, date, ndvi, region (file tag)."""
    if not files:
        raise SystemExit("no S2 tables (*.csv) found")
    parts = []
    for f in files:
        part = pd.read_csv(f, usecols=[plot_col, "Date", "ndvi", "mask"])
        m = _REGION.match(f.name)
        parts.append(part.assign(region=m.group(1) if m else ""))
    d = pd.concat(parts, ignore_index=True)
    d = d[(d["mask"] == 1) & (d["ndvi"] >= -1) & (d["ndvi"] <= 1)]
    return pd.DataFrame({"plot": d[plot_col].astype(str), "date": pd.to_datetime(d["Date"]),
                         "ndvi": d["ndvi"].astype(float), "region": d["region"]})


def year_grid(year: int) -> TimeGrid:
    """The 6-day bins (epoch-anchored) covering 1 March .. 30 November of a year."""
    return TimeGrid.covering(f"{year}-03-01", f"{year}-11-30")


def bin_parcel_years(s2: pd.DataFrame) -> tuple[list[Key], np.ndarray]:
    """(plot, year) keys and their NDVI on a common-length 6-day grid (1 March .. 30 Nov).

    Each year is on its own grid; row ``i`` holds bins ``0..T-1`` of its year's grid
    (NaN beyond that year's bin count).
    """
    s2 = s2.assign(year=s2["date"].dt.year)
    keys = sorted({(p, int(y)) for p, y in zip(s2["plot"], s2["year"], strict=True)})
    grids = {y: year_grid(y) for _, y in keys}
    t = max(g.count for g in grids.values())
    ndvi = np.full((len(keys), t), np.nan, np.float32)
    row = {k: i for i, k in enumerate(keys)}
    for key, g in s2.groupby(["plot", "year"]):
        p, y = cast(tuple[str, int], key)
        b = grids[int(y)].bin_index(g["date"].to_numpy())
        ok = b >= 0
        m = pd.Series(g["ndvi"].to_numpy()[ok]).groupby(b[ok]).mean()
        ndvi[row[(str(p), int(y))], m.index.to_numpy()] = m.to_numpy()
    return keys, ndvi


@dataclass
class Split:
    """Parcel-years of one split: binned NDVI, reference cuts and grazing spans.

    ``region`` holds each row's domain (the file tag; :data:`CAMERA` for camera parcels).
    """

    name: str
    keys: list[Key]
    ndvi: np.ndarray
    truth: dict[Key, list[float]]
    grazing: dict[Key, Spans] = field(default_factory=dict)
    region: list[str] = field(default_factory=list)

    def describe(self) -> str:
        n_ev = sum(len(self.truth.get(k, [])) for k in self.keys)
        return (f"{self.name}: {len(self.keys)} parcel-years, {n_ev} mowing events, "
                f"{np.isfinite(self.ndvi).mean():.0%} of 6-day bins observed")

    def subset(self, rows: list[int], name: str) -> Split:
        """The rows ``rows`` as a split of their own."""
        keys = [self.keys[i] for i in rows]
        return Split(name, keys, self.ndvi[rows],
                     {k: self.truth[k] for k in keys if k in self.truth},
                     {k: self.grazing[k] for k in keys if k in self.grazing},
                     [self.region[i] for i in rows] if self.region else [])


def concat(splits: list[Split], name: str) -> Split:
    """Several splits as one (rows in order; the grids have one length)."""
    keys = [k for s in splits for k in s.keys]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: a parcel-year is in more than one split")
    return Split(name, keys, np.concatenate([s.ndvi for s in splits]),
                 {k: v for s in splits for k, v in s.truth.items()},
                 {k: v for s in splits for k, v in s.grazing.items()},
                 [r for s in splits for r in (s.region or [s.name] * len(s.keys))])


def events_of(gdf: gpd.GeoDataFrame, plot_col: str) -> tuple[dict, dict]:
    """Cut dates (type k) and grazing spans (type p) per (plot, year), in days."""
    gdf = gdf.assign(year=pd.to_datetime(gdf["date"]).dt.year)
    truth: dict[Key, list[float]] = {}
    grazing: dict[Key, Spans] = {}
    for (p, y), g in gdf[gdf["type"] == "k"].groupby([plot_col, "year"]):
        truth[(str(p), int(y))] = sorted(_day(g["date"]).tolist())
    if "endDate" in gdf.columns:
        for (p, y), g in gdf[gdf["type"] == "p"].groupby([plot_col, "year"]):
            end = g["endDate"].fillna(g["date"])
            grazing[(str(p), int(y))] = list(zip(_day(g["date"]), _day(end), strict=True))
    return truth, grazing


def load_train(folder: Path, labelled: bool = True) -> Split:
    """``DATA/train``: labelled plot-years only (type k that year, or a plot marked n);
    with ``labelled`` False the other plot-years (no reference events, no truth)."""
    s2 = load_tables(sorted((folder / "S2").glob("*.csv")), "PLOTID")
    keys, ndvi = bin_parcel_years(s2)
    region_of = dict(zip(s2["plot"], s2["region"], strict=False))
    gdf = gpd.read_file(folder / "mowing_events.gpkg")
    truth, _ = events_of(gdf, "PLOTID")
    unmown = set(gdf.loc[gdf["type"] == "n", "PLOTID"].astype(str))
    rows = [i for i, k in enumerate(keys) if (k in truth or k[0] in unmown) == labelled]
    return Split("train", [keys[i] for i in rows], ndvi[rows], truth if labelled else {},
                 region=[str(region_of[keys[i][0]]) for i in rows])


def load_test(folder: Path) -> Split:
    """``DATA/test``: every camera parcel-year of ``SK_poly``."""
    keys, ndvi = bin_parcel_years(load_tables(sorted((folder / "SK_poly").glob("*.csv")),
                                              "plotID"))
    truth, grazing = events_of(gpd.read_file(folder / "SK_long.gpkg"), "plotID")
    return Split("test", keys, ndvi, truth, grazing, [CAMERA] * len(keys))


def by_region(split: Split) -> dict[str, Split]:
    """The rows of each region tag of ``split`` as a split named by the tag, tags sorted."""
    return {tag: split.subset([i for i, r in enumerate(split.region) if r == tag], tag)
            for tag in sorted(set(split.region))}


def domains(data: Path) -> dict[str, Split]:
    """The domains of a data folder: one per training region tag, plus the camera parcels.

    A folder without ``train/mowing_events.gpkg`` or without ``test/SK_long.gpkg``
    simply has fewer domains.
    """
    out: dict[str, Split] = {}
    if (data / "train" / "mowing_events.gpkg").is_file():
        out.update(by_region(load_train(data / "train")))
    if (data / "test" / "SK_long.gpkg").is_file():
        out[CAMERA] = load_test(data / "test")
        out[CAMERA].name = CAMERA
    return out


def unlabelled_domains(data: Path) -> dict[str, Split]:
    """Per training region tag, its plot-years without reference events (a distilled
    detector's transfer set, :attr:`model.mowing.DetectorRecipe.transfer`); the camera
    parcels have none."""
    if not (data / "train" / "mowing_events.gpkg").is_file():
        return {}
    return by_region(load_train(data / "train", labelled=False))


def transfer_series(data: Path, t: int, leave_out: str | None = None
                    ) -> tuple[list[Key], np.ndarray, np.ndarray]:
    """Keys, ``(N, t)`` NDVI and days of year of the unlabelled plot-years of every
    domain but ``leave_out`` (a distilled detector's transfer set); N may be 0."""
    parts = [d for n, d in unlabelled_domains(data).items() if n != leave_out]
    if not parts:
        return [], np.empty((0, t), np.float32), np.empty((0, t), np.float32)
    un = concat(parts, "unlabelled")
    return un.keys, un.ndvi[:, :t], doy_rows(un.keys, t)


def doy_rows(keys: list[Key], t: int) -> np.ndarray:
    """``(N, t)`` day of year of each row's 6-day bin centres (NaN past its year's bins)."""
    return axes_rows(keys, t)[1]


def axes_rows(keys: list[Key], t: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, t)`` day numbers and days of year of each row's bin centres (NaN = padding)."""
    days = np.full((len(keys), t), np.nan)
    doy = np.full((len(keys), t), np.nan, np.float32)
    for year in sorted({y for _, y in keys}):
        d, o = grid_axes(year_grid(year))
        rows = [i for i, (_, y) in enumerate(keys) if y == year]
        days[np.ix_(rows, range(len(d[:t])))] = d[:t]
        doy[np.ix_(rows, range(len(o[:t])))] = o[:t]
    return days, doy


def targets(split: Split, days: np.ndarray, half_bin: float = 3.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin training labels: 1 in the bin holding a reference cut; loss weights.

    The weight is 0 on padding dates and within grazing periods (widened by half a bin):
    grazing is neither a cut nor evidence against one.
    """
    y = np.zeros(split.ndvi.shape, np.float32)
    w = np.isfinite(days).astype(np.float32)
    for i, k in enumerate(split.keys):
        for c in split.truth.get(k, []):
            dist = np.abs(np.nan_to_num(days[i], nan=np.inf) - c)
            j = int(np.argmin(dist))
            if dist[j] <= half_bin + 1e-6:
                y[i, j] = 1.0
        for a, e in split.grazing.get(k, []):
            w[i, (days[i] >= a - half_bin) & (days[i] <= e + half_bin)] = 0.0
    return y, w
