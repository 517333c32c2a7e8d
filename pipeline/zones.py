"""Zones: agency parcels (or season segments) as one object id per pixel of the run grid.

A run with ``--parcels`` reads the file once (:func:`prepare_parcels`): polygons are
repaired, reprojected to the run grid's CRS, clipped to the AOI, and parcels outside
the AOI or smaller than a minimum size are dropped and counted. The zone table that
results is the one order of the run: zone ``k`` is row ``k - 1`` of the table, on
every tile and chunk, so per-zone sums of chunks and tiles add up
(:func:`zone_date_sums`, :func:`zone_power_sums`).

Rasterising is per chunk (:func:`rasterize_zones`), from only the parcels that touch
the chunk, so memory follows the chunk, not the number of parcels. Overlaps: where two
parcels share pixels, the smaller parcel keeps them (a small field drawn inside a
large one is the more specific statement); among equal areas the later row wins.
The radar core of a zone (:func:`erode_zones`) keeps a pixel only where it and its
eight neighbours belong to the same zone: a 10 m GRD pixel is resampled from about
20 x 22 m, so a pixel whose diagonal neighbour is another field already mixes the two.
Both rasters are computed on the chunk grid padded by one pixel, so a parcel cut by a
chunk or tile edge gets the same pixels and core as one that is not.

The sums come in two shapes: :func:`zone_date_sums`, :func:`zone_power_sums` and
:func:`zone_value_sums` return whole (K + 1, T) tables that add with ``+``; with agency
files K is the run's parcel count (thousands to millions), so code that visits many
chunks should add :func:`local_zone_sums` (the rows of the zones present in a block)
into one set of tables in place, as :func:`pipeline.parcel_table.add_block` does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as dask_array
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
import xarray as xr
from odc.geo.geobox import GeoBox
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pipeline.blocks import blocks, chunk_edges
from pipeline.errors import InputError

log = logging.getLogger(__name__)

#: Columns tried, in order, as the parcel identifier.
ID_COLUMNS = ("parcel_id", "id", "plotID", "PLOTID", "fid")
#: Default smallest parcel kept, in pixels of the run grid (area / pixel area): 0.1 ha at 10 m.
MIN_PARCEL_PIXELS = 10
#: Shared area (m²) above which two parcels count as overlapping (touching edges share none).
OVERLAP_M2 = 1.0
#: The Sentinel-1 cube variables (dB) summed per zone over its core.
S1_VARIABLES = ("vv_asc", "vv_desc", "vh_asc", "vh_desc")


@dataclass(frozen=True)
class ParcelCounts:
    """What became of the parcels of a file (recorded in run.json).

    Attributes:
        read: polygons read from the file.
        not_polygons: rows of the file without a polygon (no geometry, points, lines),
            skipped.
        merged: polygon rows joined to an earlier row with the same parcel id (an
            agency file may store the parts of one parcel as rows; the parcel is their
            union).
        repaired: invalid geometries repaired with ``shapely.make_valid``.
        outside_aoi: parcels without area inside the AOI, dropped.
        too_small: parcels smaller than the minimum size inside the AOI, ignored.
        overlapping: parcels kept that share area with another kept parcel.
        used: parcels kept (the zones of the run).
    """

    read: int
    not_polygons: int
    merged: int
    repaired: int
    outside_aoi: int
    too_small: int
    overlapping: int
    used: int

    def as_record(self) -> dict[str, int]:
        """The counts as a JSON-ready mapping."""
        return {k: int(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Parcels:
    """The parcels of a run on its grid.

    Attributes:
        table: ``parcel_id`` and ``geometry`` (the run CRS, clipped to the AOI): row
            ``k - 1`` is zone ``k``.
        outlines: the parcels' whole outlines in the run CRS, same order (products).
        counts: what became of the file's parcels.
        digest: hash of the zone table (resume signatures, dask names).
        min_pixels: the minimum size applied.
    """

    table: gpd.GeoDataFrame
    outlines: gpd.GeoSeries
    counts: ParcelCounts
    digest: str
    min_pixels: int

    @property
    def n_zones(self) -> int:
        """Number of zones K (ids 1..K)."""
        return len(self.table)


def _read_polygons(path: Path, id_column: str | None) -> tuple[gpd.GeoDataFrame, int]:
    """``parcel_id`` + polygon geometry in the file's CRS, and the number of rows skipped
    for holding no polygon; InputError for unusable files."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--parcels {path}: no such file; pass a GeoPackage, GeoParquet, "
                         "GeoJSON or Shapefile of parcel polygons")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path)
    except Exception as exc:  # fiona/pyogrio/pyarrow raise many kinds
        raise InputError(f"--parcels {path}: not a readable vector file "
                         f"({type(exc).__name__}); pass GeoPackage, GeoParquet, GeoJSON or "
                         "Shapefile") from exc
    poly = gdf[gdf.geometry.notna() & gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if poly.empty:
        kinds = ", ".join(sorted(set(gdf.geom_type.dropna()))) or "no geometries"
        raise InputError(f"--parcels {path}: holds {kinds}, no polygons; pass parcel "
                         "outlines (Polygon/MultiPolygon)")
    if gdf.crs is None:
        raise InputError(f"--parcels {path}: the file has no CRS; save it with one "
                         "(e.g. EPSG:4326 GeoJSON)")
    key = id_column or next((c for c in ID_COLUMNS if c in poly.columns), None)
    if key is not None and key not in poly.columns:
        raise InputError(f"--parcel-id {key!r}: no such column in {path}; columns are "
                         f"{', '.join(map(str, poly.columns))}")
    ids = poly[key].astype(str) if key else pd.Series(
        [str(i) for i in range(len(poly))], index=poly.index)
    return (gpd.GeoDataFrame({"parcel_id": ids.to_numpy()}, geometry=poly.geometry.values,
                             crs=poly.crs), len(gdf) - len(poly))


def merge_parts(ids: np.ndarray, geoms: gpd.GeoSeries
                ) -> tuple[np.ndarray, gpd.GeoSeries, int]:
    """One row per parcel id: rows sharing an id become one parcel, the union of their
    (valid) polygons, at the place of the id's first row. Returns the ids, geometries
    and the number of rows joined to an earlier one.

    An agency file may hold the parts of one parcel as separate rows; kept apart they
    would give two rows of one id per date in the parcel tables and mowing events.
    """
    ids = np.asarray(ids).astype(str)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    merged = len(ids) - len(first)
    if not merged:
        return ids, geoms, 0
    # parcel k of the result: the k-th distinct id in the order of first rows
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.reshape(-1)]
    values = np.asarray(geoms.values, dtype=object)
    lead = first[order]
    out = values[lead].copy()
    # the rows of each parcel, parcels one after another (one sort, not a scan per parcel)
    by_parcel = np.argsort(group, kind="stable")
    size = np.bincount(group)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    for k in np.flatnonzero(size > 1):
        part = by_parcel[start[k]:start[k] + size[k]]
        out[k] = _polygonal(shapely.union_all(values[part]))
    return ids[lead], gpd.GeoSeries(out, crs=geoms.crs), merged


