"""The simulated radar is as weak per pixel as real GRD, and clouds cover fields in part.

One small world (2.4 km square, whole season) is simulated in memory; its figures are
measured with the same estimators ``benchmarks/demo_radar.py`` applies to real data
(real references: CDSE GRD cube per-pixel ENL 4.86 (VV), speckle lag-1 correlation
0.80 (VV) / 0.71 (VH); jrc-salms grassland parcels, within-parcel r(NDVI, VV) -0.23).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.simulate import WorldSpec
from pipeline.simulate import calibration as cal
from pipeline.simulate.measure import (
    RadarSample,
    consecutive_pairs,
    enl_from_log_ratio_var,
    field_clear_shares,
    field_means,
    lag_correlation,
    partial_share,
    ratio_enl,
    sample_radar,
    to_db,
    within_r,
)

SMALL = WorldSpec(bounds=(670900.0, 6179400.0, 673300.0, 6181800.0), seed=0)
#: Clouds need fewer fields than radar statistics do.
CLOUDS = WorldSpec(bounds=(670900.0, 6179400.0, 672100.0, 6180600.0), seed=0)


@pytest.fixture(scope="module")
def radar() -> RadarSample:
    return sample_radar(SMALL)


def _fields(s: RadarSample) -> np.ndarray:
    return s.interior & np.isin(s.unit_class[s.unit], cal.FIELD_CLASSES)


def test_log_ratio_enl_recovers_gamma_looks() -> None:
    rng = np.random.default_rng(1)
    for looks in (1.0, 4.4, 10.0):
        pair = rng.gamma(looks, 1.0 / looks, (2, 1, 100_000))
        est = ratio_enl(pair, [(0, 1)], np.ones((1, 100_000), bool))
        assert abs(est - looks) < 0.06 * looks
    assert np.isnan(enl_from_log_ratio_var(0.0))


def test_speckle_is_single_look_grd(radar: RadarSample) -> None:
    fields = _fields(radar)
    pairs = consecutive_pairs(radar.orbit)
    assert 3.5 <= ratio_enl(radar.vv, pairs, fields) <= 5.5
    # Correlated as geocoded GRD (real cube: 0.80 VV, 0.71 VH), not white; 16 scenes do.
    vv, vh, orbit = radar.vv[:16], radar.vh[:16], radar.orbit[:16]
    lag1 = lag_correlation(vv, 1, orbit)
    assert 0.70 <= lag1 <= 0.90
    assert 0.60 <= lag_correlation(vh, 1, orbit) <= 0.85
    assert lag_correlation(vv, 2, orbit) < lag1


def test_radar_is_weak_per_pixel_and_grassland_vv_falls_per_field(radar: RadarSample) -> None:
    vv, vh = to_db(radar.vv), to_db(radar.vh)
    cls_of = radar.unit_class[radar.unit]
    grass = radar.interior & (cls_of == cal.GRASS)
    for x in (vv, vh, vh - vv):
        assert abs(within_r(x[:, grass], radar.ndvi[:, grass], radar.orbit)) < 0.15
    n_units = radar.unit_class.size
    lin, count = field_means(radar.vv, radar.unit, radar.interior, n_units)
    ndvi, _ = field_means(radar.ndvi, radar.unit, radar.interior, n_units)
    units = (radar.unit_class == cal.GRASS) & (np.median(count, axis=0) >= 30)
    assert units.sum() >= 20
    field_r = within_r(to_db(lin)[:, units], ndvi[:, units], radar.orbit)
    pixel_r = within_r(vv[:, grass], radar.ndvi[:, grass], radar.orbit)
    assert field_r < 0 and abs(field_r) > 1.5 * abs(pixel_r)  # averaging reveals it


def test_some_field_dates_are_partly_clear() -> None:
    shares = partial_share(field_clear_shares(CLOUDS))
    assert shares["n"] > 500
    assert 0.03 <= shares["partial"] <= 0.25
    assert shares["cloudy"] > 0.4 and shares["clear"] > 0.1
