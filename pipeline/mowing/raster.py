"""``mowing`` on a filled cube: per-pixel rasters and, given parcels, per-parcel events.

Per pixel the detector runs on ``ndvi_filled`` with ``ndvi_std``, one cube chunk
of pixel series at a time and once per pixel: :func:`write_mowing` keeps the cut days
of each chunk in a scratch Zarr store and writes the rasters from there, so the
rasters' memory is one chunk's whatever the area. Per parcel it runs on the parcel's mean
series (mean of ``ndvi_filled`` over the parcel's pixels in the AOI, std =
root mean square of ``ndvi_std`` — errors of neighbouring pixels are
correlated, so averaging does not shrink them); each parcel event also gets
the share of the parcel's pixels that have a cut of their own within 12 days.
With ``series="observed"`` the same runs on the cube's clear observations
``ndvi`` (gaps stay gaps, no std; a parcel's date counts where at least half of
its pixels are clear).

The parcels are the user's file (``--parcels``), or else those of the run: a run
with ``--parcels`` keeps each pixel's parcel in the cube (``zone``) and the parcels'
ids and outlines in ``parcels.parquet``, and the detector then reads exactly the
pixels the run's per-parcel tables summed (same rasterisation, size filter and
overlap rule).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dask.array as dask_array
import geopandas as gpd
import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import pandas as pd
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox

from pipeline.baselines import flat_pixels
from pipeline.blocks import Block, blocks, chunk_edges
from pipeline.errors import InputError
from pipeline.export import StackSpec, write_stack
from pipeline.mowing.detect import (
    LEARNED,
    MAX_EVENTS,
    DetectParams,
    default_params,
    detect,
)
from pipeline.mowing.learned import threads_for
from pipeline.mowing.series import days_to_dates, grid_axes
from pipeline.storage import publish, staging
from pipeline.tables import write_csv_atomic
from pipeline.timegrid import EPOCH, TimeGrid
from pipeline.zones import (
    ZoneDateSums,
    ZoneValueSums,
    rasterize_zones,
    read_parcels,
    zone_date_sums,
    zone_value_sums,
)

log = logging.getLogger(__name__)

#: Pixel support window (days) of a parcel event.
SUPPORT_DAYS = 12.0


@dataclass(frozen=True)
class MowingResult:
    """What :func:`write_mowing` wrote.

    Attributes:
        paths: files written into the output folder.
        pixels_with_cuts: pixels with at least one cut.
        parcels: parcels analysed (0 without a parcels file).
        parcel_events: cuts found over all parcels.
    """

    paths: list[Path]
    pixels_with_cuts: int
    parcels: int
    parcel_events: int


#: Observed series of a parcel: a date counts only where at least this share of the
#: parcel's pixels is clear (a few clear pixels next to clouds are often shadowed/hazy).
MIN_CLEAR_SHARE = 0.5


def series_vars(series: str) -> tuple[str, str | None]:
    """Cube variables (NDVI, std or None) a detector reads for a ``filled``/``observed`` series."""
    if series == "observed":
        return "ndvi", None
    if series == "filled":
        return "ndvi_filled", "ndvi_std"
    raise ValueError(f"unknown series {series!r}; use 'filled' or 'observed'")


def open_filled_cube(path: Path, series: str = "filled") -> xr.Dataset:
    """Open the cube of a run (``OUT/cube.zarr`` or the ``OUT`` folder).

    It must hold the series the detector reads: ``ndvi_filled`` (a finished run) for
    ``series="filled"``, the binned observations ``ndvi`` for ``"observed"``.
    """
    from pipeline.cube import open_cube

    path = Path(path)
    store = path / "cube.zarr" if (path / "cube.zarr").is_dir() else path
    if not store.is_dir():
        raise InputError(f"--cube {path}: no such cube; pass the --out folder of a run or its "
                         "cube.zarr")
    try:
        cube = open_cube(store)
    except Exception as exc:  # zarr raises many kinds for "not a zarr store"
        raise InputError(f"--cube {path}: not a Zarr cube ({type(exc).__name__}); pass the "
                         "--out folder of `python -m pipeline run`") from exc
    if series == "observed":
        if "ndvi" not in cube:
            raise InputError(f"--cube {path}: the cube has no ndvi (observed NDVI); pass the "
                             "--out folder of `python -m pipeline run`")
        return cube
    if "ndvi_filled" not in cube:
        raise InputError(f"--cube {path}: the cube has no ndvi_filled (not filled yet); run "
                         "`python -m pipeline run` on it to the end first")
    return cube


def cube_grid(cube: xr.Dataset) -> TimeGrid:
    """The :class:`TimeGrid` of a cube's time axis."""
    return TimeGrid.of_starts(cube["time"].values)


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    """Days since EPOCH -> int32 YYYYMMDD (0 where NaN): readable in QGIS Identify."""
    out = np.zeros(days.shape, np.int32)
    ok = np.isfinite(days)
    if ok.any():
        d = pd.Timestamp(EPOCH) + pd.to_timedelta(days[ok], unit="D")
        out[ok] = d.year * 10000 + d.month * 100 + d.day
    return out


