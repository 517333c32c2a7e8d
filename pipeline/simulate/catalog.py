"""STAC of the simulated archive: items in the shape CDSE serves them, the static catalog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import shapely
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from shapely.geometry import box, mapping

from pipeline.simulate.spec import (
    S2_RELATIVE_ORBIT,
    S2_TILE,
    S1Acquisition,
    S2Acquisition,
    WorldSpec,
    lonlat_bounds,
    s1_geobox,
)

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd-backscatter"
COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "s2": "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
}
#: Band facts of the two reflectance assets (name, common name, centre wavelength um).
S2_BANDS = {"B04_10m": ("B04", "red", 0.665), "B08_10m": ("B08", "nir", 0.842)}


def _grid_fields(gb: GeoBox) -> dict[str, Any]:
    t = gb.transform
    return {"proj:shape": [int(gb.shape[0]), int(gb.shape[1])],
            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]}


def _s2_footprint(spec: WorldSpec) -> dict[str, Any]:
    to_ll = Transformer.from_crs(spec.crs, 4326, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), 7)

    poly = shapely.segmentize(box(*spec.bounds), 500.0)
    return dict(mapping(shapely.transform(poly, project)))


def s2_item(acq: S2Acquisition, spec: WorldSpec, hrefs: dict[str, tuple[str, GeoBox]],
            cloud_cover: float) -> pystac.Item:
    """Sentinel-2 L2A item: B04_10m, B08_10m (uint16, offset -0.1) and SCL_20m."""
    props: dict[str, Any] = {
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cloud_cover, 2),
        "s2:processing_baseline": "05.09",
        "s2:boa_add_offset": -1000,
        "s2:mgrs_tile": S2_TILE,
        "s2:product_type": "S2MSI2A",
        "sat:relative_orbit": S2_RELATIVE_ORBIT,
        "sat:orbit_state": "descending",
        "proj:code": f"EPSG:{spec.crs}",
        "proj:epsg": spec.crs,
    }
    exts = [EXT[k] for k in ("eo", "proj", "raster", "sat", "s2")]
    item = pystac.Item(acq.item_id, _s2_footprint(spec), list(lonlat_bounds(spec)), acq.time,
                       props, stac_extensions=exts, collection=S2_COLLECTION)
    for key, (href, gb) in hrefs.items():
        extra: dict[str, Any] = {"gsd": float(gb.resolution.x), **_grid_fields(gb)}
        if key in S2_BANDS:
            name, common, wl = S2_BANDS[key]
            extra["eo:bands"] = [{"name": name, "common_name": common, "center_wavelength": wl}]
            extra["raster:bands"] = [{"data_type": "uint16", "nodata": 0, "scale": 0.0001,
                                      "offset": -0.1, "spatial_resolution": 10}]
            title = f"{name} {common}, 10 m, surface reflectance DN (BOA_ADD_OFFSET -1000)"
        else:
            extra["raster:bands"] = [{"data_type": "uint8", "nodata": 0,
                                      "spatial_resolution": 20}]
            title = "Scene classification map (SCL), 20 m"
        item.add_asset(key, pystac.Asset(href, title=title, media_type=COG_MEDIA, roles=["data"],
                                         extra_fields=extra))
    return item


def s1_item(acq: S1Acquisition, spec: WorldSpec, hrefs: dict[str, str]) -> pystac.Item:
    """Sentinel-1 GRD backscatter item: vv, vh linear gamma0 on a lat/lon grid."""
    gb = s1_geobox(spec)
    w, s, e, n = (float(v) for v in gb.boundingbox)
    props: dict[str, Any] = {
        "start_datetime": acq.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_datetime": (acq.time + dt.timedelta(seconds=25)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": acq.platform,
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "sat:orbit_state": acq.orbit_state,
        "sat:relative_orbit": acq.relative_orbit,
        "sat:absolute_orbit": acq.extra.get("absolute_orbit"),
        "sar:instrument_mode": "IW",
        "sar:product_type": "GRD",
        "sar:polarizations": ["VV", "VH"],
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "proj:code": "EPSG:4326",
        "proj:epsg": 4326,
    }
    item = pystac.Item(acq.item_id, dict(mapping(box(w, s, e, n))), [w, s, e, n], acq.time, props,
                       stac_extensions=[EXT[k] for k in ("proj", "raster", "sat", "sar")],
                       collection=S1_COLLECTION)
    for key, href in hrefs.items():
        extra: dict[str, Any] = {
            "sar:polarizations": [key.upper()], **_grid_fields(gb),
            "raster:bands": [{"data_type": "float32", "nodata": "nan", "unit": "linear power"}],
        }
        item.add_asset(key, pystac.Asset(
            href, title=f"{key.upper()} gamma0 backscatter, linear power (not dB)",
            media_type=COG_MEDIA, roles=["data"], extra_fields=extra))
    return item


def _collection(cid: str, description: str, spec: WorldSpec, items: list[pystac.Item]
                ) -> pystac.Collection:
    t0 = dt.datetime(spec.start.year, spec.start.month, spec.start.day, tzinfo=dt.UTC)
    t1 = dt.datetime(spec.end.year, spec.end.month, spec.end.day, 23, 59, 59, tzinfo=dt.UTC)
    extent = pystac.Extent(pystac.SpatialExtent([list(lonlat_bounds(spec))]),
                           pystac.TemporalExtent([[t0, t1]]))
    coll = pystac.Collection(cid, description, extent, license="MIT",
                             stac_extensions=sorted({e for i in items for e in i.stac_extensions}))
    for item in items:
        coll.add_item(item)
    return coll


def write_catalog(root: Path, spec: WorldSpec, s2_items: list[pystac.Item],
                  s1_items: list[pystac.Item]) -> Path:
    """Save the self-contained static catalog under ``root`` (asset hrefs made relative)."""
    cat = pystac.Catalog(
        "demo", f"Simulated Sentinel-1/2 archive (seed {spec.seed}, EPSG:{spec.crs} bounds "
        f"{list(spec.bounds)}); ground truth in truth/.", title="pipeline demo archive")
    cat.add_child(_collection(S2_COLLECTION, "Simulated Sentinel-2 L2A (B04, B08, SCL) as COGs",
                              spec, s2_items))
    cat.add_child(_collection(S1_COLLECTION, "Simulated Sentinel-1 IW GRD backscatter "
                              "(VV, VH linear gamma0) on a geographic grid", spec, s1_items))
    # Trailing slash: pystac would take a folder named like "x.tmp-1" for a file.
    cat.normalize_hrefs(root.as_posix().rstrip("/") + "/")
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"
