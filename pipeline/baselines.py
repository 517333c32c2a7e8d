"""Classic gap fillers as vectorised numpy kernels.

Every kernel takes ``y`` of shape ``(N, T)`` (one series per row, NaN = gap,
equally spaced dates) and returns a gap-free array of the same shape. Rows
without any observation stay all-NaN. Outside the first/last observation the
nearest observed value is carried (no extrapolated trends).
"""

from __future__ import annotations

import numpy as np


def _neighbour_indices(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    prev, nxt = _neighbour_indices(valid)
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
