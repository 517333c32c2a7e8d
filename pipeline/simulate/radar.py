"""Sentinel-1 backscatter on the geographic grid: biomass, soil moisture, orbit, speckle.

Per cell and scene (dB, then linear power): a class level, an NDVI (biomass) term,
a soil-moisture term attenuated by vegetation, the orbit direction's offset, static
parcel and cell offsets, a per-parcel scene noise of the class, wind on water; then
speckle and, in VH, residual thermal noise. The speckle is single-look GRD speckle:
gamma distributed with ENL ``spec.s1_enl`` (4.4) per pixel and spatially correlated
like geocoded GRD (a Gaussian field with a Lorentzian spectrum, corner
``cal.SPECKLE_CORNER``, mapped to the gamma marginal by the Wilson-Hilferty cube),
so a field's mean over n pixels averages far fewer than n independent looks. The
grid is not the Sentinel-2 grid: cells sample the landscape at the nearest
padded-grid cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

from pipeline.simulate import calibration as cal
from pipeline.simulate.fields import lorentzian_field
from pipeline.simulate.landscape import Landscape
from pipeline.simulate.spec import S1Acquisition, WorldSpec, s1_geobox, stream

RADAR_STREAM = 6
RADAR_STATIC_STREAM = 7


@dataclass(frozen=True)
class RadarScene:
    """Static radar view of the landscape on the S1 grid."""

    rows: np.ndarray
    """Padded-grid row sampled by each S1 cell (2-D, S1 grid shape)."""
    cols: np.ndarray
    """Padded-grid column sampled by each S1 cell."""
    unit: np.ndarray
    """Unit of each S1 cell."""
    pixel_db: np.ndarray
    """(2, y, x) static VV/VH offset per cell, dB."""
    unit_db: np.ndarray
    """(2, units) static VV/VH offset per unit, dB."""
    orbit_db: dict[str, np.ndarray]
    """Per orbit direction (2, units) offset (geometry, orientation of buildings)."""
    swath: dict[str, np.ndarray]
    """Per orbit direction bool mask of cells inside the swath."""


def make_radar_scene(land: Landscape, spec: WorldSpec) -> RadarScene:
    """Map the S1 grid onto the landscape and draw the static offsets."""
    rng = stream(spec, RADAR_STATIC_STREAM)
    gb = s1_geobox(spec)
    ny, nx = gb.shape
    jj, ii = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    t = gb.transform
    lon, lat = t.c + t.a * jj, t.f + t.e * ii
    x, y = Transformer.from_crs(4326, spec.crs, always_xy=True).transform(lon, lat)
    pt = land.geobox.transform
    pny, pnx = land.unit.shape
    cols = np.clip(np.floor((x - pt.c) / pt.a).astype(np.int64), 0, pnx - 1)
    rows = np.clip(np.floor((y - pt.f) / pt.e).astype(np.int64), 0, pny - 1)
    unit = land.unit[rows, cols]
    n_units = land.unit_class.size
    built = land.unit_class == cal.BUILT
    orbit_db = {}
    for state in ("ascending", "descending"):
        spread = np.where(built, 2.0, 0.5)
        orbit_db[state] = (rng.standard_normal((2, n_units)) * spread).astype(np.float32)
    full = np.ones((ny, nx), bool)
    # The descending swath's near-range edge runs slightly skewed through the west.
    edge = nx * 0.08 + 0.17 * (np.arange(ny)[:, None] - ny / 2)
    desc = (np.arange(nx)[None, :] >= edge) if spec.s1_swath_edge else full
    return RadarScene(
        rows=rows, cols=cols, unit=unit,
        pixel_db=(rng.standard_normal((2, ny, nx)) * cal.PIXEL_DB_STD).astype(np.float32),
        unit_db=(rng.standard_normal((2, n_units)) * cal.PARCEL_DB_STD).astype(np.float32),
        orbit_db=orbit_db, swath={"ascending": full, "descending": desc},
    )


def _class_table(land: Landscape) -> np.ndarray:
    """(6, units): vv0, vv_ndvi, vh0, vh_ndvi, wet, scene_db per unit."""
    rows = [cal.BACKSCATTER[int(c)] for c in land.unit_class]
    return np.array([[b.vv0, b.vv_ndvi, b.vh0, b.vh_ndvi, b.wet, b.scene_db] for b in rows],
                    np.float32).T


def speckle(rng: np.random.Generator, shape: tuple[int, int], looks: float) -> np.ndarray:
    """Unit-mean multiplicative speckle: gamma(``looks``) marginal, GRD-like correlation.

    A correlated standard normal field g becomes (1 - 1/(9L) + g / (3 sqrt(L)))^3, the
    Wilson-Hilferty approximation of a gamma(L)/L variate (mean 1, variance 1/L; within
    0.1 % of both for L >= 2); the cube keeps the field's correlation.
    """
    g = lorentzian_field(rng, shape, cal.SPECKLE_CORNER)
    a, b = 1.0 - 1.0 / (9.0 * looks), 1.0 / (3.0 * np.sqrt(looks))
    return (np.maximum(a + b * g, 0.02) ** 3).astype(np.float32)


def simulate_scene(land: Landscape, radar: RadarScene, ndvi: np.ndarray, moisture: float,
                   acq: S1Acquisition, spec: WorldSpec) -> tuple[np.ndarray, np.ndarray]:
    """Linear gamma0 VV and VH (float32, NaN outside the swath) of one scene.

    ``ndvi`` is the clean NDVI of each S1 cell at the scene's time.
    """
    rng = stream(spec, RADAR_STREAM, acq.index)
    table = _class_table(land)
    tab = table[:, radar.unit]
    n_units = land.unit_class.size
    veg = np.clip(ndvi, 0.0, 1.0)
    soil = moisture * tab[4] * (1.0 - 0.5 * veg)
    off_vv, off_vh = cal.ORBIT_OFFSET_DB[acq.orbit_state]
    orbit = radar.orbit_db[acq.orbit_state][:, radar.unit]
    # Per-field scene noise, correlated between VV and VH (moisture, dew, wind, geometry).
    z = rng.standard_normal((2, n_units)).astype(np.float32)
    rho = cal.SCENE_POL_CORR
    noise = np.stack([z[0], rho * z[0] + np.sqrt(1.0 - rho * rho) * z[1]]) * table[5]
    water = land.unit_class[radar.unit] == cal.WATER
    wind = rng.uniform(0.0, 1.0) ** 2
    vv_db = (tab[0] + tab[1] * ndvi + cal.WET_DB[0] * soil + off_vv + orbit[0]
             + radar.unit_db[0, radar.unit] + radar.pixel_db[0] + noise[0, radar.unit]
             + np.where(water, 8.0 * wind, 0.0))
    vh_db = (tab[2] + tab[3] * ndvi + cal.WET_DB[1] * soil + off_vh + orbit[1]
             + radar.unit_db[1, radar.unit] + radar.pixel_db[1] + noise[1, radar.unit]
             + np.where(water, 3.0 * wind, 0.0))
    shape = vv_db.shape
    looks = spec.s1_enl
    vv = 10.0 ** (vv_db / 10.0) * speckle(rng, shape, looks)
    vh = 10.0 ** (vh_db / 10.0) * speckle(rng, shape, looks)
    w = cal.VH_NOISE_WHITE
    floor = (np.sqrt(1.0 - w) * lorentzian_field(rng, shape, cal.SPECKLE_CORNER)
             + np.sqrt(w) * rng.standard_normal(shape, dtype=np.float32))
    vh = np.maximum(vh + cal.VH_NOISE_LINEAR * floor, cal.VH_FLOOR_LINEAR)
    outside = ~radar.swath[acq.orbit_state]
    vv, vh = vv.astype(np.float32), vh.astype(np.float32)
    vv[outside] = np.nan
    vh[outside] = np.nan
    return vv, vh
