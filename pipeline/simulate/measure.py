"""Radar and cloud statistics of the simulated world, measured as on real data.

The same estimators run on the simulated world (:func:`sample_radar`,
:func:`field_clear_shares`) and on real cubes and parcel tables
(``benchmarks/demo_radar.py``), so the two can be compared number for number:

* :func:`within_r`: Pearson r of two variables after removing each series' mean
  (a series = one pixel or one field in one orbit direction), pooled;
* :func:`block_enl`: equivalent number of looks, mean^2 / variance of linear power
  in square blocks of a homogeneous area, median over blocks and scenes, with the
  median per-pixel standard deviation of the dB values in those blocks;
* :func:`ratio_enl`: per-pixel ENL from the variance of the log ratio of two
  scenes of one orbit (2 trigamma(L) for independent gamma speckle): static texture
  cancels and spatial correlation does not bias it; real change in between lowers it;
* :func:`lag_correlation`: spatial autocorrelation of the speckle at a lag in
  pixels (mean of the row and column directions) after removing each pixel's
  temporal mean in dB, which removes the static texture;
* :func:`field_means`: per-field mean of linear power over interior pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import polygamma

from pipeline.s2 import SCL_CLEAR
from pipeline.simulate import calibration as cal
from pipeline.simulate.archive import _World
from pipeline.simulate.optics import NOISE_STREAM, make_sky, observe, sun_position
from pipeline.simulate.radar import make_radar_scene, simulate_scene
from pipeline.simulate.spec import WorldSpec, lonlat_bounds, s1_schedule, s2_schedule, stream

#: Months counted as the growing season in every statistic (April-October).
SEASON_MONTHS = range(4, 11)


@dataclass(frozen=True)
class RadarSample:
    """The simulated Sentinel-1 scenes of the season with the truth behind each cell."""

    vv: np.ndarray
    """(scenes, y, x) linear VV on the S1 grid (NaN outside the swath)."""
    vh: np.ndarray
    """(scenes, y, x) linear VH."""
    ndvi: np.ndarray
    """(scenes, y, x) clean NDVI of each cell at the scene's time."""
    orbit: np.ndarray
    """(scenes,) orbit direction of each scene."""
    unit: np.ndarray
    """(y, x) management unit of each cell."""
    interior: np.ndarray
    """(y, x) True where the cell and its 8 neighbours share one unit."""
    unit_class: np.ndarray
    """Land-cover code of each unit."""


