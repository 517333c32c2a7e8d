"""Splitting a large AOI into independent, resumable tiles, and mosaicking their products.

Tiles are cells of a fixed lattice in the run's CRS (multiples of the tile size
from the CRS origin), so two runs over overlapping AOIs, or a rerun after a
crash, cut the same tiles. Each tile is a complete unit of work: its own cube,
its own products, its own completion marker.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
import xarray as xr
from odc.geo.geobox import GeoBox
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pipeline.export import PRODUCTS, make_qml, write_extras, write_json
from pipeline.storage import atomic_write
from pipeline.timegrid import TimeGrid

#: Default tile edge in metres (1000 pixels at 10 m).
DEFAULT_TILE_M = 10_000


@dataclass(frozen=True)
class Tile:
    """One tile of the run grid.

    Attributes:
        id: stable name from the lattice corner in metres, e.g. ``E0670000N06180000``.
        geobox: the tile's part of the run grid.
    """

    id: str
    geobox: GeoBox


def make_tiles(run_box: GeoBox, aoi_in_crs: BaseGeometry, tile_m: float) -> list[Tile]:
    """Tiles of ``run_box`` on a ``tile_m`` lattice that intersect the AOI."""
    res = abs(run_box.resolution.x)
    x0, y1 = run_box.affine.c, run_box.affine.f
    x1 = x0 + run_box.shape[1] * res
    y0 = y1 - run_box.shape[0] * res
    assert run_box.crs is not None
    tiles = []
    for j in range(math.floor(y0 / tile_m), math.ceil(y1 / tile_m)):
        for i in range(math.floor(x0 / tile_m), math.ceil(x1 / tile_m)):
            cell = (
                max(x0, i * tile_m),
                max(y0, j * tile_m),
                min(x1, (i + 1) * tile_m),
                min(y1, (j + 1) * tile_m),
            )
            if cell[2] <= cell[0] or cell[3] <= cell[1]:
                continue
            if not aoi_in_crs.intersects(box(*cell)):
                continue
            gb = GeoBox.from_bbox(cell, run_box.crs, resolution=res, tight=True)
            tid = f"E{round(i * tile_m):07d}N{round(j * tile_m):08d}"
            tiles.append(Tile(tid, gb))
    return tiles


def write_vrt(sources: Sequence[Path], path: Path) -> None:
    """A VRT mosaic of same-CRS, same-resolution, same-band-count GeoTIFFs."""
    metas = []
    for src_path in sources:
        with rasterio.open(src_path) as src:
            metas.append(
                (
                    src_path,
                    src.bounds,
                    src.width,
                    src.height,
                    src.count,
                    src.dtypes[0],
                    src.nodata,
                    src.descriptions,
                    src.crs,
                    src.res,
                    src.tags(),
                )
            )
    xmin = min(m[1].left for m in metas)
    ymax = max(m[1].top for m in metas)
    xmax = max(m[1].right for m in metas)
    ymin = min(m[1].bottom for m in metas)
    rx, ry = metas[0][9]
    width = round((xmax - xmin) / rx)
    height = round((ymax - ymin) / ry)
    dtype_map = {
        "float32": "Float32",
        "uint8": "Byte",
        "int16": "Int16",
        "uint16": "UInt16",
        "float64": "Float64",
        "int32": "Int32",
    }
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = metas[0][8].to_wkt()
    ET.SubElement(root, "GeoTransform").text = f"{xmin}, {rx}, 0, {ymax}, 0, {-ry}"
    md = ET.SubElement(root, "Metadata")
    for k, v in metas[0][10].items():
        ET.SubElement(md, "MDI", key=k).text = str(v)
    count, dtype, nodata, descriptions = metas[0][4], metas[0][5], metas[0][6], metas[0][7]
    for b in range(1, count + 1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=dtype_map[dtype], band=str(b))
        if descriptions[b - 1]:
            ET.SubElement(band, "Description").text = descriptions[b - 1]
            bmd = ET.SubElement(band, "Metadata")
            ET.SubElement(bmd, "MDI", key="DATE").text = descriptions[b - 1]
        if nodata is not None:
            ET.SubElement(band, "NoDataValue").text = repr(float(nodata))
        for src_path, bounds, w, h, *_ in metas:
            ss = ET.SubElement(band, "ComplexSource")
            ET.SubElement(ss, "SourceFilename", relativeToVRT="0").text = str(src_path.resolve())
            ET.SubElement(ss, "SourceBand").text = str(b)
            ET.SubElement(ss, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(
                ss,
                "DstRect",
                xOff=str(round((bounds.left - xmin) / rx)),
                yOff=str(round((ymax - bounds.top) / ry)),
                xSize=str(w),
                ySize=str(h),
            )
            if nodata is not None:
                ET.SubElement(ss, "NODATA").text = repr(float(nodata))
    path.write_text(ET.tostring(root, encoding="unicode"))


def mosaic_cog(sources: Sequence[Path], out: Path, resampling: str = "AVERAGE") -> None:
    """Mosaic tile products into one COG (through a VRT), written atomically."""
    vrt = out.with_name(out.name + ".vrt")
    write_vrt(sources, vrt)
    try:
        with atomic_write(out) as tmp:
            rasterio.shutil.copy(
                vrt,
                tmp,
                driver="COG",
                compress="DEFLATE",
                predictor="YES",
                blocksize=256,
                overview_resampling=resampling,
                BIGTIFF="IF_SAFER",
            )
    finally:
        vrt.unlink(missing_ok=True)


def mosaic_products(
    out: Path, tile_dirs: list[Path], record: dict[str, Any], geobox: GeoBox, grid: TimeGrid
) -> list[Path]:
    """Mosaic every product the tiles share into ``out``, with styles, the QGIS project,
    the STAC catalog and run.json (the quicklook stays per tile)."""
    written = []
    for spec in PRODUCTS:
        sources = [d / spec.filename for d in tile_dirs]
        if not all(p.exists() for p in sources):
            continue
        target = out / spec.filename
        mosaic_cog(sources, target, resampling="NEAREST" if spec.dtype == "uint8" else "AVERAGE")
        written.append(target)
        if spec.style:
            qml = out / spec.filename.replace(".tif", ".qml")
            with atomic_write(qml) as tmp:
                tmp.write_text(make_qml(spec.style))
            written.append(qml)
    record["products"] = sorted(p.name for p in written if p.suffix == ".tif")
    write_extras(xr.Dataset(), geobox, grid, out, record, PRODUCTS)
    written += [p for p in (out / "products.qgs", out / "stac") if p.exists()]
    with atomic_write(out / "run.json") as tmp:
        write_json(record, tmp)
    written.append(out / "run.json")
    return sorted(written)