def _detect_block(
    ndvi: np.ndarray, std: np.ndarray, days: np.ndarray, doy: np.ndarray, method: str,
    params: DetectParams | None, min_probability: float | None = None,
) -> np.ndarray:
    shape = ndvi.shape
    rows, sd = ndvi.reshape(-1, shape[-1]), std.reshape(-1, shape[-1])
    if method not in LEARNED:
        cuts, _ = detect_rows(rows, sd, days, doy, method, params, min_probability)
        return cuts.reshape(*shape[:-1], MAX_EVENTS)
    # a pixel whose observations show no season (forest, built-up land, water: the
    # filler's flat_pixels) holds no meadow to cut; the detector skips it
    cuts = np.full((len(rows), MAX_EVENTS), np.nan)
    run = ~flat_pixels(rows)
    if run.any():
        cuts[run], _ = detect_rows(rows[run], sd[run], days, doy, method, params,
                                   min_probability)
    return cuts.reshape(*shape[:-1], MAX_EVENTS)


def detect_rows(
    ndvi: np.ndarray, std: np.ndarray | None, days: np.ndarray, doy: np.ndarray, method: str,
    params: DetectParams | None, min_probability: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut days ``(N, MAX_EVENTS)`` of ``(N, T)`` series with any detector, and for the
    learned one each cut's probability (None for the rules)."""
    if method in LEARNED:
        from pipeline.mowing.learned import detect_learned

        return detect_learned(ndvi, days, doy, method, min_probability=min_probability)
    return detect(ndvi, std, days, doy, method, params), None


def series_for(method: str, series: str) -> str:
    """The series a detector reads: the learned one always reads the observations."""
    return "observed" if method in LEARNED else series


def _params(method: str, series: str, params: DetectParams | None) -> DetectParams | None:
    return None if method in LEARNED else params or default_params(method, series)


def compute_mowing(
    cube: xr.Dataset, method: str = "zdrop", params: DetectParams | None = None,
    series: str = "filled",
) -> xr.Dataset:
    """Lazy per-pixel ``mowing_count`` (y, x) and ``mowing_dates`` (event, y, x, YYYYMMDD).

    ``series``: ``filled`` (``ndvi_filled`` with ``ndvi_std``) or ``observed`` (the
    cube's clear observations ``ndvi``, gaps left as gaps).
    """
    days, doy = grid_axes(cube_grid(cube))
    var, std_var = series_vars(series)
    std = (cube[std_var] if std_var is not None and std_var in cube
           else xr.full_like(cube[var], np.nan))
    cuts = xr.apply_ufunc(
        functools.partial(_detect_block, days=days, doy=doy, method=method,
                          params=_params(method, series, params)),
        cube[var],
        std,
        input_core_dims=[["time"], ["time"]],
        output_core_dims=[["event"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"event": MAX_EVENTS}},
    ).transpose("event", "y", "x")
    return _cut_products(cube, cuts)


def _cut_products(cube: xr.Dataset, cuts: xr.DataArray) -> xr.Dataset:
    """``mowing_count``, ``mowing_dates`` and ``cut_days`` from (event, y, x) cut days;
    outside the AOI the count is nodata (255) and there are no cut days or dates."""
    if "aoi_mask" in cube:
        cuts = cuts.where(cube["aoi_mask"] > 0)
    count = cuts.notnull().sum("event").astype(np.uint8)
    if "aoi_mask" in cube:
        count = count.where(cube["aoi_mask"] > 0, 255).astype(np.uint8)
    dates = xr.apply_ufunc(_yyyymmdd, cuts, dask="parallelized", output_dtypes=[np.int32])
    return xr.Dataset({"mowing_count": count, "mowing_dates": dates, "cut_days": cuts})


def write_cut_days(
    cube: xr.Dataset, store: Path, method: str = "zdrop", params: DetectParams | None = None,
    series: str = "filled", min_probability: float | None = None,
) -> xr.Dataset:
    """Detect cuts chunk by chunk (each pixel once) into the Zarr array ``store``; the
    products of :func:`compute_mowing`, lazily read back from it.

    One chunk's series per core are in memory at a time; the store holds (event, y, x) float64
    cut days (days since the epoch, NaN = none) in the cube's spatial chunks.
    """
    days, doy = grid_axes(cube_grid(cube))
    var, std_var = series_vars(series)
    params = _params(method, series, params)
    ys, xs = cube[var].chunksizes["y"], cube[var].chunksizes["x"]
    h, w = cube.sizes["y"], cube.sizes["x"]
    arr = zarr.create_array(store=str(store), shape=(MAX_EVENTS, h, w),
                            chunks=(MAX_EVENTS, ys[0], xs[0]), dtype="float64",
                            fill_value=np.nan)

    def one(b: Block) -> None:
        region = {"y": b.rows, "x": b.cols}
        # pixels outside the AOI have no cuts (their count is nodata): not detected
        inside = (cube["aoi_mask"].isel(region).values > 0 if "aoi_mask" in cube
                  else np.ones(b.shape, bool))
        if not inside.any():
            return
        ndvi = np.moveaxis(cube[var].isel(region).values, 0, -1)[inside]
        std = (np.moveaxis(cube[std_var].isel(region).values, 0, -1)[inside]
               if std_var is not None and std_var in cube else np.full_like(ndvi, np.nan))
        cuts = np.full((*inside.shape, MAX_EVENTS), np.nan)
        cuts[inside] = _detect_block(ndvi, std, days, doy, method, params, min_probability)
        arr[:, b.rows, b.cols] = np.moveaxis(cuts, -1, 0)

    # each thread holds one chunk's series; chunks are whole Zarr chunks of the store;
    # a learned detector's torch shares the cores out among the threads
    workers = max(1, os.cpu_count() or 1)
    threads = threads_for(workers) if method in LEARNED else contextlib.nullcontext()
    with threads, ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, blocks(chunk_edges(ys), chunk_edges(xs))))
    lazy = dask_array.from_zarr(str(store)).rechunk((MAX_EVENTS, ys, xs))
    cut_days = xr.DataArray(lazy, dims=("event", "y", "x"),
                            coords={"y": cube["y"], "x": cube["x"]})
    return _cut_products(cube, cut_days)


