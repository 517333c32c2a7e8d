"""Generator of tiny STAC archives with known values, for stage tests.

Sentinel-2 items on a 10 m UTM grid (B04/B08 uint16 with the baseline-04.00
offset, SCL at 20 m) and Sentinel-1 items on a lat/lon grid (linear power),
so every ingestion step (offset, mask, NDVI, reprojection, binning, dB) has an
exactly known answer.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

CRS = 32634
X0, Y0 = 672000.0, 6182000.0  # upper-left corner of the tiny S2 tile
SIZE = 40  # pixels at 10 m -> 400 m square


def _write(path: Path, data: np.ndarray, crs: str, transform: object, nodata: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as dst:
        dst.write(data, 1)


def tile_lonlat_bounds(margin_m: float = 0.0) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the S2 tile in degrees."""
    t = Transformer.from_crs(CRS, 4326, always_xy=True)
    xs = [X0 - margin_m, X0 + SIZE * 10 + margin_m]
    ys = [Y0 + margin_m, Y0 - SIZE * 10 - margin_m]
    pts = [t.transform(x, y) for x in xs for y in ys]
    return (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts),
            max(p[1] for p in pts))


def s2_item(root: Path, when: dt.datetime, red: float, nir: float, cloud_rows: int,
            offset_dn: int = -1000, declare_raster: bool = True,
            declared_offset_dn: int | None = None) -> pystac.Item:
    """One S2 scene: uniform reflectances, the top ``cloud_rows`` 10 m rows SCL-cloudy (9).

    The DNs carry ``offset_dn``; ``raster:bands`` declares ``declared_offset_dn``
    (default: the same; another value constructs wrong metadata).
    """
    declared = offset_dn if declared_offset_dn is None else declared_offset_dn
    iid = f"S2A_MSIL2A_{when:%Y%m%dT%H%M%S}_N0509_R079_T34UFG"
    d = root / "s2" / iid
    dn = lambda r: np.full((SIZE, SIZE), round((r - offset_dn / 1e4) * 1e4), np.uint16)  # noqa: E731
    _write(d / "B04.tif", dn(red), f"EPSG:{CRS}", from_origin(X0, Y0, 10, 10), 0)
    _write(d / "B08.tif", dn(nir), f"EPSG:{CRS}", from_origin(X0, Y0, 10, 10), 0)
    scl = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)
    scl[: cloud_rows // 2] = 9
    _write(d / "SCL.tif", scl, f"EPSG:{CRS}", from_origin(X0, Y0, 20, 20), 0)
    w, s, e, n = tile_lonlat_bounds()
    item = pystac.Item(iid, mapping(box(w, s, e, n)), [w, s, e, n], when,
                       {"platform": "sentinel-2a", "s2:processing_baseline": "05.09"},
                       collection="sentinel-2-l2a")
    for key, fname in (("B04_10m", "B04.tif"), ("B08_10m", "B08.tif"), ("SCL_20m", "SCL.tif")):
        extra = {}
        if declare_raster and key != "SCL_20m":
            extra["raster:bands"] = [{"data_type": "uint16", "nodata": 0, "scale": 0.0001,
                                      "offset": declared / 1e4}]
        item.add_asset(key, pystac.Asset(str(d / fname), media_type=pystac.MediaType.COG,
                                         roles=["data"], extra_fields=extra))
    return item


def s1_item(root: Path, when: dt.datetime, direction: str, vv: float, vh: float) -> pystac.Item:
    """One S1 scene on a lat/lon grid, uniform linear backscatter."""
    iid = f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_{direction[:3]}"
    d = root / "s1" / iid
    w, s, e, n = tile_lonlat_bounds(margin_m=60)
    rx, ry = 0.00016, 0.0001
    width, height = int((e - w) / rx) + 1, int((n - s) / ry) + 1
    tr = from_origin(w, n, rx, ry)
    _write(d / "vv.tif", np.full((height, width), vv, np.float32), "EPSG:4326", tr, np.nan)
    _write(d / "vh.tif", np.full((height, width), vh, np.float32), "EPSG:4326", tr, np.nan)
    item = pystac.Item(iid, mapping(box(w, s, e, n)), [w, s, e, n], when,
                       {"sat:orbit_state": direction, "sat:relative_orbit": 80},
                       collection="sentinel-1-grd-backscatter")
    for pol in ("vv", "vh"):
        item.add_asset(pol, pystac.Asset(str(d / f"{pol}.tif"), roles=["data"]))
    return item


def write_catalog(root: Path, s2: list[pystac.Item], s1: list[pystac.Item],
                  s1_collection: str = "sentinel-1-grd-backscatter") -> Path:
    """Static catalog of the two collections, ``root/catalog.json`` (returned), so the
    scenes' files under ``root`` lie inside the catalog's folder.

    ``s1_collection``: id of the Sentinel-1 collection (``sentinel-1-grd`` for products).
    """
    cat = pystac.Catalog("test", "tiny test archive")
    for cid, items in (("sentinel-2-l2a", s2), (s1_collection, s1)):
        ext = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                            pystac.TemporalExtent([[None, None]]))
        col = pystac.Collection(cid, cid, ext)
        for it in items:
            col.add_item(it)
        cat.add_child(col)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_absolute()
    cat.save(catalog_type=pystac.CatalogType.ABSOLUTE_PUBLISHED)
    return root / "catalog.json"
