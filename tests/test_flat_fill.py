"""Pixels without a season are filled by linear interpolation in a run (pipeline.fill)."""

from __future__ import annotations

import numpy as np
from odc.geo.geobox import GeoBox

from pipeline.baselines import (
    FLAT_AMPLITUDE,
    FLAT_MIN_SPAN_DAYS,
    _sorted_quantile,
    flat_pixels,
    linear,
)
from pipeline.cube import TileSignatures
from pipeline.fill import ModelFiller
from pipeline.timegrid import TimeGrid

T = 36


def _series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat noisy series (forest-like, range well under 0.1) and seasonal ones, half of
    the dates cloudy."""
    rng = np.random.default_rng(seed)
    days = np.arange(T) * 6.0
    flat = 0.82 + rng.normal(0, 0.01, (n, T))
    season = 0.25 + 0.55 * np.exp(-(((days - 110) / 45) ** 2))[None, :] + rng.normal(0, 0.01,
                                                                                       (n, T))
    gaps = rng.random((2 * n, T)) < 0.5
    gaps[:, [0, 5, 17, T - 1]] = False  # clear dates spanning the season
    y = np.concatenate([flat, season]).astype(np.float32)
    return np.where(gaps, np.nan, y).astype(np.float32), y


def test_flat_pixels_needs_a_small_range_enough_dates_and_a_long_span() -> None:
    obs, _ = _series(20)
    flat = flat_pixels(obs)
    assert flat[:20].all() and not flat[20:].any()
    few = np.full((1, T), np.nan, np.float32)
    few[0, [0, 10, 30]] = 0.8  # three clear dates: not enough to call it flat
    short = np.full((1, T), np.nan, np.float32)
    days = FLAT_MIN_SPAN_DAYS // 6 - 1  # a flat stretch shorter than the span
    short[0, : days + 1] = 0.8
    assert not flat_pixels(few).any() and not flat_pixels(short).any()
    short[0, days + 1] = 0.8
    assert flat_pixels(short).all()
    assert not flat_pixels(obs, amplitude=0.0).any()
    wide = obs[:20] + np.where(np.arange(T) % 2, FLAT_AMPLITUDE, 0.0).astype(np.float32)
    assert not flat_pixels(wide).any()  # a range over the threshold keeps the network


def test_model_filler_fills_flat_pixels_linearly_and_others_with_the_network() -> None:
    obs, _ = _series(20)
    s1 = np.full((len(obs), T, 2), np.nan, np.float32)
    doy = (np.arange(T) * 6 + 93).astype(np.float32)
    mean, std = ModelFiller().fill(obs, s1, s1, doy=doy)
    net, net_std = ModelFiller(flat_amplitude=0.0).fill(obs, s1, s1, doy=doy)
    np.testing.assert_array_equal(mean[:20], linear(obs[:20]))
    np.testing.assert_array_equal(mean[20:], net[20:])
    np.testing.assert_array_equal(std, net_std)  # the std stays the network's
    assert not np.allclose(net[:20], mean[:20])  # the network alone does differ there


def test_the_rule_is_part_of_the_fill_signature() -> None:
    geobox = GeoBox.from_bbox((670000, 6180000, 670400, 6180300), "EPSG:32634", resolution=10)
    grid = TimeGrid.covering("2023-04-01", "2023-10-31")
    a = TileSignatures.of(geobox, grid, ["s"], ModelFiller())
    b = TileSignatures.of(geobox, grid, ["s"], ModelFiller(flat_amplitude=0.0))
    assert a.ingest == b.ingest and a.fill != b.fill  # a resumed run refills, not mixes


def test_the_range_is_numpys_percentiles_without_the_row_loop() -> None:
    rng = np.random.default_rng(3)
    y = rng.random((500, T))
    y[rng.random(y.shape) < 0.6] = np.nan
    y[:, [0, 20]] = rng.random((500, 2))  # at least two values per row
    k = np.isfinite(y).sum(axis=1)
    ys = np.sort(y, axis=1)
    for q in (0.1, 0.9):
        np.testing.assert_allclose(_sorted_quantile(ys, k, q),
                                   np.nanpercentile(y, 100 * q, axis=1), rtol=0, atol=1e-12)
