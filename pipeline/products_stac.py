"""A STAC catalog of the products in ``--out``: one collection, one item per 6-day date.

Each item carries the bin as ``start_datetime``/``end_datetime`` (and its first
day as ``datetime``), the footprint in EPSG:4326, the projection extension
fields of the grid, and one asset per stack pointing at the GeoTIFF with the
band number of that date (``s1s2:band``). The collection also lists the whole
stacks and their QGIS styles. Written self-contained with relative links, so
the folder can be moved or served as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac
from odc.geo.geobox import GeoBox
from shapely.geometry import mapping

from pipeline.timegrid import TimeGrid

PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


def _utc(day: str, offset_days: int = 0) -> dt.datetime:
    d = dt.date.fromisoformat(day) + dt.timedelta(days=offset_days)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def write_stac(
    root: Path,
    geobox: GeoBox,
    grid: TimeGrid,
    stacks: Sequence[tuple[str, str]],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/collection.json`` and one item per date of ``grid``; return the
    collection path.

    ``stacks`` are ``(file name, description)`` of GeoTIFFs in ``root.parent``.
    """
    dates, step_days = grid.iso_dates(), grid.step_days
    footprint = geobox.extent.to_crs("EPSG:4326").geom
    bbox = list(footprint.bounds)
    geom = mapping(footprint)
    assert geobox.crs is not None
    proj = {
        "proj:code": f"EPSG:{geobox.crs.epsg}" if geobox.crs.epsg else None,
        "proj:shape": list(geobox.shape),
        "proj:transform": list(geobox.affine)[:6],
    }
    coll = pystac.Collection(
        id="s1s2-gapfill-products",
        description="Gap-free 6-day NDVI from Sentinel-1/2: filled NDVI, its standard "
        "deviation and the observed/filled flag, one band per 6-day bin.",
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent([[_utc(dates[0]), _utc(dates[-1], step_days)]]),
        ),
        license="proprietary",
        extra_fields=dict(extra or {}),
    )
    for fname, desc in stacks:
        kind = pystac.MediaType.COG
        coll.add_asset(fname.removesuffix(".tif"),
                       pystac.Asset(f"../{fname}", title=desc, media_type=kind, roles=["data"]))
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
            properties={
                "start_datetime": _utc(day).isoformat().replace("+00:00", "Z"),
                "end_datetime": _utc(day, step_days).isoformat().replace("+00:00", "Z"),
                **proj,
            },
            stac_extensions=[PROJ_EXT],
        )
        for fname, desc in stacks:
            item.add_asset(
                fname.removesuffix(".tif"),
                pystac.Asset(f"../../{fname}", title=f"{desc}, {day}",
                             media_type=pystac.MediaType.COG, roles=["data"],
                             extra_fields={"s1s2:band": band}),
            )
        coll.add_item(item)
    coll.normalize_hrefs(str(root))
    coll.make_all_asset_hrefs_relative()
    coll.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "collection.json"
