"""Real STAC items (``tests/data/stac-items``) with synthetic pixels behind their assets.

The items' JSON stays as the catalogs serve it; only the hrefs of the assets the
pipeline reads are pointed at small rasters written here, on the item's own grid
(its ``proj:code``/``proj:epsg`` and the origin of its ``proj:transform``), with
digital numbers chosen by the test, so NDVI and dB can be computed by hand.
CDSE hrefs stay ``s3://eodata/...``; their ``alternate.https`` href is what points
at the loopback server (the run reads them with ``--eodata https``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box, mapping, shape
from shapely.ops import transform as shp_transform

DATA = Path(__file__).resolve().parent / "data" / "stac-items"
CLEAR = (4, 5, 6)


def load_items(name: str) -> list[dict[str, Any]]:
    """The items of one shipped file (a FeatureCollection or a list), as fresh dicts."""
    doc = json.loads((DATA / name).read_text())
    return copy.deepcopy(doc["features"] if isinstance(doc, dict) else doc)


def asset_crs(item: dict[str, Any], key: str) -> str:
    """The asset's CRS as ``EPSG:n`` from ``proj:code`` or ``proj:epsg`` (asset, then item)."""
    for where in (item["assets"][key], item["properties"]):
        if where.get("proj:code"):
            return str(where["proj:code"])
        if where.get("proj:epsg"):
            return f"EPSG:{where['proj:epsg']}"
    raise KeyError(f"{item['id']}: no CRS for asset {key}")


def grid_origin(item: dict[str, Any], key: str) -> tuple[float, float]:
    """Upper-left corner of the item's grid (``proj:transform``; else 0, 0)."""
    tr = item["assets"][key].get("proj:transform") or item["properties"].get("proj:transform")
    return (float(tr[2]), float(tr[5])) if tr else (0.0, 0.0)