def interior_mask(unit: np.ndarray) -> np.ndarray:
    """True where a cell's 3 x 3 neighbourhood lies in one unit (border cells False)."""
    out = np.zeros(unit.shape, bool)
    core = unit[1:-1, 1:-1]
    same = np.ones(core.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= unit[1 + dy:unit.shape[0] - 1 + dy, 1 + dx:unit.shape[1] - 1 + dx] == core
    out[1:-1, 1:-1] = same
    return out


def sample_radar(spec: WorldSpec) -> RadarSample:
    """Simulate the season's S1 scenes in memory (as the archive writes them)."""
    world = _World(spec)
    radar = make_radar_scene(world.land, spec)
    acqs = [a for a in s1_schedule(spec) if a.time.month in SEASON_MONTHS]
    values = world.unit_ndvi([a.time for a in acqs])
    vv, vh, nd = [], [], []
    for k, acq in enumerate(acqs):
        _, _, ndvi = world.cell_state(values[:, k], (radar.rows, radar.cols))
        a, b = simulate_scene(world.land, radar, ndvi,
                              world.weather.moisture_at(acq.time), acq, spec)
        vv.append(a)
        vh.append(b)
        nd.append(ndvi)
    return RadarSample(np.stack(vv), np.stack(vh), np.stack(nd),
                       np.array([a.orbit_state for a in acqs]), radar.unit,
                       interior_mask(radar.unit), world.land.unit_class)


def field_clear_shares(spec: WorldSpec, min_px: int = 50, max_px: int | None = None
                       ) -> np.ndarray:
    """(fields, dates) clear share (SCL 4, 5, 6) of each agricultural field, Apr-Oct.

    Fields are the parcels of the field classes with ``min_px`` to ``max_px`` 10 m
    cells inside the bounds; SCL is read at 10 m as the pipeline reads it (20 m doubled).
    """
    world = _World(spec)
    land = world.land
    core = land.core
    unit = land.unit[core]
    fields = np.isin(land.unit_class, cal.FIELD_CLASSES)
    counts = np.bincount(unit.ravel(), minlength=fields.size)
    big = counts >= min_px
    if max_px is not None:
        big &= counts <= max_px
    keep = np.flatnonzero(fields & big)
    water = land.landcover[core] == cal.WATER
    built = land.landcover[core] == cal.BUILT
    lon, lat = (float(v) for v in np.mean(np.reshape(lonlat_bounds(spec), (2, 2)), axis=0))
    acqs = [a for a in s2_schedule(spec) if a.time.month in SEASON_MONTHS]
    values = world.unit_ndvi([a.time for a in acqs])
    ny, nx = unit.shape
    out = np.empty((keep.size, len(acqs)), np.float32)
    for k, acq in enumerate(acqs):
        red, nir, _ = world.cell_state(values[:, k], core)
        az, el = sun_position(lon, lat, acq.time)
        sky = make_sky(stream(spec, 5, acq.index), (ny, nx), spec, az, el)
        obs = observe(red, nir, water, built, sky, stream(spec, NOISE_STREAM, acq.index))
        scl10 = np.repeat(np.repeat(obs.scl, 2, axis=0), 2, axis=1)
        clear = np.isin(scl10, SCL_CLEAR).ravel()
        share = np.bincount(unit.ravel(), weights=clear, minlength=fields.size) / np.maximum(
            counts, 1)
        out[:, k] = share[keep]
    return out


def partial_share(shares: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> dict[str, float]:
    """Shares of field-dates mostly cloudy (<= lo clear), partly clear, and clear (>= hi)."""
    s = np.asarray(shares, float).ravel()
    s = s[np.isfinite(s)]
    return {"cloudy": float(np.mean(s <= lo)), "partial": float(np.mean((s > lo) & (s < hi))),
            "clear": float(np.mean(s >= hi)), "n": float(s.size)}


def to_db(linear: np.ndarray) -> np.ndarray:
    """10 log10 of positive values, NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(linear > 0, 10.0 * np.log10(linear), np.nan)


def demean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """``x`` minus its mean along ``axis`` (NaN-aware; all-NaN series stay NaN)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return x - np.nanmean(x, axis=axis, keepdims=True)


def pooled_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over the finite pairs of two arrays (NaN when fewer than 3)."""
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def within_r(x: np.ndarray, y: np.ndarray, groups: np.ndarray, min_scenes: int = 3) -> float:
    """Pooled r of ``x`` and ``y`` (scenes, series) after demeaning each series.

    ``groups`` (scenes,) splits the scenes into separate series (orbit directions);
    groups with fewer than ``min_scenes`` scenes are left out.
    """
    xs, ys = [], []
    for g in np.unique(groups):
        sel = groups == g
        if sel.sum() < min_scenes:
            continue
        xx, yy = x[sel].copy(), y[sel].copy()
        bad = ~(np.isfinite(xx) & np.isfinite(yy))
        xx[bad], yy[bad] = np.nan, np.nan
        xs.append(demean(xx))
        ys.append(demean(yy))
    if not xs:
        return float("nan")
    return pooled_r(np.concatenate([a.ravel() for a in xs]),
                    np.concatenate([a.ravel() for a in ys]))


def field_means(values: np.ndarray, unit: np.ndarray, mask: np.ndarray, n_units: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(scenes, units) mean of ``values`` over the ``mask`` cells of each unit, and counts.

    Cells that are NaN in a scene do not count in that scene.
    """
    u = unit[mask]
    out = np.full((values.shape[0], n_units), np.nan)
    n = np.zeros((values.shape[0], n_units))
    for s in range(values.shape[0]):
        v = values[s][mask]
        ok = np.isfinite(v)
        n[s] = np.bincount(u[ok], minlength=n_units)
        tot = np.bincount(u[ok], weights=v[ok], minlength=n_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = np.where(n[s] > 0, tot / n[s], np.nan)
    return out, n


def block_enl(linear: np.ndarray, homogeneous: np.ndarray, size: int = 8
              ) -> tuple[float, float, int]:
    """Median ENL and median dB std over ``size`` x ``size`` blocks, and the block count.

    ``linear`` is (scenes, y, x); a block counts where ``homogeneous`` (y, x) holds on
    all its cells and the scene has no NaN there. Spatially correlated speckle makes
    this estimate exceed the per-pixel ENL (fewer independent samples per block); it
    is comparable only between images with the same correlation and block size.
    """
    ns, ny, nx = linear.shape
    by, bx = ny // size, nx // size
    cut = linear[:, :by * size, :bx * size].reshape(ns, by, size, bx, size)
    blocks = cut.transpose(0, 1, 3, 2, 4).reshape(ns, by, bx, size * size)
    hom = homogeneous[:by * size, :bx * size].reshape(by, size, bx, size).all(axis=(1, 3))
    sel = blocks[:, hom]
    sel = sel[np.isfinite(sel).all(axis=-1) & (sel > 0).all(axis=-1)]
    if sel.shape[0] == 0:
        return float("nan"), float("nan"), 0
    enl = sel.mean(axis=-1) ** 2 / sel.var(axis=-1, ddof=1)
    std_db = (10.0 * np.log10(sel)).std(axis=-1, ddof=1)
    return float(np.median(enl)), float(np.median(std_db)), int(sel.shape[0])


def enl_from_log_ratio_var(var: float) -> float:
    """L with 2 trigamma(L) = ``var`` (the variance of ln(I1 / I2), gamma(L) speckle)."""
    lo, hi = 0.05, 1000.0
    if not np.isfinite(var) or var <= 2 * float(polygamma(1, hi)):
        return float("nan")
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        if 2 * float(polygamma(1, mid)) > var:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def ratio_enl(linear: np.ndarray, pairs: list[tuple[int, int]], mask: np.ndarray) -> float:
    """Per-pixel ENL from the log ratios of scene ``pairs`` over the ``mask`` cells.

    Each pair's median log ratio is removed (a scene-wide level change); the
    variances of all pairs are pooled.
    """
    d = []
    for a, b in pairs:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(linear[b][mask]) - np.log(linear[a][mask])
        r = r[np.isfinite(r)]
        if r.size:
            d.append(r - np.median(r))
    if not d:
        return float("nan")
    return enl_from_log_ratio_var(float(np.var(np.concatenate(d))))


def consecutive_pairs(groups: np.ndarray) -> list[tuple[int, int]]:
    """Index pairs of consecutive scenes within each group (orbit direction)."""
    out: list[tuple[int, int]] = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out += list(zip(idx[:-1].tolist(), idx[1:].tolist(), strict=True))
    return out


def lag_correlation(linear: np.ndarray, lag: int, groups: np.ndarray | None = None) -> float:
    """Spatial autocorrelation of speckle at ``lag`` pixels (rows and columns averaged).

    ``linear`` is (scenes, y, x); each pixel's temporal mean dB (per group of scenes,
    e.g. orbit direction) is removed first so static texture does not count.
    """
    db = to_db(linear)
    g = np.zeros(db.shape[0], int) if groups is None else np.asarray(groups)
    res = np.empty_like(db)
    for key in np.unique(g):
        res[g == key] = demean(db[g == key])
    rows = pooled_r(res[:, :-lag, :], res[:, lag:, :])
    cols = pooled_r(res[:, :, :-lag], res[:, :, lag:])
    return 0.5 * (rows + cols)
