"""Sentinel-2 optics: canopy reflectance, clouds, shadows, haze SCL misses, SCL itself.

Reflectance follows a linear mixing of a background (soil, water, roofs) and green
vegetation, with the vegetation fraction solved from the target NDVI, so the clean
NDVI of the truth is exactly the NDVI of the clean reflectances. Clouds are fractal
fields thresholded at the scene's cloud cover; shadows are the clouds displaced away
from the sun (south-east at 09:50 UTC over Lithuania, so shadows fall north-north-west);
a band of thin cloud below the flagging threshold and weak cirrus stay labelled as
surface, brightening red more than near-infrared, as in real L2A.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from pipeline.simulate import calibration as cal
from pipeline.simulate.fields import gaussian_field, powerlaw_field
from pipeline.simulate.spec import WorldSpec

NOISE_STREAM = 4
#: Opacity at the flagging threshold (thin haze below it is missed by SCL).
THIN_MAX = 0.10
#: Opacity at the medium/high probability boundary.
MEDIUM_MAX = 0.55
#: Haze opacity counted as contamination in ``thin_cloud_acq`` (below: negligible).
THIN_TRUTH_MIN = 0.005
#: SCL classes that flag the pixel as cloud or shadow.
SCL_FLAGGED = (3, 8, 9, 10)


def clean_reflectance(ndvi: np.ndarray, bg_red: np.ndarray, bg_nir: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Red and nir of the background/vegetation mixture whose NDVI is ``ndvi``.

    The vegetation fraction is clipped to [0, 1], so NDVI outside what the endmembers
    can make saturates; recompute NDVI from the result for the truth.
    """
    vr, vn = cal.VEGETATION
    a, b = bg_nir - bg_red, (vn - bg_nir) - (vr - bg_red)
    s, q = bg_nir + bg_red, (vn - bg_nir) + (vr - bg_red)
    f = np.clip((ndvi * s - a) / (b - ndvi * q), 0.0, 1.0)
    red = bg_red + f * (vr - bg_red)
    nir = bg_nir + f * (vn - bg_nir)
    return red.astype(np.float32), nir.astype(np.float32)


