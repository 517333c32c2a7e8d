"""Events from the learned detector's per-bin probabilities (:mod:`model.mowing`).

The network gives, per 6-day bin, the probability that a cut happened in it. An
event is a local maximum of that probability; its probability is that of a cut in
the peak bin or one of its two neighbours (``1 - prod(1 - p)`` over the three: a cut
near a bin boundary splits its evidence between two bins), its date the
probability-weighted mean of the three bin centres. Events below the threshold are
dropped, and of two events closer than the regrowth time the likelier is kept. The
threshold and the regrowth time are the detector card's (``model.mowing.DECODE``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline.mowing.detect import MAX_EVENTS


@functools.lru_cache(maxsize=4)
def load(path: str | None = None) -> Any:
    """The detector of ``path`` (default: the shipped weights), loaded once per process."""
    from model.mowing import load_detector

    return load_detector(path)


def shipped(name: str = "learned") -> Any:
    """A shipped detector by its ``--detector`` name (``learned``, ``learned-fast``)."""
    from model.mowing import default_detector_weights

    return load(str(default_detector_weights(name)))


@contextlib.contextmanager
def threads_for(workers: int) -> Iterator[None]:
    """Torch's intra-op threads while ``workers`` threads run detectors side by side.

    The cores are shared out (at least one thread each) and the previous setting is
    restored afterwards. Left at torch's default (one thread per core), each worker's
    larger operations would start a team of that size on cores the other workers
    already use and spin-wait there: the same probabilities, about a quarter more CPU
    time and wall time (``write_cut_days`` on two cores, measured).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decode(prob: np.ndarray, days: np.ndarray, threshold: float, min_gap_days: float,
           max_events: int = MAX_EVENTS) -> tuple[np.ndarray, np.ndarray]:
    """Cut dates and their probabilities from ``(N, T)`` per-bin probabilities.

    ``days``: ``(T,)`` or ``(N, T)`` day numbers of the bin centres. Returns two
    ``(N, max_events)`` arrays (dates in units of ``days``, probabilities), NaN padded,
    dates increasing.
    """
    prob = np.asarray(prob, np.float64)
    n, t = prob.shape
    days = np.asarray(days, np.float64)
    if days.shape != (t,):  # (T,) days stay one row, broadcast in the arithmetic
        days = np.broadcast_to(days, (n, t))
    # each bin's neighbours: probability 0 and day NaN beyond the ends
    left = np.zeros_like(prob)
    left[:, 1:] = prob[:, :-1]
    right = np.zeros_like(prob)
    right[:, :-1] = prob[:, 1:]
    mass = 1 - (1 - prob) * (1 - left) * (1 - right)
    peak = (prob >= left) & (prob >= right) & (prob > 0) & (mass >= threshold)
    # the date of each peak (no other bin's is read): the weighted mean of the bin
    # centres, a neighbour beyond the season's ends weighing nothing
    r, c = np.nonzero(peak)

    def day(k: np.ndarray) -> np.ndarray:  # the day of bin k of each peak's row, NaN off the ends
        on = (k >= 0) & (k < t)
        k = np.clip(k, 0, t - 1)
        return np.where(on, days[k] if days.ndim == 1 else days[r, k], np.nan)

    p, lp, rp = prob[r, c], left[r, c], right[r, c]
    dl, dr = day(c - 1), day(c + 1)
    wsum = p + np.where(np.isfinite(dl), lp, 0) + np.where(np.isfinite(dr), rp, 0)
    when = np.full(prob.shape, np.nan)
    when[r, c] = (p * day(c) + np.nan_to_num(lp * dl) + np.nan_to_num(rp * dr)) / \
        np.maximum(wsum, 1e-12)
    return _keep_spaced(peak, mass, when, min_gap_days, max_events)


def _keep_spaced(peak: np.ndarray, mass: np.ndarray, when: np.ndarray, min_gap_days: float,
                 max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Of each row's peaks, likeliest first, those at least ``min_gap_days`` from all kept.

    Vectorised over rows: the peaks of every row are ranked by probability (ties: the
    earlier bin first), and rank by rank a peak is kept where no kept one lies closer.
    Returns the kept dates and probabilities in date order, ``(N, max_events)``, NaN
    padded.
    """
    n = len(peak)
    dates = np.full((n, max_events), np.nan)
    probs = np.full((n, max_events), np.nan)
    rows = np.flatnonzero(peak.any(axis=1))
    if not len(rows):
        return dates, probs
    pk, m, w = peak[rows], mass[rows], when[rows]
    k = int(pk.sum(axis=1).max())
    order = np.argsort(np.where(pk, -m, np.inf), axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(pk, order, 1)
    cw = np.take_along_axis(w, order, 1)
    cm = np.take_along_axis(m, order, 1)
    kept = np.zeros_like(ok)
    for j in range(k):
        near = kept[:, :j] & (np.abs(cw[:, :j] - cw[:, j:j + 1]) < min_gap_days)
        kept[:, j] = ok[:, j] & ~near.any(axis=1)
    cw = np.where(kept, cw, np.inf)
    by_date = np.argsort(cw, axis=1, kind="stable")[:, :max_events]
    kw = np.take_along_axis(cw, by_date, 1)
    km = np.take_along_axis(cm, by_date, 1)
    on = np.isfinite(kw)
    e = by_date.shape[1]
    dates[rows, :e] = np.where(on, kw, np.nan)
    probs[rows, :e] = np.where(on, km, np.nan)
    return dates, probs


def detect_learned(ndvi: np.ndarray, days: np.ndarray, doy: np.ndarray,
                   detector: Any = None, min_probability: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Cut dates and probabilities ``(N, MAX_EVENTS)`` for ``(N, T)`` observed NDVI.

    ``ndvi`` holds the bins' clear observations (NaN = none): the detector reads the
    observations and their pattern of gaps, not a fill. ``detector``: a loaded detector
    or a shipped one's name (default ``learned``). ``min_probability`` raises the
    threshold of the detector's card (never lowers it below that).
    """
    det = detector if detector is not None and not isinstance(detector, str) else \
        shipped(detector or "learned")
    thr = det.threshold if min_probability is None else max(det.threshold, min_probability)
    ok = np.isfinite(ndvi).sum(axis=1) >= 3
    dates = np.full((len(ndvi), MAX_EVENTS), np.nan)
    probs = np.full_like(dates, np.nan)
    if ok.any():
        doy_a = np.asarray(doy, np.float32)
        if doy_a.ndim == 2:  # per-row dates; (T,) dates stay one row
            doy_a = np.broadcast_to(doy_a, np.shape(ndvi))[ok]
        p = det.predict_proba(np.asarray(ndvi, np.float32)[ok], doy_a)
        d = np.asarray(days, np.float64)
        if d.ndim == 2:
            d = np.broadcast_to(d, np.shape(ndvi))[ok]
        dates[ok], probs[ok] = decode(p, d, thr, det.min_gap_days)
    return dates, probs
