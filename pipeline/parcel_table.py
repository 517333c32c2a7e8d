"""Per-parcel products of a run with ``--parcels``: ``parcels.parquet`` and ``parcels.csv``.

One row per parcel and date: the mean and spatial std of ``ndvi_filled`` over the
parcel's pixels, the share of its pixels with a clear observation, and per Sentinel-1
variable the field mean in dB (mean in linear power over the parcel's radar core, see
:mod:`pipeline.zones`) with the number of pixels it averaged (``_looks``). The sums are
taken chunk by chunk from each tile's filled cube and added over chunks and tiles
(zone ids are the run's), so memory is one chunk plus the K x T tables, and a parcel
cut by a chunk or tile edge gets the sums it would get whole.

``parcels.parquet`` is GeoParquet (geometry = the parcel's outline in the run CRS, one
copy per row). ``parcels.csv`` (column types in ``parcels.csvt`` for GDAL and QGIS) has
no geometry: the outline repeated on every date
would make most of the file WKT; join it to the parquet (or the user's own parcel file)
on ``parcel_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.blocks import blocks, chunk_edges
from pipeline.storage import atomic_write, publish, staging
from pipeline.timegrid import TimeGrid
from pipeline.zones import (
    S1_VARIABLES,
    Parcels,
    ZoneDateSums,
    ZonePowerSums,
    ZoneValueSums,
    local_zone_sums,
    zone_date_sums,
    zone_s1_sums,
    zone_value_sums,
)

log = logging.getLogger(__name__)

PARQUET_NAME = "parcels.parquet"
CSV_NAME = "parcels.csv"
#: GDAL/QGIS column types of the CSV (the OGR CSV driver reads them beside the file).
CSVT_NAME = "parcels.csvt"


def _csvt_type(column: pd.Series) -> str:
    if column.name == "date":
        return '"Date"'
    if pd.api.types.is_integer_dtype(column):
        return '"Integer"'
    if pd.api.types.is_float_dtype(column):
        return '"Real"'
    return '"String"'


@dataclass
class ParcelSums:
    """Per-parcel sums of a run, mergeable with ``+`` (chunks, tiles).

    Attributes:
        filled: ``ndvi_filled`` count, sum and squares per zone and date.
        observed: pixels and clear pixels (cube ``ndvi``) per zone and date.
        s1: per S1 variable, linear power sums and looks over the radar core.
    """

    filled: ZoneValueSums
    observed: ZoneDateSums
    s1: dict[str, ZonePowerSums] = field(default_factory=dict)

    @classmethod
    def empty(cls, n_zones: int, dates: int) -> ParcelSums:
        """Sums of no pixel."""
        def z(dtype: type) -> np.ndarray:
            return np.zeros((n_zones + 1, dates), dtype)

        return cls(ZoneValueSums(z(np.int64), z(np.float64), z(np.float64)),
                   ZoneDateSums(z(np.int64), z(np.int64), z(np.float64)),
                   {v: ZonePowerSums(z(np.float64), z(np.int64)) for v in S1_VARIABLES})

    def __add__(self, other: ParcelSums) -> ParcelSums:
        return ParcelSums(self.filled + other.filled, self.observed + other.observed,
                          {k: _plus(self.s1.get(k), other.s1.get(k))
                           for k in {**self.s1, **other.s1}})


def _plus(a: ZonePowerSums | None, b: ZonePowerSums | None) -> ZonePowerSums:
    if a is None or b is None:
        out = a if b is None else b
        assert out is not None
        return out
    return a + b


def block_sums(
    zone: np.ndarray, core: np.ndarray, filled: np.ndarray, ndvi: np.ndarray,
    s1: dict[str, np.ndarray], n_zones: int,
) -> ParcelSums:
    """:class:`ParcelSums` of one block ((y, x) zone and core, (T, y, x) values)."""
    return ParcelSums(zone_value_sums(zone, filled, n_zones), zone_date_sums(zone, ndvi, n_zones),
                      zone_s1_sums(core, s1, n_zones))


def add_block(
    total: ParcelSums, zone: np.ndarray, core: np.ndarray, filled: np.ndarray,
    ndvi: np.ndarray, s1: dict[str, np.ndarray],
) -> None:
    """Add one block's sums into ``total`` in place, touching only the rows of the zones
    in the block (no K x T table per block)."""
    ids, count, sums, squares = local_zone_sums(zone, filled, squares=True)
    assert squares is not None
    total.filled.count[ids] += count
    total.filled.total[ids] += sums
    total.filled.squares[ids] += squares
    ids, clear, sums, _ = local_zone_sums(zone, ndvi)
    total.observed.clear[ids] += clear
    total.observed.ndvi_sum[ids] += sums
    present, pixels = np.unique(zone[zone > 0], return_counts=True)
    total.observed.pixels[present] += pixels[:, None]
    for var, values in s1.items():
        ids, looks, power, _ = local_zone_sums(core, values, db=True)
        total.s1[var].power_sum[ids] += power
        total.s1[var].looks[ids] += looks


def cube_sums(cube: xr.Dataset, n_zones: int) -> ParcelSums | None:
    """:class:`ParcelSums` of a filled cube with ``zone``/``zone_core``, one chunk at a
    time into one set of K x T tables; None for a cube without zones."""
    if "zone" not in cube or "ndvi_filled" not in cube:
        return None
    chunks = cube["ndvi_filled"].chunksizes
    s1_vars = [v for v in S1_VARIABLES if v in cube]
    total = ParcelSums.empty(n_zones, cube.sizes["time"])
    for b in blocks(chunk_edges(chunks["y"]), chunk_edges(chunks["x"])):
        part = cube.isel(y=b.rows, x=b.cols)
        zone = part["zone"].values
        if not zone.any():
            continue
        add_block(total, zone, part["zone_core"].values, part["ndvi_filled"].values,
                  part["ndvi"].values, {v: part[v].values for v in s1_vars})
    return total


def parcel_frame(parcels: Parcels, sums: ParcelSums, grid: TimeGrid) -> gpd.GeoDataFrame:
    """One row per parcel and date (parcel-major), geometry = the parcel's outline."""
    k, t = parcels.n_zones, grid.count
    rows = slice(1, k + 1)
    dates = [d.date() for d in grid.starts]

    def col(a: np.ndarray) -> np.ndarray:
        return a[rows].reshape(-1)

    data: dict[str, object] = {
        "parcel_id": np.repeat(parcels.table["parcel_id"].to_numpy(), t),
        "date": np.tile(np.array(dates, dtype=object), k),
        "ndvi_mean": col(sums.filled.mean()).astype(np.float32),
        "ndvi_std": col(sums.filled.std()).astype(np.float32),
        "observed_share": col(sums.observed.clear_share()).astype(np.float32),
        "n_pixels": col(sums.observed.pixels).astype(np.int32),
    }
    for var in S1_VARIABLES:
        s = sums.s1.get(var)
        data[f"{var}_db"] = (col(s.mean_db()).astype(np.float32) if s is not None
                             else np.full(k * t, np.nan, np.float32))
        data[f"{var}_looks"] = (col(s.looks).astype(np.int32) if s is not None
                                else np.zeros(k * t, np.int32))
    geometry = np.repeat(parcels.outlines.to_numpy(), t)
    return gpd.GeoDataFrame(data, geometry=geometry, crs=parcels.outlines.crs)