def repair_polygons(geoms: gpd.GeoSeries) -> tuple[gpd.GeoSeries, int]:
    """Invalid polygons made valid (``shapely.make_valid``, polygonal parts kept) and how
    many were invalid; a geometry with no area left is empty."""
    values = np.asarray(geoms.values, dtype=object)
    bad = ~shapely.is_valid(values)
    if bad.any():
        fixed = shapely.make_valid(values[bad])
        values = values.copy()
        values[bad] = [_polygonal(g) for g in fixed]
    return gpd.GeoSeries(values, index=geoms.index, crs=geoms.crs), int(bad.sum())


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygons of a geometry (make_valid may add lines or points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_parcels(path: Path, crs: object, id_column: str | None = None) -> gpd.GeoDataFrame:
    """Read a parcels file (GeoPackage, GeoParquet, GeoJSON, Shapefile) as valid polygons
    in ``crs``: ``parcel_id`` and ``geometry``.

    Raises :class:`InputError` if it cannot be read, has no CRS, holds no polygons or
    lacks the ``id_column``. Invalid polygons are repaired (:func:`repair_polygons`).
    """
    ids, geoms, _ = _parcel_polygons(path, id_column)
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=geoms.values,
                            crs=geoms.crs).to_crs(crs)


def _parcel_polygons(path: Path, id_column: str | None
                     ) -> tuple[np.ndarray, gpd.GeoSeries, dict[str, int]]:
    """The parcels of a file as :func:`read_parcels` and :func:`prepare_parcels` take them:
    ids and valid polygons in the file's CRS, one row per id, and what became of the rows
    (``read``, ``not_polygons``, ``repaired``, ``merged``)."""
    gdf, not_polygons = _read_polygons(path, id_column)
    geoms, repaired = repair_polygons(gdf.geometry)
    ids, geoms, merged = merge_parts(gdf["parcel_id"].to_numpy(), geoms)
    return ids, geoms, {"read": len(gdf), "not_polygons": not_polygons,
                        "repaired": repaired, "merged": merged}


