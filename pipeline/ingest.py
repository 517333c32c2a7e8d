"""Ingestion: STAC items -> lazy cube on the run's grid and 6-day time grid.

Every source hands over STAC items; this module reads them the same way for all
sources, so a demo run exercises the very code a real run uses. Both sensors are
read per chunk by :mod:`pipeline.warp` over rasterio: Sentinel-2 levels and classes
by nearest neighbour at the pixel centres (the pixels odc-stac's ``load`` gives on the
same GeoBox, tested against it), Sentinel-1 bilinearly. One task per chunk reads its
window of every scene (through :data:`pipeline.handles.POOL`, so a block that two
chunks share is decoded once while GDAL's cache holds it), fuses each solar day,
masks and computes NDVI; one more bins it onto the 6-day grid. Nothing is computed
here: the result is a dask-backed ``xarray.Dataset`` that :mod:`pipeline.cube` writes
chunk by chunk.

Per-scene policy: a scene whose metadata is unusable or whose assets cannot be
opened is skipped and recorded with the reason (see :class:`SceneLog`); the run
goes on. A Sentinel-2 scene whose pixels contradict its declared offset is read as
its data says and flagged (:func:`pipeline.s2.check_offset`). No clear scene at all
is a :class:`~pipeline.errors.NoDataError`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as dask_array
import numpy as np
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.features import rasterize

from pipeline import s1 as s1mod
from pipeline import s2 as s2mod
from pipeline import warp
from pipeline.aoi import AOI, aoi_in_crs
from pipeline.handles import asset_version
from pipeline.timegrid import TimeGrid

log = logging.getLogger(__name__)

#: Spatial chunk edge (pixels) of the cube; the time axis is never split.
CHUNK = 256


@dataclass
class SceneLog:
    """Which scenes were used and which were skipped, and why (goes to run.json)."""

    used: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, item: pystac.Item, reason: str) -> None:
        """Record a skipped scene and log it."""
        log.warning("skipping scene %s: %s", item.id, reason)
        self.skipped.append({"id": item.id, "reason": reason})


def _href(item: pystac.Item, key: str) -> str:
    return item.assets[key].get_absolute_href() or item.assets[key].href


def check_readable(item: pystac.Item, keys: Sequence[str]) -> str | None:
    """Open each asset's header and first block; the failure reason, or None if fine.

    Answers are remembered per asset (href, and size and mtime for local files) for
    the life of the process: every tile of a run checks the same scenes, and each
    check costs file opens (HTTP requests on remote archives).
    """
    for key in keys:
        href = _href(item, key)
        reason = _asset_problem(href, asset_version(href))
        if reason:
            return f"asset {key} unreadable ({reason})"
    return None


@functools.lru_cache(maxsize=65536)
def _asset_problem(href: str, version: tuple[int, int]) -> str | None:
    del version  # only part of the cache key: a rewritten file is checked again
    try:
        with rasterio.open(href) as src:
            src.read(1, window=((0, min(src.height, 16)), (0, min(src.width, 16))))
            if src.overviews(1):
                h, w = src.height, src.width
                src.read(1, window=((h - 1, h), (w - 1, w)))
    except Exception as exc:  # rasterio raises several types for broken files
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return None


#: Longest edge of the decimated sample the offset check reads (overviews / JP2 levels).
OFFSET_SAMPLE_PX = 256


def check_scene_offset(item: pystac.Item, keys: Sequence[str], rule: s2mod.Scaling
                       ) -> s2mod.OffsetCheck:
    """The data check of a scene's offset on a decimated sample of its B04, B08 and SCL.

    The whole asset is sampled (not the AOI's window), so every tile of a run reaches
    the same verdict; answers are remembered per asset version like
    :func:`check_readable`'s.
    """
    hrefs = tuple(_href(item, k) for k in keys)
    return _offset_check(hrefs, tuple(asset_version(h) for h in hrefs), rule)


@functools.lru_cache(maxsize=65536)
def _offset_check(hrefs: tuple[str, ...], versions: tuple[tuple[int, int], ...],
                  rule: s2mod.Scaling) -> s2mod.OffsetCheck:
    del versions  # only part of the cache key
    try:
        with contextlib.ExitStack() as stack:
            srcs = [stack.enter_context(rasterio.open(h)) for h in hrefs]
            shape = (min(OFFSET_SAMPLE_PX, *(s.height for s in srcs)),
                     min(OFFSET_SAMPLE_PX, *(s.width for s in srcs)))
            red, nir, scl = (s.read(1, out_shape=shape, resampling=Resampling.nearest)
                             for s in srcs)
    except Exception as exc:  # rasterio raises several types; the scene is read anyway
        log.warning("offset check of %s not possible (%s: %s); the metadata's offset stands",
                    hrefs[0], type(exc).__name__, exc)
        return s2mod.OffsetCheck(rule, 0, None)
    return s2mod.check_offset(red, nir, scl, rule)


def _with_keys(
    items: Sequence[pystac.Item], key_of: dict[str, tuple[str, ...]], scenes: SceneLog
) -> list[tuple[pystac.Item, tuple[str, ...]]]:
    out = []
    for item in items:
        keys = key_of.get(item.id)
        if keys is None:
            continue
        reason = check_readable(item, keys)
        if reason:
            scenes.skip(item, reason)
            continue
        out.append((item, keys))
    return out


def _nan_like(template: xr.DataArray) -> xr.DataArray:
    return xr.full_like(template, np.nan, dtype=np.float32)


def bin_block(obs: np.ndarray, idx: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (float32, NaN where none) and count (uint8) of the non-NaN ``obs`` per bin.

    ``obs`` is (T, ...) with acquisitions in time order, ``idx`` (T,) their bin
    (-1: outside the grid), non-decreasing where not -1. Sums run in float32 in
    acquisition order and the mean divides in float64, as a dask ``sum`` over the
    acquisitions of a bin would.
    """
    shape = (nbins, *obs.shape[1:])
    mean = np.full(shape, np.nan, np.float32)
    count = np.zeros(shape, np.uint8)
    _bin_into(obs, idx, mean, count)
    return mean, count


def _bin_into(obs: np.ndarray, idx: np.ndarray, mean: np.ndarray, count: np.ndarray) -> None:
    """:func:`bin_block` into ``mean`` (NaN-filled) and ``count`` (zero-filled)."""
    ts = np.flatnonzero(idx >= 0)
    bins = idx[ts]
    if bins.size and np.any(np.diff(bins) < 0):
        raise ValueError("acquisitions must be in time order")
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]]) if bins.size else bins
    for s, e in zip(starts, [*starts[1:], bins.size], strict=True):
        b = bins[s]
        if e - s == 1:  # one acquisition: its values (+0.0 added, as the sum would)
            np.add(obs[ts[s]], np.float32(0), out=mean[b])
            np.logical_not(np.isnan(obs[ts[s]]), out=count[b], casting="unsafe")
            continue
        sel = obs[ts[s:e]]
        nan = np.isnan(sel)
        # axis-0 sums add the acquisitions one after another, in order
        total = np.where(nan, np.float32(0), sel).sum(axis=0, dtype=np.float32)
        n = (e - s) - nan.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[b] = total / np.where(n > 0, n, np.nan)
        count[b] = n


