"""Classic gap fillers: exactness on polynomial data, conventions, hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.baselines import akima, linear, quadratic, whittaker

KERNELS = [linear, akima, quadratic, whittaker]


def _gappy(y: np.ndarray, seed: int = 0, frac: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gaps = rng.random(y.shape) < frac
    gaps[:, [0, -1]] = False
    return np.where(gaps, np.nan, y).astype(np.float32)


def test_linear_data_is_reproduced_by_every_kernel() -> None:
    t = np.arange(40, dtype=np.float64)
    y = np.stack([0.01 * t + 0.1, -0.005 * t + 0.8, np.full(40, 0.3)]).astype(np.float32)
    yg = _gappy(y)
    for fn in (linear, akima, quadratic):
        np.testing.assert_allclose(fn(yg), y, atol=1e-5, err_msg=fn.__name__)
    np.testing.assert_allclose(whittaker(yg, keep_observed=False), y, atol=1e-4)


def test_quadratic_data_is_reproduced_by_quadratic() -> None:
    t = np.arange(36, dtype=np.float64)
    y = np.stack([0.001 * (t - 12) ** 2 + 0.1, -0.0008 * (t - 20) ** 2 + 0.8]).astype(np.float32)
    np.testing.assert_allclose(quadratic(_gappy(y, 3)), y, atol=1e-5)


@pytest.mark.parametrize("fn", KERNELS)
def test_conventions(fn) -> None:  # type: ignore[no-untyped-def]
    y = np.full((3, 8), np.nan, dtype=np.float32)
    y[1, 3] = 0.5
    y[2, [2, 5]] = [0.2, 0.5]
    out = fn(y)
    assert out.dtype == np.float32 and out.shape == y.shape
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], 0.5)
    np.testing.assert_allclose(out[2, :3], 0.2)  # nearest value before the first obs
    np.testing.assert_allclose(out[2, 5:], 0.5)  # and after the last
    with pytest.raises(ValueError):
        fn(np.zeros(5, dtype=np.float32))


def test_whittaker_matches_dense_solve() -> None:
    rng = np.random.default_rng(1)
    y = _gappy(rng.random((4, 20)).astype(np.float32), 2)
    lam = 7.0
    out = whittaker(y, lam=lam, keep_observed=False)
    t = y.shape[1]
    d = np.diff(np.eye(t), n=2, axis=0)
    for i in range(len(y)):
        w = np.isfinite(y[i]).astype(float)
        z = np.linalg.solve(np.diag(w) + lam * d.T @ d, np.nan_to_num(y[i]) * w)
        np.testing.assert_allclose(out[i], z, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (5, 12), elements=st.floats(-1, 1, width=32) | st.just(np.nan)),
    st.sampled_from(KERNELS),
)
def test_observed_kept_and_filled_where_possible(y: np.ndarray, fn) -> None:  # type: ignore[no-untyped-def]
    out = fn(y)
    valid = np.isfinite(y)
    np.testing.assert_array_equal(out[valid], y[valid])
    has = valid.any(axis=1)
    assert np.isfinite(out[has]).all()
    assert np.isnan(out[~has]).all()
