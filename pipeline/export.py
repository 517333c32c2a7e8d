"""Products in ``--out``: COG stacks with dates on the bands, QGIS styles, run record.

Every file is written into a staging folder inside ``--out`` and moved into place
once complete (:func:`pipeline.storage.staging` and :func:`~pipeline.storage.publish`),
so a crash never leaves a half-written product where a user (or QGIS) would open it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from odc.geo.geobox import GeoBox

from pipeline.blocks import blocks, chunk_edges
from pipeline.storage import publish, staging
from pipeline.timegrid import TimeGrid

log = logging.getLogger(__name__)

FLOAT_NODATA = -9999.0
FLAG_NODATA = 255


@dataclass(frozen=True)
class StackSpec:
    """How one cube variable becomes a GeoTIFF stack.

    Attributes:
        variable: cube variable, dims (time, y, x).
        filename: output file name.
        dtype: GeoTIFF data type.
        nodata: nodata value written where the variable is NaN.
        style: QML style kind (``ndvi``, ``std``, ``flag``) or None.
        description: dataset-level description tag.
        unit: UDUNITS unit of the values (``"1"`` = dimensionless), ``""`` for flags.
    """

    variable: str
    filename: str
    dtype: str
    nodata: float
    style: str | None
    description: str
    unit: str = "1"


PRODUCTS: tuple[StackSpec, ...] = (
    StackSpec(
        "ndvi_filled",
        "ndvi_filled.tif",
        "float32",
        FLOAT_NODATA,
        "ndvi",
        "gap-filled NDVI, one band per 6-day bin",
    ),
    StackSpec(
        "ndvi_std",
        "ndvi_std.tif",
        "float32",
        FLOAT_NODATA,
        "std",
        "predicted standard deviation of NDVI",
    ),
    StackSpec(
        "observed",
        "observed.tif",
        "uint8",
        FLAG_NODATA,
        "flag",
        "1 = clear Sentinel-2 observation in the bin, 0 = filled",
        "",
    ),
    StackSpec(
        "ndvi",
        "ndvi_observed.tif",
        "float32",
        FLOAT_NODATA,
        "ndvi",
        "cloud-masked NDVI, mean of clear observations per bin (gaps = nodata)",
    ),
)


def write_stack(
    da: xr.DataArray,
    path: Path,
    geobox: GeoBox,
    dates: Sequence[str],
    spec: StackSpec,
    tags: dict[str, str] | None = None,
) -> None:
    """Write a (time, y, x) array as a COG: one band per date, band description = ISO date.

    Reads the (dask-backed) array one spatial chunk at a time, so memory stays at
    one chunk's time series whatever the AOI size.
    """
    assert geobox.crs is not None
    tmp = path.with_name(path.name + ".gtiff")
    h, w = geobox.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": len(dates),
        "dtype": spec.dtype,
        "crs": geobox.crs.to_wkt(),
        "transform": geobox.affine,
        "nodata": spec.nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "BIGTIFF": "IF_SAFER",
    }
    chunks = da.chunksizes if da.chunks else {"y": (h,), "x": (w,)}
    with rasterio.open(tmp, "w", **profile) as dst:
        for i, d in enumerate(dates, start=1):
            dst.set_band_description(i, d)
            dst.update_tags(i, DATE=d)
        dst.update_tags(DESCRIPTION=spec.description, TIME_DIMENSION="band", **(tags or {}))
        for b in blocks(chunk_edges(chunks["y"]), chunk_edges(chunks["x"])):
            block = da.isel(y=b.rows, x=b.cols).values
            if np.issubdtype(block.dtype, np.floating):
                block = np.where(np.isfinite(block), block, spec.nodata)
            window = rasterio.windows.Window(
                b.cols.start, b.rows.start, block.shape[2], block.shape[1]
            )
            dst.write(block.astype(spec.dtype), window=window)
    rasterio.shutil.copy(
        tmp,
        path,
        driver="COG",
        compress="DEFLATE",
        predictor="YES",
        blocksize=256,
        overview_resampling="NEAREST" if spec.dtype == "uint8" else "AVERAGE",
        BIGTIFF="IF_SAFER",
        # tiles compressed on every core (the same bytes as on one); GDAL_NUM_THREADS
        # in the environment sets another count
        num_threads=os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS"),
    )
    tmp.unlink()


def _ramp_items(stops: Sequence[tuple[float, str, str]]) -> str:
    return "\n".join(
        f'            <item alpha="255" value="{v}" label="{lab}" color="{c}"/>'
        for v, c, lab in stops
    )


_STYLES: dict[str, tuple[float, float, list[tuple[float, str, str]]]] = {
    "ndvi": (
        -0.2,
        1.0,
        [
            (-0.2, "#0c2c84", "-0.2 water"),
            (0.0, "#a6611a", "0.0 bare"),
            (0.2, "#dfc27d", "0.2"),
            (0.4, "#f6e8c3", "0.4"),
            (0.6, "#a6d96a", "0.6"),
            (0.8, "#1a9641", "0.8"),
            (1.0, "#00441b", "1.0 dense"),
        ],
    ),
    "std": (
        0.0,
        0.2,
        [
            (0.0, "#ffffff", "0.00"),
            (0.05, "#fdd49e", "0.05"),
            (0.1, "#fc8d59", "0.10"),
            (0.2, "#b30000", "0.20"),
        ],
    ),
}


def make_renderer(kind: str, band: int = 1) -> str:
    """The ``<rasterrenderer>`` element of a style for one band (QGIS XML)."""
    if kind == "flag":
        renderer = f"""    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1">
      <colorPalette>
        <paletteEntry value="0" color="#fdae61" alpha="255" label="filled"/>
        <paletteEntry value="1" color="#2b83ba" alpha="255" label="observed"/>
      </colorPalette>
    </rasterrenderer>"""
    else:
        lo, hi, stops = _STYLES[kind]
        renderer = f"""    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1"
        alphaBand="-1" classificationMin="{lo}" classificationMax="{hi}">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0"
            minimumValue="{lo}" maximumValue="{hi}">
{_ramp_items(stops)}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>"""
    return renderer


def make_qml(kind: str, band: int = 1) -> str:
    """A QGIS raster style (``.qml``): NDVI or std colour ramp, or the observed flag palette."""
    renderer = make_renderer(kind, band)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="AllStyleCategories">
  <pipe>
{renderer}
    <brightnesscontrast brightness="0" contrast="0"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def write_json(obj: dict[str, Any], path: Path) -> None:
    """Write JSON (UTF-8, indented)."""
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")


def write_products(
    ds: xr.Dataset,
    geobox: GeoBox,
    grid: TimeGrid,
    out: Path,
    record: dict[str, Any],
    specs: Sequence[StackSpec] = PRODUCTS,
) -> list[Path]:
    """Write every product present in ``ds`` plus styles and ``run.json``; return the paths.

    A stack whose values are all NaN (``ndvi_std`` of a filler without
    uncertainty) is left out and noted in the record.
    """
    dates = grid.iso_dates()
    written: list[Path] = []
    with staging(out) as tmp:
        for spec in specs:
            if spec.variable not in ds:
                continue
            da = ds[spec.variable]
            if spec.variable == "observed" and "aoi_mask" in ds:
                # 0 means "filled"; a cell outside the AOI was neither observed nor filled
                da = da.where(ds["aoi_mask"] > 0, spec.nodata).astype(spec.dtype)
            if spec.variable == "ndvi_std" and not bool(da.notnull().any().compute()):
                record.setdefault("products_left_out", {})[spec.filename] = (
                    "the filler gives no uncertainty"
                )
                continue
            write_stack(
                da,
                tmp / spec.filename,
                geobox,
                dates,
                spec,
                tags={"SOFTWARE": f"s1s2-gapfill {record.get('version', '')}"},
            )
            if spec.style:
                (tmp / spec.filename.replace(".tif", ".qml")).write_text(make_qml(spec.style))
        record["products"] = sorted(p.name for p in tmp.iterdir() if p.suffix == ".tif")
        write_extras(ds, geobox, grid, tmp, record, specs)
        write_json(record, tmp / "run.json")
        written = publish(tmp, out)
    return written


def write_extras(
    ds: xr.Dataset,
    geobox: GeoBox,
    grid: TimeGrid,
    tmp: Path,
    record: dict[str, Any],
    specs: Sequence[StackSpec],
) -> None:
    """QGIS project with dates on the temporal controller, STAC catalog, the CF
    netCDF of the filled NDVI, quicklook PNG.

    Each is a convenience on top of the stacks: a failure is logged and recorded
    in ``record["products_left_out"]``, never fatal.
    """
    from pipeline.netcdf import NETCDF_NAME, write_netcdf
    from pipeline.products_stac import write_stac
    from pipeline.qgis_project import make_project
    from pipeline.quicklook import write_quicklook

    written = [s for s in specs if (tmp / s.filename).exists()]
    left_out = record.setdefault("products_left_out", {})
    try:
        stacks = [(s.filename, s.filename.removesuffix(".tif"), s.style or "ndvi")
                  for s in written]
        (tmp / "products.qgs").write_text(
            make_project(geobox, grid, stacks, make_renderer), encoding="utf-8")
    except Exception as exc:
        log.warning("QGIS project not written: %s", exc)
        left_out["products.qgs"] = f"{type(exc).__name__}: {exc}"
    try:
        write_stac(tmp / "stac", geobox, grid, written,
                   extra={"s1s2:fill_method": record.get("fill_method")})
    except Exception as exc:
        log.warning("STAC catalog not written: %s", exc)
        left_out["stac/"] = f"{type(exc).__name__}: {exc}"
    if any(s.variable == "ndvi_filled" for s in written):
        try:
            write_netcdf(tmp, grid, written, {
                "title": "Gap-free 6-day NDVI from Sentinel-1/2",
                "source": f"s1s2-gapfill {record.get('version', '')}, "
                          f"fill method {record.get('fill_method')}",
                "comment": "Contains modified Copernicus Sentinel data",
            })
        except Exception as exc:
            log.warning("%s not written: %s", NETCDF_NAME, exc)
            left_out[NETCDF_NAME] = f"{type(exc).__name__}: {exc}"
    if {"ndvi_filled", "observed", "ndvi"} <= set(ds.data_vars):
        try:
            record["quicklook_date"] = write_quicklook(ds, grid.iso_dates(), tmp / "quicklook.png")
        except Exception as exc:
            log.warning("quicklook not written: %s", exc)
            left_out["quicklook.png"] = f"{type(exc).__name__}: {exc}"