#: Marks a parcel table whose zones are the cube's ``zone`` raster (a run's parcels).
FROM_CUBE = "zones_from_cube"


def run_parcels(cube_path: Path, cube: xr.Dataset) -> gpd.GeoDataFrame | None:
    """The parcels of the run that wrote the cube (``parcel_id`` and outline, row k for
    zone k + 1), or None when the run had no ``--parcels``.

    ``parcels.parquet`` lies in the run folder: beside ``cube.zarr``, or two levels up
    for a tile's cube (``OUT/tiles/<id>/cube.zarr``); zone ids are the run's.
    """
    from pipeline.parcel_table import PARQUET_NAME

    if "zone" not in cube:
        return None
    path = Path(cube_path)
    store = path / "cube.zarr" if (path / "cube.zarr").is_dir() else path
    for folder in (store.parent, store.parent.parent.parent):
        table = folder / PARQUET_NAME
        if table.is_file():
            break
    else:
        return None
    frame = gpd.read_parquet(table, columns=["parcel_id", "date", "geometry"])
    first = frame[frame["date"] == frame["date"].iloc[0]] if len(frame) else frame
    parcels = first[["parcel_id", "geometry"]].reset_index(drop=True)
    parcels.attrs[FROM_CUBE] = True
    log.info("parcels of the run: %d from %s", len(parcels), table)
    return parcels


def _chunk_zones(cube: xr.Dataset, parcels: gpd.GeoDataFrame, geobox: GeoBox,
                 b: Block) -> np.ndarray:
    """Parcel ids (1-based rows) of one chunk, 0 outside the AOI."""
    if parcels.attrs.get(FROM_CUBE):
        return np.asarray(cube["zone"].isel(y=b.rows, x=b.cols).values, np.int64)
    zone = rasterize_zones(parcels, geobox[b.rows, b.cols])
    if "aoi_mask" in cube:
        zone = np.where(cube["aoi_mask"].isel(y=b.rows, x=b.cols).values > 0, zone, 0)
    return zone


def _cube_blocks(cube: xr.Dataset, var: str) -> list[Block]:
    chunks = cube[var].chunksizes if cube[var].chunks else {
        "y": (cube.sizes["y"],), "x": (cube.sizes["x"],)}
    return list(blocks(chunk_edges(chunks["y"]), chunk_edges(chunks["x"])))


