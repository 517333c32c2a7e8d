"""Area of interest: reading, validation and the run's target grid.

An AOI file is read once at the entry point; everything after works on the
validated :class:`AOI` value and the immutable :class:`odc.geo.geobox.GeoBox`
derived from it (UTM zone of the AOI centroid, 10 m pixels whose edges sit on
multiples of 10 m, as on the Sentinel-2 grid).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shp_transform
from shapely.validation import explain_validity

from pipeline.errors import InputError

#: Default upper bound for an AOI handled in one run (km²); larger areas go through tiling.
DEFAULT_MAX_AREA_KM2 = 400.0
#: Output pixel size in metres (the Sentinel-2 10 m grid).
RESOLUTION_M = 10


@dataclass(frozen=True)
class AOI:
    """A validated area of interest.

    Attributes:
        geometry: Polygon or MultiPolygon in EPSG:4326 (lon, lat).
        name: short label (file stem) used in product names.
    """

    geometry: BaseGeometry
    name: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        b = self.geometry.bounds
        return (b[0], b[1], b[2], b[3])


def utm_crs_for(lon: float, lat: float) -> CRS:
    """UTM zone (WGS 84) that contains the point."""
    zone = min(int((lon + 180.0) // 6) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _polygons_from_geojson(obj: Any, where: str) -> list[BaseGeometry]:
    if not isinstance(obj, dict) or "type" not in obj:
        raise InputError(f"--aoi: {where} is not a GeoJSON object (no 'type' member)")
    kind = obj["type"]
    geoms: list[Any] = []
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in obj.get("features") or [] if isinstance(f, dict)]
    elif kind == "Feature":
        geoms = [obj.get("geometry")]
    elif kind == "GeometryCollection":
        geoms = list(obj.get("geometries") or [])
    else:
        geoms = [obj]
    found: list[str] = []
    polys: list[BaseGeometry] = []
    for g in geoms:
        if not g:
            continue
        found.append(str(g.get("type")))
        if g.get("type") in ("Polygon", "MultiPolygon"):
            try:
                polys.append(shape(g))
            except (ValueError, TypeError, AttributeError, IndexError) as exc:
                raise InputError(f"--aoi: {where} has a malformed {g.get('type')}: {exc}") from None
    if not polys:
        seen = ", ".join(sorted(set(found))) or "no geometry at all"
        raise InputError(
            f"--aoi: {where} contains no Polygon or MultiPolygon (found: {seen}); "
            "draw the area as a polygon"
        )
    return polys


def read_aoi(path: str | Path, max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> AOI:
    """Read and validate an AOI from GeoJSON (EPSG:4326) or any vector file GDAL reads.

    Raises:
        InputError: missing/unreadable file, no polygon, invalid geometry,
            coordinates outside lon/lat range, or an area above ``max_area_km2``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--aoi: file not found: {p}")
    if p.suffix.lower() in (".geojson", ".json"):
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"--aoi: {p} is not valid JSON ({exc})") from None
        polys = _polygons_from_geojson(obj, str(p))
    else:
        polys = _polygons_from_vector_file(p)
    geom = shapely.unary_union(polys) if len(polys) > 1 else polys[0]
    for poly in polys:
        if not poly.is_valid:
            raise InputError(
                f"--aoi: invalid geometry in {p}: {explain_validity(poly)}; "
                "repair it (e.g. QGIS 'Fix geometries') and retry"
            )
    if geom.is_empty:
        raise InputError(f"--aoi: the polygon in {p} is empty (no coordinates)")
    w, s, e, n = geom.bounds
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise InputError(
            f"--aoi: coordinates of {p} are outside the lon/lat range "
            f"(bounds {w:.1f}, {s:.1f}, {e:.1f}, {n:.1f}); GeoJSON must be in EPSG:4326 degrees"
        )
    if geom.area == 0:
        raise InputError(f"--aoi: the polygon in {p} has zero area")
    area = area_km2(geom)
    if area > max_area_km2:
        raise InputError(
            f"--aoi: area {area:,.1f} km² exceeds the limit of {max_area_km2:g} km²; "
            "split the AOI or raise --max-area-km2"
        )
    return AOI(geometry=geom, name=p.stem)


def _polygons_from_vector_file(p: Path) -> list[BaseGeometry]:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(p)
    except Exception as exc:  # GDAL raises many types for unreadable files
        raise InputError(f"--aoi: cannot read {p} as a vector file ({exc})") from None
    if gdf.crs is None:
        raise InputError(f"--aoi: {p} has no CRS; save it with one (EPSG:4326 preferred)")
    gdf = gdf.to_crs(4326)
    polys = [g for g in gdf.geometry if isinstance(g, Polygon | MultiPolygon)]
    if not polys:
        kinds = ", ".join(sorted({g.geom_type for g in gdf.geometry if g is not None})) or "none"
        raise InputError(f"--aoi: {p} contains no Polygon or MultiPolygon (found: {kinds})")
    return polys


def area_km2(geom: BaseGeometry) -> float:
    """Area of a lon/lat geometry in km², computed in its local UTM zone."""
    c = geom.centroid
    to_utm = Transformer.from_crs(4326, utm_crs_for(c.x, c.y), always_xy=True).transform
    return float(shp_transform(to_utm, geom).area) / 1e6


def make_geobox(aoi: AOI, crs: str | int | None = None, resolution: int = RESOLUTION_M) -> GeoBox:
    """The run's grid: AOI bounds in ``crs`` (default: UTM of the centroid), snapped outwards
    to multiples of ``resolution`` metres."""
    c = aoi.geometry.centroid
    target = CRS.from_user_input(crs) if crs is not None else utm_crs_for(c.x, c.y)
    to_tgt = Transformer.from_crs(4326, target, always_xy=True).transform
    xmin, ymin, xmax, ymax = shp_transform(to_tgt, aoi.geometry).bounds
    r = float(resolution)
    bbox = (
        math.floor(xmin / r) * r,
        math.floor(ymin / r) * r,
        math.ceil(xmax / r) * r,
        math.ceil(ymax / r) * r,
    )
    return GeoBox.from_bbox(bbox, target.to_wkt(), resolution=resolution, tight=True)


def aoi_in_crs(aoi: AOI, crs: Any) -> BaseGeometry:
    """The AOI geometry reprojected to ``crs``."""
    to_tgt = Transformer.from_crs(4326, CRS.from_user_input(crs), always_xy=True).transform
    return shp_transform(to_tgt, aoi.geometry)