def _bin_stacked(obs: np.ndarray, idx: np.ndarray, nbins: int, db: bool) -> np.ndarray:
    """One chunk's bins as a (2, nbins, y, x) float32 block: mean (dB if ``db``), count."""
    out = np.empty((2, nbins, *obs.shape[1:]), np.float32)
    out[0] = np.nan
    out[1] = 0
    _bin_into(obs, idx, out[0], out[1])
    if db:
        s1mod.to_db(out[0], out=out[0])
    return out


def bin_to_grid(
    obs: xr.DataArray, grid: TimeGrid, template: xr.DataArray, db: bool = False
) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and count of the non-NaN observations per 6-day bin (lazy).

    ``obs`` has dims (time, y, x) with acquisition times; ``template`` is a
    (y, x) dask array giving the spatial layout (and chunks) of the result.
    ``db=True`` converts the mean from linear power to dB. One task per spatial
    chunk bins all of its acquisitions in numpy (:func:`bin_block`).
    """
    template = template.drop_vars([c for c in template.coords if c not in template.dims])
    time = xr.DataArray(grid.starts.values, dims="time", name="time")
    if not obs.sizes.get("time", 0):
        mean = _nan_like(template)
        count = xr.zeros_like(template, dtype=np.uint8)
        return xr.concat([mean] * grid.count, dim=time), xr.concat([count] * grid.count, dim=time)
    order = np.argsort(obs["time"].values, kind="stable")
    idx = grid.bin_index(obs["time"].values[order])
    data = obs.transpose("time", "y", "x").data
    if not np.array_equal(order, np.arange(order.size)):
        data = data[order]
    assert template.chunks is not None, "template must be dask-backed"
    y_chunks, x_chunks = template.chunks
    data = dask_array.asarray(data).rechunk({0: -1, 1: y_chunks, 2: x_chunks})
    stacked = data.map_blocks(
        _bin_stacked,
        idx=idx,
        nbins=grid.count,
        db=db,
        dtype=np.float32,
        chunks=((2,), (grid.count,), *data.chunks[1:]),
        new_axis=0,
        meta=np.empty((0, 0, 0, 0), np.float32),
    )
    coords = {"time": time, "y": template["y"], "x": template["x"]}
    mean = xr.DataArray(stacked[0], dims=("time", "y", "x"), coords=coords)
    count = xr.DataArray(stacked[1].astype(np.uint8), dims=("time", "y", "x"), coords=coords)
    return mean, count


def load_s2_ndvi(
    items: Sequence[pystac.Item], geobox: GeoBox, scenes: SceneLog, chunk: int = CHUNK
) -> xr.DataArray | None:
    """Cloud-masked NDVI per acquisition day on ``geobox``; None without usable scenes."""
    spec = s2mod.S2
    key_of: dict[str, tuple[str, ...]] = {}
    scaling: dict[str, s2mod.Scaling] = {}
    for item in items:
        try:
            keys = tuple(s2mod.asset_key(item, b) for b in spec.bands)
            sc_red = s2mod.reflectance_scaling(item, keys[0])
            sc_nir = s2mod.reflectance_scaling(item, keys[1])
        except KeyError as exc:
            scenes.skip(item, str(exc))
            continue
        if (sc_red.scale, sc_red.offset) != (sc_nir.scale, sc_nir.offset):
            scenes.skip(item, f"red and nir scaling differ (scale/offset {sc_red.scale:g}/"
                        f"{sc_red.offset:g} vs {sc_nir.scale:g}/{sc_nir.offset:g})")
            continue
        key_of[item.id] = keys
        scaling[item.id] = sc_red
    usable = _with_keys(items, key_of, scenes)
    checks: dict[str, s2mod.OffsetCheck] = {}
    for item, keys in usable:
        check = check_scene_offset(item, keys, scaling[item.id])
        if check.flag:
            log.warning("scene %s: %s", item.id, check.flag)
        checks[item.id] = check
        scaling[item.id] = check.scaling
    # One read per (asset keys, scaling) group: the levels are read raw, and the
    # offset of each group is applied exactly once.
    groups: dict[tuple[tuple[str, ...], tuple[float, float]], list[pystac.Item]] = {}
    for item, keys in usable:
        sc = scaling[item.id]
        groups.setdefault((keys, (sc.scale, sc.offset)), []).append(item)
    parts = []
    for (keys, (scale, offset)), group in groups.items():
        parts.append(_s2_ndvi_days(group, keys, scale, offset, geobox, chunk))
        for item in group:
            scenes.used.append(
                {
                    "id": item.id,
                    "sensor": "sentinel-2",
                    "datetime": str(item.datetime),
                    "processing_baseline": scaling[item.id].baseline,
                    "scale": scale,
                    "offset": offset,
                    "offset_source": scaling[item.id].source,
                    "offset_check": checks[item.id].record(),
                }
            )
    if not parts:
        return None
    return xr.concat(parts, dim="time").sortby("time") if len(parts) > 1 else parts[0]


def _s2_block(
    days: list[list[warp.Scene]], extents: list[list[tuple[float, ...] | None]],
    scale: float, offset: float, geobox: GeoBox, large: warp.LargeBlocks, x: np.ndarray,
    block_info: dict | None = None,
) -> np.ndarray:
    """One chunk's cloud-masked NDVI per solar day, ``(days, y, x)`` float32."""
    assert block_info is not None
    (y0, y1), (x0, x1) = block_info[None]["array-location"][-2:]
    red_dn, nir_dn, scl = warp.fuse_days(days, extents, 3, geobox[y0:y1, x0:x1], "nearest",
                                         large)
    keep = (red_dn > 0) & (nir_dn > 0) & s2mod.clear_mask(scl, s2mod.S2.clear_classes)
    # s2.compute_ndvi's arithmetic, in place: reflectance = level * scale + offset
    red, nir = red_dn.astype(np.float32), nir_dn.astype(np.float32)
    for dn in (red, nir):
        dn *= np.float32(scale)
        dn += np.float32(offset)
    total = nir + red
    keep &= total > 0  # and finite: the levels are
    nir -= red
    ndvi = np.full(total.shape, np.nan, np.float32)
    np.divide(nir, total, out=ndvi, where=keep)
    return np.clip(ndvi, -1.0, 1.0, out=ndvi)


