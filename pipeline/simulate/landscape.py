"""The land: parcels, their classes, hedgerows and tracks, per-pixel variability.

Parcels are anisotropic Voronoi cells (elongated like fields), classes come from
smooth fields (forest blocks, a lake) and a village; 1-pixel boundaries between
fields become hedgerows or tracks. Everything lives on the padded grid of
:func:`pipeline.simulate.spec.padded_geobox`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio import features
from scipy.spatial import cKDTree
from shapely.geometry import shape as to_shape
from shapely.geometry.base import BaseGeometry

from pipeline.simulate import calibration as cal
from pipeline.simulate.fields import gaussian_field
from pipeline.simulate.spec import PAD_PX, WorldSpec, padded_geobox, s2_geobox, stream

LANDSCAPE_STREAM = 1


@dataclass(frozen=True)
class Landscape:
    """The static land on the padded grid (arrays are (y, x) of that grid)."""

    geobox: GeoBox
    """The padded simulation grid."""
    unit: np.ndarray
    """int32 management unit of each cell (parcels, the lake, hedgerows, tracks)."""
    unit_class: np.ndarray
    """Landcover code of each unit."""
    parcel_id: np.ndarray
    """int32 public parcel id of each cell (unit + 1), 0 on hedgerows and tracks."""
    gain: np.ndarray
    """float32 per-cell scaling of the seasonal NDVI amplitude (within-parcel variability)."""
    offset: np.ndarray
    """float32 per-cell NDVI offset."""
    bg_red: np.ndarray
    """float32 background (soil, water, roofs) red reflectance of each cell."""
    bg_nir: np.ndarray
    """float32 background near-infrared reflectance of each cell."""

    @property
    def landcover(self) -> np.ndarray:
        """uint8 landcover code of each cell."""
        return self.unit_class[self.unit].astype(np.uint8)

    @property
    def core(self) -> tuple[slice, slice]:
        """Index of the Sentinel-2 window (the bounds) inside the padded grid."""
        ny, nx = self.unit.shape
        return slice(PAD_PX, ny - PAD_PX), slice(PAD_PX, nx - PAD_PX)


def _pair_hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) value per unordered pair of units (same on both sides)."""
    lo = np.minimum(a, b).astype(np.uint64)
    hi = np.maximum(a, b).astype(np.uint64)
    h = (lo * np.uint64(2654435761) + hi * np.uint64(40503) + np.uint64(seed * 97 + 11))
    h = (h * np.uint64(2246822519)) % np.uint64(2**32)
    return h.astype(np.float64) / 2.0**32


def make_landscape(spec: WorldSpec) -> Landscape:
    """Draw the parcels, classes and per-cell variability of ``spec``'s world."""
    rng = stream(spec, LANDSCAPE_STREAM)
    gb = padded_geobox(spec)
    ny, nx = gb.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)

    # Elongated fields: Voronoi in a rotated, stretched frame.
    n_seeds = max(4, round(ny * nx * 100.0 / (spec.mean_parcel_ha * 1e4)))
    theta = rng.uniform(0, np.pi)
    stretch = 1.8
    seeds = np.column_stack([rng.uniform(0, ny, n_seeds), rng.uniform(0, nx, n_seeds)])

    def frame(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        u = r * np.cos(theta) + c * np.sin(theta)
        v = -r * np.sin(theta) + c * np.cos(theta)
        return np.column_stack([u * stretch, v])

    tree = cKDTree(frame(seeds[:, 0], seeds[:, 1]))
    _, nearest = tree.query(frame(yy.ravel(), xx.ravel()), workers=1)
    unit = nearest.reshape(ny, nx).astype(np.int32)

    # Classes: forest blocks from a smooth field, a village, fields for the rest.
    classes = rng.choice(np.array(list(cal.FIELD_SHARES), dtype=np.int16), size=n_seeds,
                         p=np.array(list(cal.FIELD_SHARES.values())))
    forest_field = gaussian_field(rng, (ny, nx), 0.2 * min(ny, nx))
    si = np.clip(seeds.astype(int), 0, [ny - 1, nx - 1])
    at_seed = forest_field[si[:, 0], si[:, 1]]
    classes[at_seed > np.quantile(at_seed, 0.85)] = cal.FOREST
    centre = rng.uniform(0.3, 0.7, 2) * [ny, nx]
    radius = np.sqrt(0.05 * ny * nx / np.pi)
    classes[np.hypot(seeds[:, 0] - centre[0], seeds[:, 1] - centre[1]) < radius] = cal.BUILT

    # A lake of natural shape overrides the parcels.
    lake_field = gaussian_field(rng, (ny, nx), 0.08 * min(ny, nx))
    lake = lake_field > np.quantile(lake_field, 0.975)
    lake_unit, hedge_unit, track_unit = n_seeds, n_seeds + 1, n_seeds + 2
    unit[lake] = lake_unit
    unit_class = np.concatenate([classes, [cal.WATER, cal.HEDGE, cal.TRACK]]).astype(np.int16)

    # 1-cell boundaries between different units, where a field is involved.
    is_field = np.isin(unit_class, cal.FIELD_CLASSES)
    border = np.zeros((ny, nx), bool)
    other = np.full((ny, nx), -1, np.int32)
    for axis in (0, 1):
        nb = np.roll(unit, -1, axis=axis)
        edge = (unit != nb) & (is_field[unit] | is_field[nb])
        if axis == 0:
            edge[-1, :] = False
        else:
            edge[:, -1] = False
        other = np.where(edge & ~border, nb, other)
        border |= edge
    hedge = _pair_hash(unit[border], other[border], spec.seed) < 0.55
    new = np.where(hedge, hedge_unit, track_unit).astype(np.int32)
    unit[border] = new

    parcel_id = np.where(unit >= hedge_unit, 0, unit + 1).astype(np.int32)

    # Within-parcel variability: smooth patches plus cell noise.
    gain = 1.0 + 0.07 * gaussian_field(rng, (ny, nx), 6.0) + 0.03 * rng.standard_normal(
        (ny, nx), dtype=np.float32)
    gain = np.clip(gain, 0.75, 1.25).astype(np.float32)
    offset = (0.012 * rng.standard_normal((ny, nx), dtype=np.float32)).astype(np.float32)
    soil = (1.0 + 0.1 * gaussian_field(rng, (ny, nx), 25.0)).astype(np.float32)
    bg = np.array([cal.BACKGROUND.get(int(c), (0.16, 0.24)) for c in unit_class], np.float32)
    cls_of = unit_class[unit]
    scale = np.where(cls_of == cal.WATER, 1.0, soil).astype(np.float32)
    return Landscape(
        geobox=gb, unit=unit, unit_class=unit_class, parcel_id=parcel_id, gain=gain,
        offset=offset, bg_red=bg[unit, 0] * scale, bg_nir=bg[unit, 1] * scale,
    )


def parcel_polygons(land: Landscape, spec: WorldSpec) -> dict[int, BaseGeometry]:
    """Parcel outlines inside the bounds, in EPSG:4326, keyed by parcel id."""
    ids = np.ascontiguousarray(land.parcel_id[land.core])
    transform = s2_geobox(spec).transform
    parts: dict[int, list[BaseGeometry]] = {}
    for geom, value in features.shapes(ids, mask=ids > 0, transform=transform):
        parts.setdefault(int(value), []).append(to_shape(geom))
    to_ll = Transformer.from_crs(spec.crs, 4326, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), 7)

    out: dict[int, BaseGeometry] = {}
    for pid in sorted(parts):
        merged = shapely.union_all(parts[pid])
        out[pid] = shapely.transform(merged, project)
    return out