@dataclass(frozen=True)
class S2Pixels:
    """Synthetic Sentinel-2 pixels: reflectance x 1e4 (no offset) and SCL.

    Attributes:
        crs: CRS of the rasters.
        x0: left edge (m); y0: top edge (m) of the 10 m rasters.
        red, nir: (n, n) reflectance x 1e4 at 10 m.
        scl: (n/2, n/2) scene classes at 20 m.
    """

    crs: str
    x0: float
    y0: float
    red: np.ndarray
    nir: np.ndarray
    scl: np.ndarray

    def aoi_ring(self, margin_px: int = 8) -> list[list[float]]:
        """Closed lon/lat ring of a square ``margin_px`` pixels inside the rasters."""
        n = self.red.shape[0]
        x0, x1 = self.x0 + margin_px * 10, self.x0 + (n - margin_px) * 10
        y1, y0 = self.y0 - margin_px * 10, self.y0 - (n - margin_px) * 10
        t = Transformer.from_crs(self.crs, 4326, always_xy=True)
        return [list(t.transform(x, y)) for x, y in
                ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]

    def ndvi_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """NDVI by hand at points of the rasters' CRS; NaN where SCL is not clear."""
        col = np.floor((x - self.x0) / 10).astype(int)
        row = np.floor((self.y0 - y) / 10).astype(int)
        red = self.red[row, col].astype(np.float64) / 1e4
        nir = self.nir[row, col].astype(np.float64) / 1e4
        ndvi = (nir - red) / (nir + red)
        return np.where(np.isin(self.scl[row // 2, col // 2], CLEAR), ndvi, np.nan)


def make_s2_pixels(crs: str, origin: tuple[float, float], lon: float, lat: float,
                   seed: int, n: int = 40) -> S2Pixels:
    """Random but plausible pixels around (lon, lat), on the 20 m lattice of ``origin``."""
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    ox, oy = origin
    x0 = ox + np.floor((x - ox) / 20) * 20 - n // 2 * 10
    y0 = oy + np.floor((y - oy) / 20) * 20 + n // 2 * 10
    rng = np.random.default_rng(seed)
    red = rng.integers(150, 900, (n, n))
    nir = rng.integers(1500, 4500, (n, n))
    scl = rng.choice(np.array([4, 5, 9, 3], np.uint8), p=[0.6, 0.2, 0.15, 0.05],
                     size=(n // 2, n // 2))
    return S2Pixels(crs, float(x0), float(y0), red, nir, scl)


def _write(path: Path, data: np.ndarray, crs: str, x0: float, y0: float, res: float,
           nodata: float | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    jp2 = path.suffix == ".jp2"
    opts: dict[str, Any] = {"QUALITY": 100, "REVERSIBLE": "YES"} if jp2 else {}
    with rasterio.open(path, "w", driver="JP2OpenJPEG" if jp2 else "GTiff",
                       width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                       crs=crs, transform=from_origin(x0, y0, res, res), nodata=nodata,
                       **opts) as dst:
        dst.write(data, 1)
    return path


def write_s2_rasters(folder: Path, px: S2Pixels, dn_offset: int, ext: str = "tif"
                     ) -> dict[str, Path]:
    """B04, B08 (uint16, ``dn_offset`` added to the DNs) and SCL files under ``folder``."""
    return {
        "B04": _write(folder / f"B04.{ext}", (px.red + dn_offset).astype(np.uint16), px.crs,
                      px.x0, px.y0, 10, 0),
        "B08": _write(folder / f"B08.{ext}", (px.nir + dn_offset).astype(np.uint16), px.crs,
                      px.x0, px.y0, 10, 0),
        "SCL": _write(folder / f"SCL.{ext}", px.scl.astype(np.uint8), px.crs, px.x0, px.y0,
                      20, 0),
    }


def point_assets(item: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    """The item with the given assets pointing at ``urls`` (in place; returned).

    An ``s3://eodata`` href is kept and its ``alternate.https`` href replaced, as the
    CDSE STAC serves them; any other href is replaced.
    """
    for key, url in urls.items():
        asset = item["assets"][key]
        if str(asset["href"]).startswith("s3://eodata/"):
            asset["alternate"]["https"]["href"] = url
        else:
            asset["href"] = url
    return item


def inside_point(item: dict[str, Any]) -> tuple[float, float]:
    """A lon/lat point well inside the item's footprint."""
    p = shape(item["geometry"]).representative_point()
    return float(p.x), float(p.y)


def write_s1_rasters(folder: Path, crs: str, x0: float, y0: float, n: int, vv: float,
                     vh: float, nodata_block: tuple[slice, slice]) -> dict[str, Path]:
    """Uniform linear gamma0 VV/VH (float32, 10 m) with a block of nodata -32768."""
    out = {}
    for pol, value in (("vv", vv), ("vh", vh)):
        data = np.full((n, n), value, np.float32)
        data[nodata_block] = -32768
        out[pol] = _write(folder / f"{pol}.tif", data, crs, x0, y0, 10, -32768)
    return out


def synthetic_s2_item(iid: str, when: str, px: S2Pixels, baseline: str) -> dict[str, Any]:
    """A minimal STAC 1.0 Sentinel-2 L2A item over ``px`` (hrefs set by :func:`point_assets`)."""
    n = px.red.shape[0]
    to_ll = Transformer.from_crs(px.crs, 4326, always_xy=True).transform
    foot = shp_transform(to_ll, box(px.x0, px.y0 - n * 10, px.x0 + n * 10, px.y0))
    epsg = int(px.crs.split(":")[1])
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": "sentinel-2-l2a",
        "geometry": mapping(foot), "bbox": list(foot.bounds), "links": [],
        "properties": {"datetime": when, "s2:processing_baseline": baseline,
                       "proj:epsg": epsg},
        "assets": {k: {"href": "", "roles": ["data"]} for k in ("B04", "B08", "SCL")},
    }
