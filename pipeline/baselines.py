"""Classic gap fillers as vectorised numpy kernels.

Every kernel takes ``y`` of shape ``(N, T)`` (one series per row, NaN = gap,
equally spaced dates) and returns a gap-free array of the same shape. Rows
without any observation stay all-NaN. Outside the first/last observation the
nearest observed value is carried (no extrapolated trends).
"""

from __future__ import annotations

import numpy as np

from pipeline.timegrid import STEP_DAYS


def neighbour_indices(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the previous and next valid sample for every cell (-1 / T if none)."""
    n, t = valid.shape
    pos = np.broadcast_to(np.arange(t), (n, t))
    prev = np.maximum.accumulate(np.where(valid, pos, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, pos, t)[:, ::-1], axis=1)[:, ::-1]
    return prev, nxt


def linear(y: np.ndarray) -> np.ndarray:
    """Per-row linear interpolation across gaps, nearest value beyond the ends."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"expected (N, T) array, got shape {y.shape}")
    n, t = y.shape
    valid = np.isfinite(y)
    prev, nxt = neighbour_indices(valid)
    rows = np.arange(n)[:, None]
    has_prev, has_next = prev >= 0, nxt < t
    y_prev = y[rows, np.clip(prev, 0, t - 1)]
    y_next = y[rows, np.clip(nxt, 0, t - 1)]
    pos = np.arange(t, dtype=np.float32)[None, :]
    span = np.maximum(nxt - prev, 1).astype(np.float32)
    w = (pos - prev) / span
    inner = y_prev + w * (y_next - y_prev)
    out = np.where(has_prev & has_next, inner, np.where(has_prev, y_prev, y_next))
    out = np.where(has_prev | has_next, out, np.nan)
    return np.where(valid, y, out).astype(np.float32)


def _carry_ends(y: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Nearest-value carry outside each row's first/last observation; all-NaN rows NaN."""
    valid = np.isfinite(y)
    prev, nxt = neighbour_indices(valid)
    n, t = y.shape
    rows = np.arange(n)[:, None]
    has_prev, has_next = prev >= 0, nxt < t
    first = filled[rows, np.clip(nxt, 0, t - 1)]
    last = filled[rows, np.clip(prev, 0, t - 1)]
    out = np.where(has_prev & has_next, filled, np.where(has_prev, last, first))
    return np.where(has_prev | has_next, out, np.nan)


def _per_row(y: np.ndarray, kind: str) -> np.ndarray:
    """Row loop for scipy interpolators; rows with too few points fall back to linear."""
    from scipy.interpolate import Akima1DInterpolator, interp1d

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"expected (N, T) array, got shape {y.shape}")
    out = linear(y).astype(np.float64)
    valid = np.isfinite(y)
    counts = valid.sum(axis=1)
    need = 3
    pos = np.arange(y.shape[1], dtype=np.float64)
    for i in np.flatnonzero(counts >= need):
        v = valid[i]
        if v.all():
            continue
        x, yi = pos[v], y[i, v].astype(np.float64)
        lo, hi = int(x[0]), int(x[-1])
        inner = pos[lo : hi + 1]
        if kind == "akima":
            out[i, lo : hi + 1] = Akima1DInterpolator(x, yi)(inner)
        else:
            out[i, lo : hi + 1] = interp1d(x, yi, kind="quadratic", assume_sorted=True)(inner)
    out = _carry_ends(y, out)
    return np.where(valid, y, out).astype(np.float32)


def akima(y: np.ndarray) -> np.ndarray:
    """Per-row Akima spline through the observations, nearest value beyond the ends.

    Rows with fewer than three observations are filled linearly.
    """
    return _per_row(y, "akima")


def quadratic(y: np.ndarray) -> np.ndarray:
    """Per-row quadratic spline (scipy ``interp1d(kind="quadratic")``), nearest beyond ends.

    Rows with fewer than three observations are filled linearly.
    """
    return _per_row(y, "quadratic")


def _second_difference_diagonals(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Main, first and second diagonals of D'D for the second-difference matrix D."""
    d = np.zeros((t - 2, t))
    idx = np.arange(t - 2)
    d[idx, idx], d[idx, idx + 1], d[idx, idx + 2] = 1.0, -2.0, 1.0
    p = d.T @ d
    return np.diag(p).copy(), np.diag(p, 1).copy(), np.diag(p, 2).copy()


def whittaker(y: np.ndarray, lam: float = 10.0, keep_observed: bool = True) -> np.ndarray:
    """Whittaker smoother (second differences), weights 1 at observations and 0 at gaps.

    Solves ``(W + lam D'D) z = W y`` for every row at once with a banded Cholesky
    factorisation vectorised over rows (the loop runs over the T dates only).

    Args:
        y: ``(N, T)`` series, NaN = gap.
        lam: smoothing parameter (in units of the date step; larger = smoother).
        keep_observed: return observed values unchanged (gap filling, as the other
            kernels); False returns the smoothed values on every date.

    Returns:
        ``(N, T)`` float32; nearest (smoothed) value beyond the first/last observation,
        rows with a single observation constant, all-NaN rows NaN.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"expected (N, T) array, got shape {y.shape}")
    n, t = y.shape
    valid = np.isfinite(y)
    if t < 3:
        return linear(y)
    w = valid.astype(np.float64)
    b = np.where(valid, y, 0.0).astype(np.float64)
    p0, p1, p2 = _second_difference_diagonals(t)
    a0 = w + lam * p0
    a1 = np.broadcast_to(lam * p1, (n, t - 1))
    a2 = np.broadcast_to(lam * p2, (n, t - 2))
    # Rows with < 2 observations are singular: give them a tiny ridge, fixed below.
    few = valid.sum(axis=1) < 2
    a0 = a0 + np.where(few, 1e-6, 0.0)[:, None]
    l0 = np.zeros((n, t))
    l1 = np.zeros((n, t))
    l2 = np.zeros((n, t))
    for i in range(t):
        if i >= 2:
            l2[:, i] = a2[:, i - 2] / l0[:, i - 2]
        if i >= 1:
            l1[:, i] = (a1[:, i - 1] - l2[:, i] * l1[:, i - 1]) / l0[:, i - 1]
        l0[:, i] = np.sqrt(np.maximum(a0[:, i] - l1[:, i] ** 2 - l2[:, i] ** 2, 1e-12))
    u = np.zeros((n, t))
    for i in range(t):
        acc = b[:, i].copy()
        if i >= 1:
            acc -= l1[:, i] * u[:, i - 1]
        if i >= 2:
            acc -= l2[:, i] * u[:, i - 2]
        u[:, i] = acc / l0[:, i]
    z = np.zeros((n, t))
    for i in range(t - 1, -1, -1):
        acc = u[:, i].copy()
        if i + 1 < t:
            acc -= l1[:, i + 1] * z[:, i + 1]
        if i + 2 < t:
            acc -= l2[:, i + 2] * z[:, i + 2]
        z[:, i] = acc / l0[:, i]
    single = valid.sum(axis=1) == 1
    if single.any():
        z[single] = np.nanmax(np.where(valid[single], y[single], -np.inf), axis=1)[:, None]
    out = _carry_ends(y, z)
    if keep_observed:
        out = np.where(valid, y, out)
    return out.astype(np.float32)


#: Seasonal range (NDVI, 90th minus 10th percentile of a pixel's clear observations)
#: under which the pixel shows no season (forest, built-up land, water, tracks):
#: :class:`pipeline.fill.ModelFiller` fills it by linear interpolation, the per-pixel
#: mowing detector skips it, and a segment's context passes it by ...
FLAT_AMPLITUDE = 0.1
#: ... seen on at least this many clear dates ...
FLAT_MIN_OBS = 4
#: ... spread over at least this many days (a green-up or a senescence takes months; a
#: shorter window may hold a field's flat stretch).
FLAT_MIN_SPAN_DAYS = 90


def flat_pixels(ndvi: np.ndarray, amplitude: float = FLAT_AMPLITUDE,
                step_days: int = STEP_DAYS) -> np.ndarray:
    """(N,) True for the series of ``ndvi`` (N, T) that show no season (see
    :data:`FLAT_AMPLITUDE`, :data:`FLAT_MIN_OBS`, :data:`FLAT_MIN_SPAN_DAYS`)."""
    y = np.asarray(ndvi, np.float64)
    valid = np.isfinite(y)
    n_obs = valid.sum(axis=1)
    t = y.shape[1]
    first = np.argmax(valid, axis=1)
    last = t - 1 - np.argmax(valid[:, ::-1], axis=1)
    cand = (n_obs >= FLAT_MIN_OBS) & ((last - first) * step_days >= FLAT_MIN_SPAN_DAYS)
    out = np.zeros(len(y), bool)
    if amplitude <= 0 or not cand.any():
        return out
    ys = np.sort(y[cand], axis=1)  # NaN last
    k = n_obs[cand]
    out[cand] = (_sorted_quantile(ys, k, 0.9) - _sorted_quantile(ys, k, 0.1)) < amplitude
    return out


def _sorted_quantile(ys: np.ndarray, k: np.ndarray, q: float) -> np.ndarray:
    """Per row, the ``q`` quantile of the ``k`` leading values of ``ys`` (rows sorted, NaN
    last), interpolated linearly as ``np.nanpercentile`` does, without its per-row loop."""
    pos = q * (k - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, k - 1)
    rows = np.arange(len(ys))
    return ys[rows, lo] + (pos - lo) * (ys[rows, hi] - ys[rows, lo])