def write_parcel_products(
    parcels: Parcels, sums: ParcelSums, grid: TimeGrid, out: Path
) -> list[Path]:
    """Write ``parcels.parquet`` and ``parcels.csv`` into ``out`` atomically."""
    frame = parcel_frame(parcels, sums, grid)
    with staging(out) as tmp:
        frame.to_parquet(tmp / PARQUET_NAME, index=False)
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table["date"] = [d.isoformat() for d in table["date"]]
        table.to_csv(tmp / CSV_NAME, index=False, float_format="%.5g")
        (tmp / CSVT_NAME).write_text(",".join(_csvt_type(table[c]) for c in table.columns) + "\n")
        return publish(tmp, out)


def record_parcels(
    run_json: Path, parcels: Parcels | None, products: Sequence[Path] = ()
) -> None:
    """Add the parcel counts (or, without parcels, the left-out tables) to run.json."""
    if not run_json.is_file():
        return
    record = json.loads(run_json.read_text(encoding="utf-8"))
    if parcels is None:
        left = record.setdefault("products_left_out", {})
        for name in (PARQUET_NAME, CSV_NAME, CSVT_NAME):
            left[name] = "per-parcel tables are written only with --parcels"
    else:
        record["parcels"] = {**parcels.counts.as_record(), "min_pixels": parcels.min_pixels,
                             "overlaps": "the smaller parcel keeps the shared pixels",
                             "radar_core": "zone pixels whose 8 neighbours are the same zone"}
        record["parcel_products"] = sorted(p.name for p in products)
    with atomic_write(run_json) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def finish_parcels(
    out: Path, parcels: Parcels | None, tile_sums: Sequence[ParcelSums | None], grid: TimeGrid
) -> list[Path]:
    """The per-parcel products of a run from its tiles' sums, recorded in run.json; without
    parcels only the record (the tables are left out)."""
    if parcels is None:
        record_parcels(out / "run.json", None)
        return []
    total = ParcelSums.empty(parcels.n_zones, grid.count)
    for sums in tile_sums:
        if sums is not None:
            total = total + sums
    paths = write_parcel_products(parcels, total, grid, out)
    record_parcels(out / "run.json", parcels, paths)
    return paths