def _overlapping(geoms: gpd.GeoSeries) -> int:
    """Parcels that share more than :data:`OVERLAP_M2` with another."""
    left, right = geoms.sindex.query(geoms.values, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    if not left.size:
        return 0
    shared = shapely.area(shapely.intersection(geoms.values[left], geoms.values[right]))
    hit = shared > OVERLAP_M2
    return int(np.unique(np.concatenate([left[hit], right[hit]])).size)


def prepare_parcels(
    path: Path,
    aoi: BaseGeometry,
    geobox: GeoBox,
    id_column: str | None = None,
    min_pixels: int = MIN_PARCEL_PIXELS,
) -> Parcels:
    """The zone table of a run: parcels of ``path`` on the grid of ``geobox`` inside ``aoi``
    (a geometry in the grid's CRS).

    A parcel is dropped when nothing of it lies inside the AOI and ignored when its area
    inside the AOI is under ``min_pixels`` pixels; both are counted. InputError (before
    any work) when no parcel is left.
    """
    ids, geoms, rows = _parcel_polygons(path, id_column)
    n_read = rows["read"]
    assert geobox.crs is not None
    outlines = geoms.to_crs(geobox.crs.to_wkt())
    # clip only the parcels the index finds near the AOI (a national file holds millions)
    near = outlines.sindex.query(aoi, predicate="intersects")
    clipped_values = np.array([shapely.Polygon()] * len(outlines), dtype=object)
    # a parcel sharing an edge with the AOI's outline clips to polygons plus a line,
    # and a burnt line would add pixels: keep the polygons
    clipped_values[near] = [_polygonal(g) for g in shapely.intersection(
        outlines.values[near], aoi)]
    clipped = gpd.GeoSeries(clipped_values, crs=outlines.crs)
    area = clipped.area.to_numpy()
    inside = area > 0
    pixel_area = abs(geobox.resolution.x * geobox.resolution.y)
    big = area >= min_pixels * pixel_area
    keep = inside & big
    if not inside.any():
        raise InputError(f"--parcels {path}: none of its {n_read} parcels lies inside the AOI; "
                         "check the file's CRS and that it covers the AOI")
    if not keep.any():
        raise InputError(f"--parcels {path}: the {int(inside.sum())} of its {n_read} parcels "
                         f"inside the AOI are all smaller than {min_pixels} pixels there; pass "
                         "a lower --min-parcel-pixels or a larger AOI")
    table = gpd.GeoDataFrame({"parcel_id": ids[keep]},
                             geometry=clipped.values[keep], crs=outlines.crs)
    table = table.reset_index(drop=True)
    counts = ParcelCounts(**rows, outside_aoi=int((~inside).sum()),
                          too_small=int((inside & ~big).sum()),
                          overlapping=_overlapping(table.geometry), used=int(keep.sum()))
    digest = hashlib.sha256(
        b"".join(shapely.to_wkb(table.geometry.values)) + "\n".join(table["parcel_id"]).encode()
    ).hexdigest()[:16]
    log.info("parcels: %s", counts.as_record())
    return Parcels(table=table, outlines=gpd.GeoSeries(outlines.values[keep], crs=outlines.crs),
                   counts=counts, digest=digest, min_pixels=min_pixels)


# --- rasterising -------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneShapes:
    """The parcels one chunk needs, in burn order (what a dask task carries).

    Attributes:
        ids: zone ids (1-based rows of the zone table).
        geoms: their geometries in the grid's CRS.
    """

    ids: tuple[int, ...]
    geoms: tuple[BaseGeometry, ...]


def shapes_for(parcels: gpd.GeoDataFrame, geobox: GeoBox) -> ZoneShapes:
    """The parcels touching ``geobox`` padded by one pixel, larger ones first (so the
    smaller parcel of an overlap is burnt last and keeps the shared pixels)."""
    bb = geobox.pad(1).boundingbox
    hits = np.sort(parcels.sindex.query(box(bb.left, bb.bottom, bb.right, bb.top),
                                        predicate="intersects"))
    geoms = parcels.geometry.values[hits]
    # stable sort on -area: equal areas keep row order, the later row burnt last
    order = np.argsort(-shapely.area(geoms), kind="stable")
    return ZoneShapes(tuple(int(i) + 1 for i in hits[order]), tuple(geoms[order]))


def _burn(shapes: ZoneShapes, geobox: GeoBox) -> np.ndarray:
    if not shapes.ids:
        return np.zeros(geobox.shape, np.int32)
    return rasterio.features.rasterize(
        zip(shapes.geoms, shapes.ids, strict=True), out_shape=geobox.shape,
        transform=geobox.affine, fill=0, dtype="int32",
    )


def erode_zones(padded: np.ndarray) -> np.ndarray:
    """Radar core of a zone raster padded by one pixel on every side: the inner part
    where a pixel and its 8 neighbours have the same zone, else 0."""
    centre = padded[1:-1, 1:-1]
    same = np.ones(centre.shape, bool)
    h, w = centre.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= padded[dy:dy + h, dx:dx + w] == centre
    return np.where(same, centre, 0).astype(np.int32)


def zone_block(shapes: ZoneShapes, geobox: GeoBox) -> np.ndarray:
    """(2, y, x) int32: zone ids and their radar core on ``geobox`` (0 = no zone)."""
    padded = _burn(shapes, geobox.pad(1))
    return np.stack([padded[1:-1, 1:-1], erode_zones(padded)])


def rasterize_zones(parcels: gpd.GeoDataFrame, geobox: GeoBox) -> np.ndarray:
    """Zone ids (y, x) int32 of ``parcels`` on ``geobox`` (a chunk's): 0 = no zone, k =
    row k - 1 of the table."""
    return zone_block(shapes_for(parcels, geobox), geobox)[0]


def rasterize_core(parcels: gpd.GeoDataFrame, geobox: GeoBox) -> np.ndarray:
    """The radar core (y, x) int32 of :func:`rasterize_zones` (eroded by one pixel, 8
    neighbours; computed on the padded grid, so chunk edges change nothing)."""
    return zone_block(shapes_for(parcels, geobox), geobox)[1]


def zone_layers(parcels: Parcels, geobox: GeoBox, chunk: int) -> xr.Dataset:
    """Lazy ``zone`` and ``zone_core`` (y, x) int32 of a tile, one task per ``chunk``
    square carrying only the parcels that touch it."""
    h, w = geobox.shape
    ys = tuple(min(chunk, h - i) for i in range(0, h, chunk))
    xs = tuple(min(chunk, w - i) for i in range(0, w, chunk))
    rows: list[list[dask_array.Array]] = []
    for b in blocks(chunk_edges(ys), chunk_edges(xs)):
        if b.ix == 0:
            rows.append([])
        sub = geobox[b.rows, b.cols]
        task = dask.delayed(zone_block, pure=True)(shapes_for(parcels.table, sub), sub,
                                                   dask_key_name=f"zones-{parcels.digest}-"
                                                   f"{geobox.affine.c:.0f}-"
                                                   f"{geobox.affine.f:.0f}-{b.key}")
        rows[-1].append(dask_array.from_delayed(task, (2, *b.shape), dtype=np.int32))
    both = dask_array.concatenate([dask_array.concatenate(r, axis=2) for r in rows], axis=1)
    coords = geobox.coordinates
    dims = ("y", "x")
    cy, cx = coords["y"].values, coords["x"].values
    attrs = {"n_zones": parcels.n_zones, "zones": "parcels", "parcels_digest": parcels.digest}
    return xr.Dataset({
        "zone": xr.DataArray(both[0], dims=dims, coords={"y": cy, "x": cx}, attrs=attrs),
        "zone_core": xr.DataArray(both[1], dims=dims, coords={"y": cy, "x": cx}, attrs=attrs),
    })


# --- per-zone sums -------------------------------------------------------------------------


def local_zone_sums(
    zone: np.ndarray, values: np.ndarray, squares: bool = False, db: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per (zone present in the block, date): count and sum of finite values (and of their
    squares). Zone 0 is left out. One bincount per quantity for all dates together.
    ``db=True`` sums the values as linear power (``10 ** (v / 10)``).

    Returns ``(ids (L,), count (L, T), total (L, T), squares (L, T) or None)``.
    """
    t = values.shape[0]
    flat_zone = zone.reshape(-1)
    pix = np.flatnonzero(flat_zone)  # only zone pixels are read and converted
    ids, local = np.unique(flat_zone[pix], return_inverse=True)
    n = ids.size
    sub = values.reshape(t, -1)[:, pix].astype(np.float64)
    if db:
        sub = np.exp(sub * (np.log(10.0) / 10.0))
    ok = np.isfinite(sub)
    # no boolean gather (slow): NaNs weigh 0, the count is the sum of the finite flags
    v = np.where(ok, sub, 0.0).reshape(-1)
    idx = (local[None, :] + n * np.arange(t)[:, None]).reshape(-1)  # date-major (T, L)
    size = n * t
    count = np.bincount(idx, weights=ok.reshape(-1), minlength=size).astype(np.int64)
    total = np.bincount(idx, weights=v, minlength=size)
    sq = np.bincount(idx, weights=v * v, minlength=size).reshape(t, n).T if squares else None
    return ids, count.reshape(t, n).T, total.reshape(t, n).T, sq


def _scatter(ids: np.ndarray, local: np.ndarray, n_zones: int) -> np.ndarray:
    out = np.zeros((n_zones + 1, local.shape[1]), local.dtype)
    out[ids] = local
    return out


@dataclass(frozen=True)
class ZoneDateSums:
    """Per zone and date sums of a block, mergeable by addition (``a + b``); shape
    (K + 1, T), row 0 = no zone (always 0).

    Attributes:
        pixels: pixels of the zone.
        clear: of them, pixels with a clear NDVI (not NaN).
        ndvi_sum: sum of the clear NDVI.
    """

    pixels: np.ndarray
    clear: np.ndarray
    ndvi_sum: np.ndarray

    def __add__(self, other: ZoneDateSums) -> ZoneDateSums:
        return ZoneDateSums(self.pixels + other.pixels, self.clear + other.clear,
                            self.ndvi_sum + other.ndvi_sum)

    def clear_mean(self) -> np.ndarray:
        """Mean clear NDVI (K + 1, T), NaN where the zone has no clear pixel."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.clear > 0, self.ndvi_sum / self.clear, np.nan)

    def clear_share(self) -> np.ndarray:
        """Share of the zone's pixels that are clear (K + 1, T), NaN for empty zones."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.pixels > 0, self.clear / self.pixels, np.nan)


def zone_date_sums(zone: np.ndarray, ndvi: np.ndarray, n_zones: int) -> ZoneDateSums:
    """:class:`ZoneDateSums` of one block: ``zone`` (y, x) ids 0..K, ``ndvi`` (T, y, x)."""
    t = ndvi.shape[0]
    ids, clear, total, _ = local_zone_sums(zone, ndvi)
    pixels = np.bincount(zone.reshape(-1), minlength=n_zones + 1).astype(np.int64)
    pixels[0] = 0
    return ZoneDateSums(np.repeat(pixels[:, None], t, axis=1), _scatter(ids, clear, n_zones),
                        _scatter(ids, total, n_zones))


@dataclass(frozen=True)
class ZonePowerSums:
    """Per zone and date sums of one backscatter variable over the zone's core, mergeable
    by addition; shape (K + 1, T).

    Attributes:
        power_sum: sum of the linear power of the core pixels with a value.
        looks: number of those pixels.
    """

    power_sum: np.ndarray
    looks: np.ndarray

    def __add__(self, other: ZonePowerSums) -> ZonePowerSums:
        return ZonePowerSums(self.power_sum + other.power_sum, self.looks + other.looks)

    def mean_db(self) -> np.ndarray:
        """Field mean in dB (mean in linear power, then 10 log10), NaN without looks."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.looks > 0, 10 * np.log10(self.power_sum / self.looks), np.nan)


def zone_power_sums(core: np.ndarray, db: np.ndarray, n_zones: int) -> ZonePowerSums:
    """:class:`ZonePowerSums` of one block: ``core`` (y, x) zone ids, ``db`` (T, y, x)."""
    ids, looks, total, _ = local_zone_sums(core, db, db=True)
    return ZonePowerSums(_scatter(ids, total, n_zones), _scatter(ids, looks, n_zones))


def zone_s1_sums(
    core: np.ndarray, s1: Mapping[str, np.ndarray], n_zones: int,
    variables: Sequence[str] = S1_VARIABLES,
) -> dict[str, ZonePowerSums]:
    """:func:`zone_power_sums` of each S1 variable of ``s1`` (name -> (T, y, x) dB)."""
    return {v: zone_power_sums(core, s1[v], n_zones) for v in variables if v in s1}


@dataclass(frozen=True)
class ZoneValueSums:
    """Count, sum and sum of squares of a variable per zone and date (K + 1, T), mergeable
    by addition: the mean and spatial std of a filled series over each zone."""

    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray

    def __add__(self, other: ZoneValueSums) -> ZoneValueSums:
        return ZoneValueSums(self.count + other.count, self.total + other.total,
                             self.squares + other.squares)

    def mean(self) -> np.ndarray:
        """Mean over the zone's pixels with a value, NaN where none."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / self.count, np.nan)

    def std(self) -> np.ndarray:
        """Population std over the zone's pixels with a value, NaN where none."""
        mean = self.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(self.count > 0, self.squares / self.count - mean * mean, np.nan)
        return np.sqrt(np.clip(var, 0, None))


def zone_value_sums(zone: np.ndarray, values: np.ndarray, n_zones: int) -> ZoneValueSums:
    """:class:`ZoneValueSums` of one block: ``zone`` (y, x), ``values`` (T, y, x)."""
    ids, count, total, squares = local_zone_sums(zone, values, squares=True)
    assert squares is not None
    return ZoneValueSums(_scatter(ids, count, n_zones), _scatter(ids, total, n_zones),
                         _scatter(ids, squares, n_zones))
