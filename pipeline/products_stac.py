"""A STAC catalog of the products in ``--out``: one collection, one item per 6-day date.

Each item carries the bin as ``start_datetime``/``end_datetime`` (and its first
day as ``datetime``), the footprint in EPSG:4326, the projection extension
fields of the grid, and per stack one asset that holds that date only, with its
``raster:bands`` (nodata, data type, unit, scale and offset). The collection
also lists the whole stacks and their QGIS styles. Written self-contained with
relative links, so the folder can be moved or served as it is.

A date's asset is a one-band VRT beside the item (``stac/<date>/<stack>.vrt``)
that points at that date's band of the stack, not a copy of the band: about
1.5 kB per date and stack instead of a second copy of every stack, and GDAL (so
odc-stac, stackstac, rasterio, QGIS) reads it like the GeoTIFF it points at,
overviews included. STAC clients read one band per asset; an asset naming the
whole stack would give them its first band for every date.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
from odc.geo.geobox import GeoBox
from shapely.geometry import mapping

from pipeline.timegrid import TimeGrid

if TYPE_CHECKING:
    from pipeline.export import StackSpec

#: Projection extension 1.2: ``proj:code`` and also ``proj:epsg`` (deprecated there,
#: removed in 2.0), which stackstac up to 0.5 needs to find the CRS.
PROJ_EXT = "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
#: The products derive from Copernicus Sentinel data: its legal notice is their licence.
LICENSE_HREF = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"

_GDAL_TYPES = {"float32": "Float32", "uint8": "Byte", "int32": "Int32", "int16": "Int16",
               "uint16": "UInt16", "float64": "Float64"}


def _utc(day: str, offset_days: int = 0) -> dt.datetime:
    d = dt.date.fromisoformat(day) + dt.timedelta(days=offset_days)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def _stamp(day: str, offset_days: int = 0) -> str:
    return _utc(day, offset_days).isoformat().replace("+00:00", "Z")


def make_band_vrt(geobox: GeoBox, source: str, band: int, day: str, spec: StackSpec) -> str:
    """A one-band VRT (XML) of band ``band`` of the stack at relative path ``source``."""
    assert geobox.crs is not None
    h, w = geobox.shape
    a = geobox.affine
    root = ET.Element("VRTDataset", rasterXSize=str(w), rasterYSize=str(h))
    ET.SubElement(root, "SRS").text = geobox.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (a.c, a.a, a.b, a.f, a.d, a.e))
    vb = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[spec.dtype], band="1")
    ET.SubElement(vb, "Description").text = day
    md = ET.SubElement(vb, "Metadata")
    ET.SubElement(md, "MDI", key="DATE").text = day
    ET.SubElement(vb, "NoDataValue").text = repr(float(spec.nodata))
    src = ET.SubElement(vb, "SimpleSource")
    ET.SubElement(src, "SourceFilename", relativeToVRT="1").text = source
    ET.SubElement(src, "SourceBand").text = str(band)
    ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
    ET.SubElement(src, "DstRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
    return ET.tostring(root, encoding="unicode") + "\n"


def raster_band(spec: StackSpec) -> dict[str, Any]:
    """The ``raster:bands`` entry of one band of a stack."""
    band: dict[str, Any] = {"data_type": spec.dtype, "nodata": spec.nodata,
                            "scale": 1.0, "offset": 0.0}
    if spec.unit:
        band["unit"] = spec.unit
    return band


def write_stac(
    root: Path,
    geobox: GeoBox,
    grid: TimeGrid,
    stacks: Sequence[StackSpec],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/collection.json``, one item per date of ``grid`` and its per-date
    VRTs; return the collection path.

    ``stacks`` are the specs of GeoTIFFs in ``root.parent``.
    """
    dates, step_days = grid.iso_dates(), grid.step_days
    footprint = geobox.extent.to_crs("EPSG:4326").geom
    bbox = list(footprint.bounds)
    geom = mapping(footprint)
    assert geobox.crs is not None
    proj = {
        "proj:code": f"EPSG:{geobox.crs.epsg}" if geobox.crs.epsg else None,
        "proj:epsg": geobox.crs.epsg,
        "proj:shape": list(geobox.shape),
        "proj:transform": list(geobox.affine)[:6],
    }
    if geobox.crs.epsg is None:
        proj["proj:wkt2"] = geobox.crs.to_wkt()
    coll = pystac.Collection(
        id="s1s2-gapfill-products",
        description="Gap-free 6-day NDVI from Sentinel-1/2: filled NDVI, its standard "
        "deviation and the observed/filled flag, one item per 6-day bin. "
        "Contains modified Copernicus Sentinel data.",
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent([[_utc(dates[0]), _utc(dates[-1], step_days)]]),
        ),
        license="other",
        extra_fields=dict(extra or {}),
        stac_extensions=[PROJ_EXT, RASTER_EXT],
    )
    coll.add_link(pystac.Link("license", LICENSE_HREF, media_type="text/html",
                              title="Legal notice on the use of Copernicus Sentinel data"))
    for spec in stacks:
        fname = spec.filename
        coll.add_asset(fname.removesuffix(".tif"),
                       pystac.Asset(f"../{fname}", title=spec.description,
                                    media_type=pystac.MediaType.COG, roles=["data"]))
        qml = fname.replace(".tif", ".qml")
        if (root.parent / qml).exists():
            coll.add_asset(qml.replace(".", "_"),
                           pystac.Asset(f"../{qml}", title=f"QGIS style of {fname}",
                                        media_type="application/xml", roles=["style"]))
    for band, day in enumerate(dates, start=1):
        item = pystac.Item(
            id=day,
            geometry=geom,
            bbox=bbox,
            datetime=_utc(day),
            properties={"start_datetime": _stamp(day), "end_datetime": _stamp(day, step_days),
                        **proj},
            stac_extensions=[PROJ_EXT, RASTER_EXT],
        )
        folder = root / day
        folder.mkdir(parents=True, exist_ok=True)
        for spec in stacks:
            name = spec.filename.removesuffix(".tif")
            (folder / f"{name}.vrt").write_text(
                make_band_vrt(geobox, f"../../{spec.filename}", band, day, spec))
            # no media type: GDAL's VRT has no registered one, and clients read
            # data-role assets without one
            item.add_asset(name, pystac.Asset(
                f"./{name}.vrt", title=f"{spec.description.split(',')[0]}, {day}", roles=["data"],
                extra_fields={"raster:bands": [raster_band(spec)]}))
        coll.add_item(item)
    coll.normalize_hrefs(str(root))
    coll.make_all_asset_hrefs_relative()
    coll.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "collection.json"
