"""A simple per-pixel series generator for pre-training (not the demo-world simulator).

Each series is one grassland pixel on the 6-day grid:

* NDVI: a double-logistic season (winter base 0.05-0.4, peak 0.55-0.92, green-up
  around day 110, senescence around day 290) with 0-3 mowing events between mid May
  and mid September (instant drop of 0.1-0.45, exponential regrowth, 10-35 day time
  constant), a slow random walk (grazing, weather) and observation noise
  (std 0.01-0.04); 2 % of clear observations are undetected clouds or shadows (NDVI
  lowered by 0.1-0.5), as in the real tables.
* Clear bins: a two-state Markov chain per series; the real Slovak tables give
  P(clear | clear) = 0.55 and P(clear | gap) = 0.42 (48 % clear bins year-round); the
  generator draws each series' rates around those.
* Sentinel-1: per direction a level (VV -11 +- 2 dB, VH -18 +- 2.5 dB, directions
  offset by up to 2 dB), a response to NDVI (VH 3.0 dB, VV 1.35 dB per NDVI unit:
  the within-series regression slopes of the real tables), a shared soil-moisture
  random walk and speckle of 0.5-3 dB (plot means to single pixels). Each direction is
  present with a 6- or 12-day repeat or absent; S1 is missing entirely in 15 %.

The numbers above were read off ``shared/data/slovak-grassland`` (see
``model/weights/sf.json``); the generator only needs to span realistic variety.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SynthBatch:
    """Generated series.

    Attributes:
        truth: ``(N, T)`` noise-free-ish NDVI (what the filler should recover).
        ndvi: ``(N, T)`` observed NDVI, NaN = cloudy bin.
        vv: ``(N, T, 2)`` VV dB per direction, NaN = no acquisition.
        vh: ``(N, T, 2)`` VH dB per direction.
        doy: ``(N, T)`` day of year of each date's centre.
    """

    truth: np.ndarray
    ndvi: np.ndarray
    vv: np.ndarray
    vh: np.ndarray
    doy: np.ndarray


def _season(doy: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.uniform(0.05, 0.4, (n, 1))
    peak = rng.uniform(0.55, 0.92, (n, 1))
    up = rng.normal(110, 15, (n, 1))
    down = rng.normal(295, 15, (n, 1))
    r_up = rng.uniform(0.04, 0.15, (n, 1))
    r_down = rng.uniform(0.03, 0.1, (n, 1))
    d = doy % 365.0
    rise = 1 / (1 + np.exp(-r_up * (d - up)))
    fall = 1 / (1 + np.exp(r_down * (d - down)))
    return base + (peak - base) * rise * fall


def generate(n: int, t: int, rng: np.random.Generator, step_days: int = 6) -> SynthBatch:
    """Generate ``n`` series of ``t`` six-day dates starting on random days of year."""
    start = rng.uniform(0, 365, (n, 1))
    days = start + step_days * np.arange(t)[None, :] + step_days / 2
    ndvi = _season(days, rng, n)
    # Mowing: drop then exponential regrowth towards the season curve.
    n_mow = rng.choice(4, size=n, p=[0.25, 0.3, 0.3, 0.15])
    for k in range(3):
        has = n_mow > k
        when = rng.uniform(135, 260, n) + 365 * (start[:, 0] > 200)
        when = np.where(has, when, -1e9)[:, None]
        depth = rng.uniform(0.1, 0.45, (n, 1))
        tau = rng.uniform(10, 35, (n, 1))
        after = days - when
        drop = np.where(after >= 0, depth * np.exp(-np.maximum(after, 0) / tau), 0.0)
        ndvi = ndvi - drop
    walk = np.cumsum(rng.normal(0, rng.uniform(0.003, 0.02, (n, 1)), (n, t)), axis=1)
    truth = np.clip(ndvi + walk - walk.mean(axis=1, keepdims=True), -0.2, 0.98)

    # Clear bins from a two-state Markov chain.
    p11 = np.clip(rng.normal(0.6, 0.12, (n, 1)), 0.15, 0.95)
    p01 = np.clip(rng.normal(0.42, 0.12, (n, 1)), 0.05, 0.9)
    u = rng.random((n, t))
    clear = np.zeros((n, t), dtype=bool)
    clear[:, 0] = u[:, 0] < 0.5
    for j in range(1, t):
        p = np.where(clear[:, j - 1], p11[:, 0], p01[:, 0])
        clear[:, j] = u[:, j] < p
    noise = rng.normal(0, 1, (n, t)) * rng.uniform(0.01, 0.04, (n, 1))
    obs = truth + noise
    bad = rng.random((n, t)) < 0.02
    obs = np.where(bad, obs - rng.uniform(0.1, 0.5, (n, t)), obs)
    obs = np.where(clear, np.clip(obs, -1, 1), np.nan)

    # Sentinel-1 per direction.
    moist = np.cumsum(rng.normal(0, 0.6, (n, t)), axis=1)
    moist = 0.7 * (moist - moist.mean(axis=1, keepdims=True))
    vv = np.full((n, t, 2), np.nan)
    vh = np.full((n, t, 2), np.nan)
    no_s1 = rng.random(n) < 0.15
    speckle = rng.uniform(0.5, 3.0, (n, 1))
    lvl_vv, lvl_vh = rng.normal(-11, 2, (n, 1)), rng.normal(-18, 2.5, (n, 1))
    for d in range(2):
        present = (rng.random(n) < (0.85 if d == 0 else 0.6)) & ~no_s1
        repeat = rng.choice([1, 2], size=(n, 1))
        phase = rng.integers(0, 2, (n, 1))
        on = present[:, None] & ((np.arange(t)[None, :] + phase) % repeat == 0)
        on &= rng.random((n, t)) > 0.05
        off = rng.uniform(-2, 2, (n, 1)) * d
        e_vv = lvl_vv + off + 1.35 * truth + moist + speckle * rng.normal(0, 1, (n, t))
        e_vh = lvl_vh + off + 3.0 * truth + 0.8 * moist + speckle * rng.normal(0, 1, (n, t))
        vv[:, :, d] = np.where(on, e_vv, np.nan)
        vh[:, :, d] = np.where(on, e_vh, np.nan)
    f32 = np.float32
    doy = (days % 365.0 + 1.0).astype(f32)
    return SynthBatch(truth.astype(f32), obs.astype(f32), vv.astype(f32), vh.astype(f32), doy)