def ndvi_of(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(nir - red) / (nir + red) as float32."""
    return ((nir - red) / (nir + red)).astype(np.float32)


def sun_position(lon: float, lat: float, when: dt.datetime) -> tuple[float, float]:
    """Solar azimuth (degrees clockwise from north) and elevation (degrees), ~0.5 deg."""
    doy = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hours - 12) / 24)
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g))
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    solar_min = hours * 60 + eqt + 4 * lon
    ha = math.radians(solar_min / 4 - 180)
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_z)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi)
                                 - math.tan(decl) * math.cos(phi))) + 180
    return az % 360, 90 - math.degrees(zen)


def draw_cover(rng: np.random.Generator, spec: WorldSpec) -> float:
    """Flagged cloud fraction of one acquisition: clear, broken or mostly cloudy."""
    u = rng.random()
    if u < spec.clear_share:
        return float(rng.uniform(0.0, 0.04))
    if u < spec.clear_share + spec.cloudy_share:
        return float(min(1.0, 0.52 + 0.48 * rng.beta(1.5, 0.6)))
    return float(rng.uniform(0.06, 0.48))


@dataclass(frozen=True)
class Sky:
    """Atmosphere of one acquisition over the S2 window."""

    opacity: np.ndarray
    """float32 cloud opacity 0..1 (thick cloud, haze and cirrus combined)."""
    flag: np.ndarray
    """uint8 SCL cloud code decided by the cloud mask (8, 9, 10 or 0)."""
    shadow: np.ndarray
    """float32 cloud-shadow strength 0..1."""


def make_sky(rng: np.random.Generator, shape: tuple[int, int], spec: WorldSpec,
             sun_az: float, sun_el: float) -> Sky:
    """Clouds, thin cloud, cirrus and shadows of one acquisition."""
    ny, nx = shape
    cover = draw_cover(rng, spec)
    height = rng.uniform(600.0, 2000.0)
    length = min(height / math.tan(math.radians(max(sun_el, 5.0))) / 10.0, 300.0)
    away = math.radians(sun_az + 180.0)
    drow, dcol = round(-length * math.cos(away)), round(length * math.sin(away))
    # One field covers the window and the window moved back towards the sun.
    big = (ny + abs(drow), nx + abs(dcol))
    r0, c0 = max(0, drow), max(0, dcol)
    field = powerlaw_field(rng, big, beta=rng.uniform(3.0, 3.8), outer_px=rng.uniform(80, 300))
    here = field[r0:r0 + ny, c0:c0 + nx]
    src = field[r0 - drow:r0 - drow + ny, c0 - dcol:c0 + nx - dcol]

    thin = spec.thin_cloud_share * rng.uniform(0.4, 1.6) * (1.0 - cover)
    if cover >= 0.999:
        t_cloud = t_high = float(here.min()) - 1.0
        t_thin = t_cloud - 1.0
    else:
        t_cloud, t_high, t_thin = np.quantile(
            here, [1.0 - cover, 1.0 - 0.65 * cover, max(0.0, 1.0 - cover - thin)])
        t_thin = min(t_thin, t_cloud - 1e-3)
        t_high = max(t_high, t_cloud + 1e-3)

    def opacity(f: np.ndarray) -> np.ndarray:
        o = np.where(f >= t_thin, THIN_MAX * (f - t_thin) / (t_cloud - t_thin), 0.0)
        o = np.where(f >= t_cloud, THIN_MAX + (MEDIUM_MAX - THIN_MAX) * (f - t_cloud)
                     / (t_high - t_cloud), o)
        o = np.where(f >= t_high, MEDIUM_MAX + (1 - MEDIUM_MAX) * (f - t_high) / 0.6, o)
        return np.clip(o, 0.0, 1.0)

    alpha = opacity(here)
    flag = np.where(here >= t_high, 9, np.where(here >= t_cloud, 8, 0)).astype(np.uint8)
    shadow = np.clip((opacity(src) - THIN_MAX) / (MEDIUM_MAX - THIN_MAX), 0.0, 1.0)

    if rng.random() < 0.3:  # a cirrus veil: its stronger part is flagged 10, the rest missed
        veil = gaussian_field(rng, shape, rng.uniform(20, 60))
        extent = np.quantile(veil, 1.0 - rng.uniform(0.1, 0.6))
        cirrus = 0.2 * np.clip(veil - extent, 0.0, 1.0)
        flag = np.where((flag == 0) & (cirrus >= 0.06), 10, flag).astype(np.uint8)
        alpha = 1.0 - (1.0 - alpha) * (1.0 - cirrus)
    alpha = np.where(alpha < THIN_TRUTH_MIN, 0.0, alpha)
    return Sky(alpha.astype(np.float32), flag, shadow.astype(np.float32))


@dataclass(frozen=True)
class S2Observation:
    """What the archive holds for one acquisition, plus the haze truth."""

    red_dn: np.ndarray
    """uint16 B04 digital numbers (BOA_ADD_OFFSET -1000 included)."""
    nir_dn: np.ndarray
    """uint16 B08 digital numbers."""
    scl: np.ndarray
    """uint8 scene classification at 20 m."""
    thin_cloud: np.ndarray
    """uint8 1 where haze contaminates a pixel SCL did not flag (10 m)."""


def observe(red: np.ndarray, nir: np.ndarray, water: np.ndarray, built: np.ndarray,
            sky: Sky, rng: np.random.Generator) -> S2Observation:
    """Noise, shadow and cloud applied to clean reflectances; SCL classified."""
    gain_r, gain_n = 1.0 + rng.normal(0, 0.02), 1.0 + rng.normal(0, 0.015)
    r = red * gain_r + rng.standard_normal(red.shape, dtype=np.float32) * (0.002 + 0.01 * red)
    n = nir * gain_n + rng.standard_normal(nir.shape, dtype=np.float32) * (0.003 + 0.01 * nir)
    dark = 1.0 - 0.6 * sky.shadow
    a = sky.opacity
    bright = 0.7 + 0.6 * a
    r = (1 - a) * r * dark + a * cal.CLOUD_SPECTRUM[0] * bright
    n = (1 - a) * n * dark + a * cal.CLOUD_SPECTRUM[1] * bright

    ndvi = (n - r) / np.maximum(n + r, 1e-6)
    scl = np.where(water, 6, np.where(ndvi >= 0.38, 4, 5)).astype(np.uint8)
    scl[(a >= 0.07) & (rng.random(a.shape) < 0.5)] = 7  # murky cloud rims: unclassified
    scl[(sky.shadow >= 0.4)] = 3
    scl[built & (rng.random(a.shape) < rng.uniform(0.0, 0.06))] = 8  # bright roofs
    scl = np.where(sky.flag > 0, sky.flag, scl).astype(np.uint8)
    thin = ((a > 0) & ~np.isin(scl, SCL_FLAGGED)).astype(np.uint8)

    def dn(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((x + 0.1) * 10000.0), 1, 65535).astype(np.uint16)

    return S2Observation(dn(r), dn(n), aggregate_scl(scl), thin)


#: 20 m SCL: cloud/shadow classes win in this order, otherwise the majority.
_PRIORITY = (9, 8, 10, 3, 7)
_SURFACE = (4, 5, 6, 2)


def aggregate_scl(scl10: np.ndarray) -> np.ndarray:
    """2 x 2 aggregation of a 10 m SCL to 20 m (conservative for clouds)."""
    ny, nx = scl10.shape
    quads = scl10.reshape(ny // 2, 2, nx // 2, 2).transpose(0, 2, 1, 3)
    blocks = quads.reshape(ny // 2, nx // 2, 4)
    out = np.zeros((ny // 2, nx // 2), np.uint8)
    counts = np.stack([(blocks == c).sum(axis=-1) for c in _SURFACE])
    out[:] = np.asarray(_SURFACE, np.uint8)[np.argmax(counts, axis=0)]
    for c in reversed(_PRIORITY):
        out[(blocks == c).any(axis=-1)] = c
    return out