def parcel_series(
    cube: xr.Dataset, parcels: gpd.GeoDataFrame, geobox: GeoBox, series: str = "filled",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean series ``(n, T)``, RMS of the std ``(n, T)`` and pixel counts ``(n,)`` of the
    parcels over their pixels in the AOI, summed chunk by chunk (:mod:`pipeline.zones`;
    where parcels overlap the smaller keeps the shared pixels). With ``series="observed"``
    a date counts only where at least :data:`MIN_CLEAR_SHARE` of the pixels are clear.
    """
    var, std_var = series_vars(series)
    n, t = len(parcels), cube.sizes["time"]
    values = ZoneValueSums(*(np.zeros((n + 1, t)) for _ in range(3)))
    stds = ZoneValueSums(*(np.zeros((n + 1, t)) for _ in range(3)))
    clear = ZoneDateSums(*(np.zeros((n + 1, t)) for _ in range(3)))
    for b in _cube_blocks(cube, var):
        zone = _chunk_zones(cube, parcels, geobox, b)
        if not zone.any():
            continue
        ndvi = cube[var].isel(y=b.rows, x=b.cols).values
        values = values + zone_value_sums(zone, ndvi, n)
        clear = clear + zone_date_sums(zone, ndvi, n)
        if std_var is not None and std_var in cube:
            stds = stds + zone_value_sums(zone, cube[std_var].isel(y=b.rows, x=b.cols).values, n)
    mean = values.mean()[1:]
    if series == "observed":  # a date counts where most of the parcel is clear
        mean = np.where(clear.clear_share()[1:] >= MIN_CLEAR_SHARE, mean, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.where(stds.count > 0, np.sqrt(stds.squares / stds.count), np.nan)[1:]
    return (mean.astype(np.float32), rms.astype(np.float32),
            clear.pixels[1:, 0].astype(int))


def _support(
    cube: xr.Dataset, parcels: gpd.GeoDataFrame, geobox: GeoBox, cut_days: xr.DataArray,
    events: np.ndarray, var: str,
) -> np.ndarray:
    """Per parcel and event ``(n, E)``: pixels of the parcel with a cut of their own within
    :data:`SUPPORT_DAYS` of the event, counted chunk by chunk from ``cut_days``
    ``(event, y, x)`` in the chunks of the cube's ``var``; ``events`` ``(n, E)`` holds the
    parcel events' days (NaN = none)."""
    n, e = events.shape
    table = np.vstack([np.full((1, e), np.nan), events])
    counts = np.zeros(((n + 1) * e,))
    for b in _cube_blocks(cube, var):
        zone = _chunk_zones(cube, parcels, geobox, b).reshape(-1)
        if not zone.any():
            continue
        pix = np.flatnonzero(zone)
        cuts = cut_days.isel(y=b.rows, x=b.cols).values.reshape(cut_days.shape[0], -1)[:, pix]
        ev = table[zone[pix]]  # (N, E)
        with np.errstate(invalid="ignore"):
            near = (np.abs(cuts.T[:, :, None] - ev[:, None, :]) <= SUPPORT_DAYS).any(axis=1)
        idx = zone[pix][:, None] * e + np.arange(e)[None, :]
        counts += np.bincount(idx.reshape(-1), weights=near.reshape(-1), minlength=counts.size)
    return counts.reshape(n + 1, e)[1:]


def parcel_events(
    cube: xr.Dataset,
    parcels: gpd.GeoDataFrame,
    geobox: GeoBox,
    cut_days: xr.DataArray,
    method: str = "zdrop",
    params: DetectParams | None = None,
    series: str = "filled",
    min_probability: float | None = None,
) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """Per-parcel table and event layer from the parcels' mean series.

    ``cut_days`` is the (lazy) ``(event, y, x)`` array of per-pixel cut days. Everything
    is read one chunk at a time (memory: a chunk plus the parcels x dates tables). With
    ``series="observed"`` a parcel's value on a date is the mean of its clear pixels.
    """
    grid = cube_grid(cube)
    mean, rms, npix = parcel_series(cube, parcels, geobox, series)
    days, doy = grid_axes(grid)
    cuts, probs = detect_rows(mean, rms, days, doy, method, _params(method, series, params),
                              min_probability)
    support = _support(cube, parcels, geobox, cut_days, np.asarray(cuts, np.float64),
                       series_vars(series)[0])
    rows, events = [], []
    for i, pid in enumerate(parcels["parcel_id"]):
        found = [(k, c) for k, c in enumerate(cuts[i]) if np.isfinite(c)]
        dates = days_to_dates(np.asarray([c for _, c in found]))
        rows.append({"parcel_id": pid, "n_pixels": npix[i], "n_events": len(found),
                     "event_dates": ";".join(dates)})
        for k, ((j, _), d) in enumerate(zip(found, dates, strict=True), start=1):
            share = float(support[i, j] / npix[i]) if npix[i] else 0.0
            prob = np.nan if probs is None else round(float(probs[i][k - 1]), 3)
            events.append({"parcel_id": pid, "event": k, "event_date": d, "method": method,
                           "series": series, "probability": prob,
                           "pixel_share": round(share, 3), "geometry": parcels.geometry.iloc[i]})
    table = pd.DataFrame(rows)
    layer = gpd.GeoDataFrame(
        events or {"parcel_id": [], "event": [], "event_date": [], "method": [], "series": [],
                   "probability": [], "pixel_share": [], "geometry": []},
        geometry="geometry", crs=parcels.crs)
    return table, layer


def write_mowing(
    cube_path: Path,
    out: Path,
    method: str = "zdrop",
    parcels_path: Path | None = None,
    parcel_id: str | None = None,
    params: DetectParams | None = None,
    series: str = "filled",
    min_probability: float | None = None,
    parcel_method: str | None = None,
) -> MowingResult:
    """Detect cuts on a filled cube and write the rasters (and parcel products) into ``out``.

    Writes ``mowing_count.tif`` (cuts per pixel, 255 outside the AOI),
    ``mowing_dates.tif`` (one band per cut, YYYYMMDD, 0 = none) and with parcels
    ``mowing_parcels.csv`` and ``mowing_events.gpkg``. ``series``: detect on the
    ``filled`` series (default) or on the ``observed`` clear NDVI only; the ``learned``
    detector always reads the observations, and its parcel events carry a probability
    (``min_probability`` filters them and the pixels' cuts). Without ``parcels_path``
    the run's own parcels are used when it had any (:func:`run_parcels`).
    ``parcel_method`` detects on the parcels' series (default: ``method``, which then
    serves the pixels only); both must read the same ``series``.
    """
    series = series_for(method, series)
    parcel_method = parcel_method or method
    if series_for(parcel_method, series) != series:
        raise ValueError(f"detectors {method!r} and {parcel_method!r} read different series")
    cube = open_filled_cube(cube_path, series)
    geobox: GeoBox = cube.odc.geobox
    parcels = None if parcels_path is not None else run_parcels(cube_path, cube)
    if parcels_path is not None:
        parcels = read_parcels(parcels_path, geobox.crs, parcel_id)
        hits = parcels.intersects(geobox.extent.geom)
        if not hits.any():
            raise InputError(f"--parcels {parcels_path}: none of {len(parcels)} parcels overlaps "
                             "the cube; check the file's CRS and that it covers the run's AOI")
        parcels = parcels[hits.to_numpy()].reset_index(drop=True)
    labels = [f"cut {k}" for k in range(1, MAX_EVENTS + 1)]
    with staging(out) as tmp, tempfile.TemporaryDirectory(prefix="mowing-") as scratch:
        res = write_cut_days(cube, Path(scratch) / "cut_days.zarr", method, params, series,
                             min_probability)
        count, dates = res["mowing_count"], res["mowing_dates"]
        write_stack(count.expand_dims(time=1), tmp / "mowing_count.tif", geobox,
                    ["number of cuts"],
                    StackSpec("mowing_count", "mowing_count.tif", "uint8", 255, None,
                              f"number of detected cuts ({method})"),
                    tags={"METHOD": method, "SERIES": series})
        write_stack(dates.rename(event="time"), tmp / "mowing_dates.tif", geobox, labels,
                    StackSpec("mowing_dates", "mowing_dates.tif", "int32", 0, None,
                              f"date of each detected cut as YYYYMMDD, 0 = none ({method})"),
                    tags={"METHOD": method, "SERIES": series})
        n_parcels = n_events = 0
        if parcels is not None:
            table, layer = parcel_events(cube, parcels, geobox, res["cut_days"],
                                         parcel_method, params, series, min_probability)
            write_csv_atomic(table, tmp / "mowing_parcels.csv")
            layer.to_file(tmp / "mowing_events.gpkg", layer="mowing_events", driver="GPKG")
            n_parcels, n_events = len(table), len(layer)
        with_cuts = int(((count > 0) & (count != 255)).sum().compute())
        paths = publish(tmp, out)
    return MowingResult(paths=paths, pixels_with_cuts=with_cuts, parcels=n_parcels,
                        parcel_events=n_events)
