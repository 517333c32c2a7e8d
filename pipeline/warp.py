"""Scenes resampled onto the run grid, each pixel on its own: Sentinel-1 bilinearly,
Sentinel-2 levels and classes by nearest neighbour.

GDAL's warper, which odc-stac calls once per dask chunk, derives its bilinear kernel
and its coordinate mapping from each destination window. The same pixel then gets
another value with another ``--chunk`` or tile layout: on the demo archive (scenes in
EPSG:4326, grid in UTM) a third of the pixels moved by more than 0.01 dB between
chunk 16 and 256, some by 0.5-2 dB.

Here a pixel's value depends only on where its centre falls in the scene: the centre
is transformed exactly (PROJ, once per chunk and scene CRS), and the four scene
pixels around it are blended with bilinear weights, renormalised over the valid ones.
The result is the same for any chunk or tile layout, bit for bit, and equals GDAL's
bilinear warp of small windows (within 0.002 dB on 16-pixel windows).

Nearest neighbour (:func:`sample_nearest`) takes the scene pixel that holds the
centre, as GDAL's nearest resampling does: where the grid shares the scene's CRS and
10 m lattice (Sentinel-2 tiles and the run grid in one UTM zone) that is exactly the
pixel odc-stac pastes, and the 20 m SCL pixel under each 10 m pixel.

Scenes of one solar day are fused first-valid in time order, as odc-stac's
``groupby="solar_day"`` does; the time label of a day is its first scene's. Each
chunk reads its window of every raster once, through the pool of open datasets
(:mod:`pipeline.handles`); rasters on one pixel grid share one sampling plan.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as dask_array
import numpy as np
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.geom import box
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window

from pipeline.handles import POOL, asset_version, reserve_block_cache

#: A pixel is valid where the valid neighbours carry at least this share of its
#: bilinear weight (its centre lies inside the scene's valid area, to half a pixel).
MIN_WEIGHT = 0.5


@dataclass(frozen=True)
class Scene:
    """One scene's rasters, one href per band (polarisation), and where it lies.

    Attributes:
        hrefs: absolute asset hrefs, in band order.
        time: acquisition time (naive UTC).
        day: its solar day (local solar date at the scene's centre longitude).
        bbox: lon/lat bounds (``None``: unknown, read for every chunk).
        id: the item id (breaks ties of time within a day).
    """

    hrefs: tuple[str, ...]
    time: dt.datetime
    day: dt.date
    bbox: tuple[float, float, float, float] | None
    id: str


def scene_of(item: pystac.Item, asset_keys: Sequence[str]) -> Scene:
    """The :class:`Scene` of a STAC item, with the assets named by ``asset_keys``."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ValueError(f"{item.id}: no datetime")
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    bbox = tuple(float(v) for v in item.bbox[:4]) if item.bbox else None
    lon = (bbox[0] + bbox[2]) / 2 if bbox else 0.0
    day = (when + dt.timedelta(hours=lon / 15)).date()
    hrefs = tuple(item.assets[k].get_absolute_href() or item.assets[k].href for k in asset_keys)
    return Scene(hrefs, when, day, bbox, item.id)  # type: ignore[arg-type]


def group_days(scenes: Sequence[Scene]) -> list[list[Scene]]:
    """Scenes grouped by solar day, days in order, each day's scenes in time order."""
    days: dict[dt.date, list[Scene]] = {}
    for s in sorted(scenes, key=lambda s: (s.day, s.time, s.id)):
        days.setdefault(s.day, []).append(s)
    return list(days.values())


@functools.lru_cache(maxsize=32)
def _transformer(dst_crs: str, src_crs: str) -> Transformer:
    return Transformer.from_crs(dst_crs, src_crs, always_xy=True)


@dataclass(frozen=True)
class _Plan:
    """Where a set of positions falls in one raster's pixels, for any of its bands:
    the window to read, and each position's four neighbours and bilinear weights."""

    window: Window
    index: tuple[np.ndarray, ...]  # flat index of each neighbour in the padded window
    weights: tuple[np.ndarray, ...]
    #: the weight sum where every cell of the window is valid (same sums, same order)
    full_weight: np.ndarray


def _bilinear_plan(col: np.ndarray, row: np.ndarray, h: int, w: int) -> _Plan | None:
    """The :class:`_Plan` of fractional positions ``col``/``row`` (pixel space of an
    ``h`` x ``w`` raster, 0 = the first pixel's left/top edge); ``None`` when no
    position touches the raster."""
    c, r = col - 0.5, row - 0.5
    finite = np.isfinite(c) & np.isfinite(r)  # PROJ gives inf where it cannot transform
    if not finite.any():
        return None
    c0, r0 = np.floor(c), np.floor(r)
    if finite.all():
        cs, rs = c0, r0
    else:
        cs, rs = c0[finite], r0[finite]
        c0, r0 = np.where(finite, c0, -1e9), np.where(finite, r0, -1e9)
        c, r = np.where(finite, c, -1e9), np.where(finite, r, -1e9)
    cmin, cmax = max(int(cs.min()), 0), min(int(cs.max()) + 1, w - 1)
    rmin, rmax = max(int(rs.min()), 0), min(int(rs.max()) + 1, h - 1)
    if cmin > cmax or rmin > rmax:
        return None
    window = Window(cmin, rmin, cmax - cmin + 1, rmax - rmin + 1)
    # A border of two invalid cells: a position beyond the window (or the scene) is
    # clipped into it and reads four invalid neighbours.
    ph, pw = rmax - rmin + 1 + 4, cmax - cmin + 1 + 4
    base = (np.clip(r0 - (rmin - 2), 0, ph - 2).astype(np.intp) * pw
            + np.clip(c0 - (cmin - 2), 0, pw - 2).astype(np.intp))
    fr, fc = (r - r0).astype(np.float32), (c - c0).astype(np.float32)
    weights = ((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc)
    index = (base, base + 1, base + pw, base + pw + 1)
    # a neighbour inside the window (not in the invalid border) counts its weight, as
    # _bilinear_apply's sum over a window of valid cells would
    inner = np.zeros((ph, pw), np.float32)
    inner[2:-2, 2:-2] = 1
    iflat = inner.ravel()
    full = np.zeros(base.shape, np.float32)
    for idx, weight in zip(index, weights, strict=True):
        full += weight * iflat[idx]
    return _Plan(window, index, weights, full)


def _bilinear_apply(plan: _Plan, data: np.ndarray, nodata: float | None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """The plan's positions sampled from ``data`` (the plan's window of a band):
    NaN where the valid neighbours carry less than ``MIN_WEIGHT``. ``out``: where to
    write (NaN-filled)."""
    good = np.isfinite(data) & (data > 0)
    if nodata is not None and np.isfinite(nodata):
        good &= data != nodata
    all_good = bool(good.all())
    values = np.zeros((data.shape[0] + 4, data.shape[1] + 4), np.float32)
    values[2:-2, 2:-2] = data if all_good else np.where(good, data, 0)
    vflat = values.ravel()
    acc = np.zeros(plan.index[0].shape, np.float32)
    for idx, weight in zip(plan.index, plan.weights, strict=True):
        acc += weight * vflat[idx]
    if all_good:  # the usual case inside a scene's footprint: the plan has the sums
        wsum = plan.full_weight
    else:
        weights = np.zeros_like(values)
        weights[2:-2, 2:-2] = good
        wflat = weights.ravel()
        wsum = np.zeros(plan.index[0].shape, np.float32)
        for idx, weight in zip(plan.index, plan.weights, strict=True):
            wsum += weight * wflat[idx]
    if out is None:
        out = np.full(acc.shape, np.nan, np.float32)
    np.divide(acc, wsum, out=out, where=wsum >= MIN_WEIGHT)
    return out


def _bilinear(
    band: rasterio.io.DatasetReader, col: np.ndarray, row: np.ndarray
) -> np.ndarray | None:
    """Band 1 of ``band`` sampled bilinearly at fractional pixel positions.

    ``col``/``row`` are positions in the scene's pixel space (0 = the first pixel's
    left/top edge). NaN where the valid neighbours carry less than ``MIN_WEIGHT``.
    ``None`` when no position touches the scene.
    """
    plan = _bilinear_plan(col, row, band.height, band.width)
    if plan is None:
        return None
    data = band.read(1, window=plan.window, out_dtype="float32")
    return _bilinear_apply(plan, data, band.nodata)


def _centres(geobox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : geobox.shape[0], 0 : geobox.shape[1]].astype(np.float64)
    a = geobox.affine
    return (a.c + (xs + 0.5) * a.a + (ys + 0.5) * a.b,
            a.f + (xs + 0.5) * a.d + (ys + 0.5) * a.e)


class _Coords:
    """Pixel centres of one chunk in each scene CRS met, transformed once per CRS, and
    the sampling plans of the rasters met, made once per pixel grid."""

    def __init__(self, geobox: GeoBox):
        assert geobox.crs is not None
        self.crs = geobox.crs.to_wkt()
        self.xy = _centres(geobox)
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.plans: dict[tuple[object, ...], object] = {}

    def in_crs(self, crs: str) -> tuple[np.ndarray, np.ndarray]:
        if crs not in self.cache:
            sx, sy = _transformer(self.crs, crs).transform(*self.xy)
            self.cache[crs] = (np.asarray(sx), np.asarray(sy))
        return self.cache[crs]

    def positions(self, src: rasterio.io.DatasetReader) -> tuple[np.ndarray, np.ndarray]:
        """The centres in ``src``'s pixel space (0 = its first pixel's left/top edge)."""
        if src.crs is None:
            raise ValueError(f"{src.name}: no CRS (rasters must be geocoded)")
        sx, sy = self.in_crs(src.crs.to_wkt())
        inv = ~src.transform
        return inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f

    def plan(self, kind: str, src: rasterio.io.DatasetReader) -> object:
        """The ``bilinear`` or ``nearest`` plan of ``src``'s pixel grid (None: missed)."""
        key = (kind, src.crs.to_wkt() if src.crs else None, src.transform, src.height,
               src.width)
        if key not in self.plans:
            col, row = self.positions(src)
            make = _bilinear_plan if kind == "bilinear" else _nearest_plan
            self.plans[key] = make(col, row, src.height, src.width)
        return self.plans[key]


def sample_scene(scene: Scene, geobox: GeoBox, coords: _Coords | None = None,
                 out: np.ndarray | None = None, shared: frozenset[str] = frozenset()
                 ) -> np.ndarray | None:
    """``(bands, y, x)`` float32 linear values of ``scene`` at the pixel centres of
    ``geobox`` (NaN outside it or where invalid); ``None`` when it misses the box.
    ``out``: a NaN-filled array to write into.

    Rasters on the same pixel grid (a scene's polarisations, scenes of one product
    grid) share one plan per chunk.
    """
    coords = coords or _Coords(geobox)
    if out is None:
        out = np.full((len(scene.hrefs), *geobox.shape), np.nan, np.float32)
    return out if _sample_bands(scene, coords, "bilinear", out, shared) else None


@dataclass(frozen=True)
class _NearestPlan:
    """Positions in one raster's pixels: the window to read, which positions fall in
    the raster, and their pixel's flat index in the window."""

    window: Window
    inside: np.ndarray
    index: np.ndarray


def _nearest_plan(col: np.ndarray, row: np.ndarray, h: int, w: int) -> _NearestPlan | None:
    """The pixel of an ``h`` x ``w`` raster that holds each position, as GDAL's nearest
    resampling picks it; ``None`` when no position falls in the raster."""
    with np.errstate(invalid="ignore"):
        inside = (np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < w)
                  & (row >= 0) & (row < h))
    if not inside.any():
        return None
    ci = np.floor(col[inside]).astype(np.intp)
    ri = np.floor(row[inside]).astype(np.intp)
    cmin, rmin = int(ci.min()), int(ri.min())
    window = Window(cmin, rmin, int(ci.max()) - cmin + 1, int(ri.max()) - rmin + 1)
    return _NearestPlan(window, inside, (ri - rmin) * window.width + (ci - cmin))


def sample_nearest(scene: Scene, geobox: GeoBox, coords: _Coords | None = None,
                   out: np.ndarray | None = None, shared: frozenset[str] = frozenset()
                   ) -> np.ndarray | None:
    """``(bands, y, x)`` values of ``scene`` at the pixel centres of ``geobox``
    by nearest neighbour, 0 (no data) outside the rasters; ``None`` when it misses the
    box. For integer rasters of up to 16 bits (Sentinel-2 levels and classes, 0 = no
    data); the values are kept exactly, as uint16. ``out``: a zero-filled array to
    write into."""
    coords = coords or _Coords(geobox)
    if out is None:
        out = np.zeros((len(scene.hrefs), *geobox.shape), np.uint16)
    return out if _sample_bands(scene, coords, "nearest", out, shared) else None


def extents(days: list[list[Scene]], geobox: GeoBox) -> list[list[tuple[float, ...] | None]]:
    """Each scene's bounds in the grid CRS, padded by two pixels (None: unknown)."""
    assert geobox.crs is not None
    pad = 2 * max(abs(geobox.resolution.x), abs(geobox.resolution.y))
    out: list[list[tuple[float, ...] | None]] = []
    for day in days:
        row: list[tuple[float, ...] | None] = []
        for s in day:
            if s.bbox is None:
                row.append(None)
                continue
            # densified (0.01 degree, ~1 km) so curved edges in the grid CRS stay inside
            e = box(*s.bbox, "EPSG:4326").to_crs(geobox.crs, resolution=0.01).boundingbox
            row.append((e.left - pad, e.bottom - pad, e.right + pad, e.top + pad))
        out.append(row)
    return out


#: GDAL drivers of JPEG2000, whose blocks (tiles) are decoded whole for any window.
JPEG2000_DRIVERS = frozenset({"JP2OpenJPEG", "JP2KAK", "JP2ECW", "JP2MrSID", "JPEG2000"})

#: File name endings of JPEG2000 rasters: only these are opened to look at their blocks.
JPEG2000_SUFFIXES = (".jp2", ".j2k", ".j2c", ".jpx")


@dataclass(frozen=True)
class LargeBlocks:
    """The JPEG2000 rasters of a tile whose blocks are larger than a chunk.

    Attributes:
        nbytes: their decoded blocks over the tile: what the block cache must hold for
            each block to be decoded once, not once per chunk inside it
            (:func:`pipeline.handles.reserve_block_cache`).
        hrefs: the rasters, read through one handle per process at a time (GDAL caches
            blocks per handle; :meth:`pipeline.handles.DatasetPool.dataset`).
    """

    nbytes: int = 0
    hrefs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Layout:
    block: tuple[int, int]
    shape: tuple[int, int]
    transform: Affine
    crs: str
    itemsize: int


@functools.lru_cache(maxsize=65536)
def _jpeg2000_layout(href: str, version: tuple[int, int]) -> _Layout | None:
    """The block and pixel grid of a JPEG2000 raster (None: another format or no CRS),
    remembered per asset version: every tile of a run asks for the same scenes."""
    del version  # only part of the cache key
    try:
        with POOL.dataset(href) as src:
            if src.driver not in JPEG2000_DRIVERS or src.crs is None:
                return None
            return _Layout(src.block_shapes[0], (src.height, src.width), src.transform,
                           src.crs.to_wkt(), np.dtype(src.dtypes[0]).itemsize)
    except Exception:  # rasterio raises several types; the chunk reads report it
        return None


def large_blocks(days: list[list[Scene]], geobox: GeoBox, chunk: int) -> LargeBlocks:
    """The JPEG2000 rasters of ``days`` with blocks larger than a ``chunk`` edge over
    ``geobox`` (the tile), and their blocks' decoded bytes there.

    Only JPEG2000 counts (files named ``*.jp2`` and the like, as Sentinel-2 is on
    EODATA and CDSE; other files are not opened here): its 1024-pixel tiles are decoded
    whole for any window (70-75 ms a tile here), so each of the 16 256-pixel chunks
    inside one would decode it again. A GeoTIFF's blocks (256 pixels, DEFLATE, about
    1 ms each) cost less to decode again than to keep: keeping them made a worker's
    memory grow with the area it reads (bench_scale's 16x AOI at 48-pixel chunks: 1.25x
    the 1x AOI's peak against 1.14x, one sitting). Blocks of at most a chunk's edge
    count nothing: such a block serves at most four chunks."""
    assert geobox.crs is not None
    total, hrefs = 0, set()
    for day in days:
        for scene in day:
            for href in scene.hrefs:
                if not href.lower().split("?")[0].endswith(JPEG2000_SUFFIXES):
                    continue
                layout = _jpeg2000_layout(href, asset_version(href))
                if layout is None or max(layout.block) <= chunk:
                    continue
                (bh, bw), (height, width) = layout.block, layout.shape
                left, bottom, right, top = geobox.extent.to_crs(layout.crs).boundingbox
                inv = ~layout.transform
                cols, rows = zip(*(inv * (x, y) for x in (left, right) for y in (bottom, top)),
                                 strict=True)
                c0, c1 = max(0, int(min(cols)) // bw), min(width - 1, int(max(cols))) // bw
                r0, r1 = max(0, int(min(rows)) // bh), min(height - 1, int(max(rows))) // bh
                if c1 >= c0 and r1 >= r0:
                    total += (c1 - c0 + 1) * (r1 - r0 + 1) * bh * bw * layout.itemsize
                    hrefs.add(href)
    return LargeBlocks(total, frozenset(hrefs))


def _sample_bands(scene: Scene, coords: _Coords, kind: str, out: np.ndarray,
                  shared: frozenset[str] = frozenset()) -> bool:
    """Each band of ``scene`` sampled (``bilinear`` or ``nearest``) into ``out[band]``;
    whether any band touched the chunk. ``shared``: rasters read through one handle
    per process at a time (:class:`LargeBlocks`)."""
    hit = False
    for b, href in enumerate(scene.hrefs):
        with POOL.dataset(href, shared=href in shared) as src:
            plan = coords.plan(kind, src)
            if plan is None:
                continue
            if isinstance(plan, _Plan):
                data = src.read(1, window=plan.window, out_dtype="float32")
                _bilinear_apply(plan, data, src.nodata, out[b])
            else:
                assert isinstance(plan, _NearestPlan)
                data = src.read(1, window=plan.window)
                out[b][plan.inside] = data.ravel()[plan.index]
        hit = True
    return hit


def fuse_days(
    days: list[list[Scene]], extents: list[list[tuple[float, ...] | None]], bands: int,
    geobox: GeoBox, kind: str = "bilinear", large: LargeBlocks | None = None,
) -> np.ndarray:
    """``(bands, days, y, x)``: each day's scenes sampled on ``geobox`` and fused
    first-valid in time order, per band. ``kind`` ``bilinear``: float32 linear power,
    NaN where no scene is valid; ``nearest``: uint16 levels, 0 where no scene has data.
    ``large``: the tile's rasters with blocks larger than a chunk, whose blocks the
    process's cache keeps for the next chunks."""
    if large is not None:
        reserve_block_cache(large.nbytes)
    shared = large.hrefs if large is not None else frozenset()
    gx0, gy0, gx1, gy1 = geobox.boundingbox
    coords = _Coords(geobox)
    sample, empty_value = (sample_scene, np.nan) if kind == "bilinear" else (sample_nearest, 0)
    missing = np.isnan if kind == "bilinear" else (lambda a: a == 0)
    dtype = np.float32 if kind == "bilinear" else np.uint16
    out = np.full((bands, len(days), *geobox.shape), empty_value, dtype)
    for t, (day, ext) in enumerate(zip(days, extents, strict=True)):
        filled = False
        for scene, e in zip(day, ext, strict=True):
            if e is not None and (e[0] > gx1 or e[2] < gx0 or e[1] > gy1 or e[3] < gy0):
                continue
            if not filled:  # the day's first sample goes straight into place
                filled = sample(scene, geobox, coords, out[:, t], shared) is not None
            else:
                values = sample(scene, geobox, coords, shared=shared)
                if values is None:
                    continue
                out[:, t] = np.where(missing(out[:, t]), values, out[:, t])
            if not filled:
                continue
            if not missing(out[:, t]).any():
                break
    return out


def _block(
    days: list[list[Scene]], extents: list[list[tuple[float, ...] | None]], bands: int,
    geobox: GeoBox, large: LargeBlocks, x: np.ndarray, block_info: dict | None = None,
) -> np.ndarray:
    assert block_info is not None
    (y0, y1), (x0, x1) = block_info[None]["array-location"][-2:]
    return fuse_days(days, extents, bands, geobox[y0:y1, x0:x1], large=large)


def load_scenes(
    scenes: Sequence[Scene], geobox: GeoBox, names: Sequence[str], chunk: int
) -> dict[str, xr.DataArray]:
    """Lazy ``(time, y, x)`` float32 arrays, one per band name, of the scenes on
    ``geobox`` (one time per solar day; NaN where no scene has a valid value)."""
    days = group_days(scenes)
    ny, nx = geobox.shape
    template = dask_array.zeros((ny, nx), dtype=np.uint8, chunks=(chunk, chunk))
    data = dask_array.map_blocks(
        _block, days, extents(days, geobox), len(names), geobox,
        large_blocks(days, geobox, chunk), template,
        new_axis=[0, 1],
        chunks=((len(names),), (len(days),), *template.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), np.float32),
    )
    coords = geobox.coordinates
    times = np.array([d[0].time for d in days], dtype="datetime64[ns]")
    return {
        name: xr.DataArray(
            data[b], dims=("time", "y", "x"), name=name,
            coords={"time": times, "y": coords["y"].values, "x": coords["x"].values},
        )
        for b, name in enumerate(names)
    }