def _s2_ndvi_days(
    group: Sequence[pystac.Item], keys: tuple[str, ...], scale: float, offset: float,
    geobox: GeoBox, chunk: int,
) -> xr.DataArray:
    """Lazy ``(time, y, x)`` NDVI of one scaling group's scenes, one time per solar day.

    Each chunk reads its window of every scene's red, NIR and SCL rasters (nearest
    neighbour at the pixel centres, :func:`pipeline.warp.sample_nearest`), fuses the
    scenes of a solar day first-valid per band in time order, and masks in one task.
    """
    days = warp.group_days([warp.scene_of(item, keys) for item in group])
    ny, nx = geobox.shape
    template = dask_array.zeros((ny, nx), dtype=np.uint8, chunks=(chunk, chunk))
    data = dask_array.map_blocks(
        _s2_block, days, warp.extents(days, geobox), scale, offset, geobox,
        warp.large_blocks(days, geobox, chunk), template,
        new_axis=[0],
        chunks=((len(days),), *template.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
    )
    coords = geobox.coordinates
    times = np.array([d[0].time for d in days], dtype="datetime64[ns]")
    return xr.DataArray(data, dims=("time", "y", "x"), coords={
        "time": times, "y": coords["y"].values, "x": coords["x"].values})


def load_s1(
    items: Sequence[pystac.Item], geobox: GeoBox, scenes: SceneLog, chunk: int = CHUNK
) -> dict[str, xr.DataArray]:
    """Backscatter (linear power) per direction and polarisation, reprojected to ``geobox``.

    Keys are cube variable names (``vv_asc`` ...); directions without scenes are absent.
    """
    spec = s1mod.S1
    by_dir: dict[str, list[pystac.Item]] = {d: [] for d in s1mod.ORBIT_DIRECTIONS}
    key_of: dict[str, tuple[str, ...]] = {}
    for item in items:
        try:
            direction = s1mod.orbit_direction(item)
            key_of[item.id] = tuple(spec.asset_key(item, p) for p in spec.polarisations)
        except (KeyError, ValueError) as exc:
            scenes.skip(item, str(exc).split(": ", 1)[-1])
            continue
        by_dir[direction].append(item)
    out: dict[str, xr.DataArray] = {}
    for direction, d_items in by_dir.items():
        usable = _with_keys(d_items, key_of, scenes)
        if usable:
            # Resampled here, not by odc-stac: GDAL's warper gives a pixel another value
            # with another chunk or tile layout (pipeline.warp).
            loaded = warp.load_scenes([warp.scene_of(item, keys) for item, keys in usable],
                                      geobox, spec.polarisations, chunk)
            for pol, da in loaded.items():
                out[s1mod.cube_variable(pol, direction)] = da
        for item, _ in usable:
            scenes.used.append(
                {
                    "id": item.id,
                    "sensor": "sentinel-1",
                    "datetime": str(item.datetime),
                    "orbit_state": direction,
                    "relative_orbit": item.properties.get("sat:relative_orbit"),
                }
            )
    return out


def make_aoi_mask(aoi: AOI, geobox: GeoBox) -> xr.DataArray:
    """1 inside the AOI polygon, 0 outside, on the grid."""
    assert geobox.crs is not None
    geom = aoi_in_crs(aoi, geobox.crs.to_wkt())
    mask = rasterize(
        [(geom, 1)],
        out_shape=geobox.shape,
        transform=geobox.affine,
        fill=0,
        dtype="uint8",
        all_touched=True,
    )
    coords = geobox.coordinates
    return xr.DataArray(
        mask,
        dims=("y", "x"),
        coords={"y": coords["y"].values, "x": coords["x"].values},
        name="aoi_mask",
    )


def make_cube(
    s2_items: Sequence[pystac.Item],
    s1_items: Sequence[pystac.Item],
    aoi: AOI,
    geobox: GeoBox,
    grid: TimeGrid,
    scenes: SceneLog,
    chunk: int = CHUNK,
) -> xr.Dataset:
    """The lazy cube: ``ndvi``, ``ndvi_count``, ``vv_asc``/``vh_asc``/``vv_desc``/``vh_desc``
    (dB), ``aoi_mask``; dims (time, y, x), time = 6-day bin starts."""
    mask = make_aoi_mask(aoi, geobox)
    template = mask.astype(np.float32).chunk({"y": chunk, "x": chunk})
    ndvi_obs = load_s2_ndvi(s2_items, geobox, scenes, chunk)
    if ndvi_obs is None:
        ndvi_obs = xr.DataArray(
            np.empty((0, *geobox.shape), np.float32),
            dims=("time", "y", "x"),
            coords={"time": np.array([], "datetime64[ns]"), "y": mask.y, "x": mask.x},
        )
    ndvi, count = bin_to_grid(ndvi_obs.assign_coords(y=mask.y, x=mask.x), grid, template)
    data: dict[str, xr.DataArray] = {"ndvi": ndvi, "ndvi_count": count}
    s1 = load_s1(s1_items, geobox, scenes, chunk)
    for pol in s1mod.S1.polarisations:
        for direction in s1mod.ORBIT_DIRECTIONS:
            name = s1mod.cube_variable(pol, direction)
            if name in s1:
                data[name], _ = bin_to_grid(
                    s1[name].assign_coords(y=mask.y, x=mask.x), grid, template, db=True
                )
            else:
                data[name] = xr.concat(
                    [_nan_like(template)] * grid.count,
                    dim=xr.DataArray(grid.starts.values, dims="time", name="time"),
                )
    ds = xr.Dataset(data)
    ds["aoi_mask"] = mask
    ds = ds.chunk({"time": -1, "y": chunk, "x": chunk})
    return ds


@dataclass(frozen=True)
class IngestOptions:
    """How a tile's scenes become its cube.

    Attributes:
        chunk: spatial chunk edge in pixels.
        grd_cache: folder for backscatter computed here from GRD products.
        dem: DEM raster for terrain correction (None: the default on the EODATA mount).
        eodata: the ``--eodata`` mode or mount path.
        s1_processing: who turns GRD products into backscatter (``local``, ``sentinelhub``).
    """

    chunk: int = CHUNK
    grd_cache: Path = Path("grd")
    dem: Path | None = None
    eodata: str | None = None
    s1_processing: str = "local"


def backscatter_items(
    s1_items: list[pystac.Item], geobox: GeoBox, scenes: SceneLog, options: IngestOptions
) -> list[pystac.Item]:
    """S1 items as :func:`make_cube` reads them: GRD products in radar geometry are
    calibrated and terrain-corrected on ``geobox`` first (others pass through)."""
    from pipeline.grd import grd_options, process_grd_items  # grd imports this module

    return process_grd_items(
        s1_items,
        geobox,
        options.grd_cache,
        options.dem,
        grd_options(options.eodata),
        scenes,
        processing=options.s1_processing,
    )
