"""Mowing event detectors on NDVI series of the 6-day grid.

Every detector takes one batch of per-pixel (or per-parcel) series on the
regular 6-day grid and returns a boolean ``(N, T)`` event mask: ``True`` at the
bin in which a cut is dated. The inputs are

* ``ndvi`` ``(N, T)``: NDVI, NaN where there is no value (a raw series: only
  clear observations; a filled series: every date),
* ``std`` ``(N, T)``: its standard deviation (the filler's uncertainty; NaN or
  0 where unknown, e.g. raw observations or a linear fill),
* ``days`` ``(T,)``: day numbers (any origin) of the bin centres, and
* ``doy`` ``(T,)``: day of year of the bin centres (for the season window).

Methods (see :data:`METHODS`):

``drop``
    Rule-based NDVI drop detection after Kolecka et al. (2018), "Regional scale
    mapping of grassland mowing frequency with Sentinel-2 time series", Remote
    Sensing 10(8):1221: spikes (single low values between two higher ones, the
    signature of residual clouds and haze) are removed, then every decrease
    from a vegetated local maximum to the following local minimum that is
    larger than a fixed NDVI threshold and happens within a short time is a
    cut, dated in the steepest step of the decrease; a minimum interval
    between cuts stands for the regrowth time.
``zdrop``
    The same candidates, but the decrease must be significant against the
    uncertainty of the two values it compares: ``amplitude / sqrt(s_peak**2 +
    s_trough**2) >= z``, with ``s**2 = std**2 + obs_noise**2`` (the filler's
    predicted std plus the noise of a clear observation). This follows the idea
    of Schwieder et al. (2022), "Mapping grassland mowing events across Germany
    based on combined Sentinel-2 and Landsat 8 time series", Remote Sensing of
    Environment 269:112795, who accept a drop only when it exceeds the noise of
    the series, with the per-date noise here given by the gap filler: a drop
    that lives only inside a long gap (large std) needs to be larger, one
    between two clear observations is accepted at a lower amplitude.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: Detector names accepted by :func:`detect` (the threshold rules).
METHODS = ("drop", "zdrop")
#: The learned detectors (:mod:`pipeline.mowing.learned`; weights ``model.mowing.SHIPPED``):
#: the GRU ensemble and the narrow GRU distilled from it (faster, as accurate across domains).
LEARNED = ("learned", "learned-fast")
#: Detectors of the ``mowing`` and ``mowing-table`` commands: the rules and the learned.
DETECTORS = (*METHODS, *LEARNED)
#: Default detector of ``mowing-table`` and of the per-parcel events of ``mowing``: the
#: ensemble (mean F1 0.848 across domains against the distilled network's 0.846), where
#: the series are few (a table's plots, a run's parcels) and its cost does not matter.
DEFAULT_DETECTOR = "learned"
#: Default detector of ``mowing``'s per-pixel rasters: the distilled network, tied with
#: the ensemble within the seed spread across domains (every domain within 0.009) at a
#: fifth of its CPU time, which per pixel is the difference between 3-4 and 17-19
#: core-hours for a country the size of Lithuania.
PIXEL_DETECTOR = "learned-fast"
#: Most cuts reported per series (grassland in Europe: up to 5-6 cuts a year).
MAX_EVENTS = 6


@dataclass(frozen=True)
class DetectParams:
    """Thresholds of the detectors (NDVI units and days).

    The field defaults are the a priori values :data:`PRIOR` (set before looking at
    any reference data); the values :func:`detect` uses by default are
    :data:`DEFAULTS`, chosen per detector on the Slovak training plots only.

    Attributes:
        min_drop: smallest NDVI decrease that counts as a cut (``drop``), and
            the floor below which ``zdrop`` accepts nothing.
        z: significance of a decrease in units of its standard deviation (``zdrop``).
        obs_noise: NDVI noise of one clear observation (added to the filler std).
        min_peak: NDVI the sward must reach before a cut (cuts of bare soil are noise).
        max_fall_days: longest time a decrease may take (a cut is instantaneous;
            slow decreases are senescence or drought).
        min_gap_days: shortest interval between two cuts (regrowth).
        spike: a value lower than both neighbours by this much, whose neighbours
            agree to within half of it and lie at most ``spike_days`` apart, is a
            residual cloud and removed.
        spike_days: see ``spike``.
        season: first and last day of year a cut may be dated in.
        regrow: after a cut the sward regrows: within ``regrow_days`` of the
            trough NDVI must climb back by this share of the drop (0 = no check).
            Separates cuts from senescence and drought, which do not recover.
        regrow_days: see ``regrow``.
        date_offset: days added to the date of a cut. A drop is dated between the
            last high and the first low value; a cut inside the first low 6-day bin
            lies on average half a bin later.
    """

    min_drop: float = 0.10
    z: float = 2.0
    obs_noise: float = 0.03
    min_peak: float = 0.4
    max_fall_days: float = 30.0
    min_gap_days: float = 24.0
    spike: float = 0.2
    spike_days: float = 14.0
    season: tuple[int, int] = (100, 305)
    regrow: float = 0.0
    regrow_days: float = 42.0
    date_offset: float = 0.0

    def with_(self, **kw: object) -> DetectParams:
        """A copy with some fields changed."""
        return replace(self, **kw)  # type: ignore[arg-type]


#: A priori thresholds, set without fitting to any reference data: a 0.1 NDVI drop
#: (about three times the noise of a clear observation) within a month from a
#: vegetated sward (0.4), cuts at least 24 days apart (regrowth), isolated dips of
#: 0.2 removed as residual clouds, cuts dated 10 April to 1 November.
PRIOR = DetectParams()

#: Thresholds :func:`detect` uses by default (filled series), per detector: chosen on
#: the Slovak training plots only (``train/S2`` with ``train/mowing_events.gpkg``,
#: series filled by SF 1.2.0 from NDVI alone, F1 at ±12 days) by the coordinate
#: search of ``benchmarks/bench_mowing.py``, which starts from :data:`PRIOR`. The
#: camera parcels (``test/``) played no part in the choice, and SF never saw their
#: series. Held-out F1 of these on the camera parcels is in
#: ``benchmarks/figures/mowing_benchmark.md``. The search settled on a later, shorter
#: season window (25 May to 17 September: spring green-up and autumn senescence
#: make false cuts), a drop of 0.12 (``zdrop``: 0.15), a month between cuts, a lower
#: spike threshold and later dates (a drop is dated between the last high and the
#: first low value; the cut lies on average later).
DEFAULTS: dict[str, DetectParams] = {
    "drop": PRIOR.with_(min_drop=0.12, max_fall_days=24.0, min_gap_days=30.0, spike=0.1,
                        season=(145, 260), date_offset=6.0),
    "zdrop": PRIOR.with_(min_drop=0.15, min_gap_days=30.0, spike=0.1, season=(145, 260),
                         date_offset=3.0),
}

#: Thresholds for raw series (the 6-day bins' clear observations only, no fill), per
#: detector, chosen the same way on the Slovak training plots (``zdrop`` on a raw
#: series has no fill std and reduces to ``drop``). See :func:`default_params`.
RAW_DEFAULTS: dict[str, DetectParams] = {
    m: PRIOR.with_(min_drop=0.12, min_peak=0.3, max_fall_days=18.0, min_gap_days=30.0,
                   spike=0.1, season=(145, 260))
    for m in METHODS
}

#: Which series a detector runs on: the gap-filled one or the observations alone.
SERIES = ("filled", "observed")


def default_params(method: str, series: str = "filled") -> DetectParams:
    """The shipped thresholds of ``method`` for a ``filled`` or an ``observed`` series."""
    if series not in SERIES:
        raise ValueError(f"unknown series {series!r}; use one of {SERIES}")
    return (DEFAULTS if series == "filled" else RAW_DEFAULTS)[method]


def _despike(t: np.ndarray, y: np.ndarray, p: DetectParams) -> np.ndarray:
    """Indices of the points kept after removing isolated low spikes."""
    keep = np.ones(len(y), bool)
    for i in range(1, len(y) - 1):
        a, b = y[i - 1], y[i + 1]
        if (
            y[i] < min(a, b) - p.spike
            and abs(a - b) < p.spike / 2
            and t[i + 1] - t[i - 1] <= p.spike_days
        ):
            keep[i] = False
    return np.flatnonzero(keep)


def _candidates(t: np.ndarray, y: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Decreasing runs ``(peak, trough, steep_from, steep_to)`` as point indices.

    ``steep_from``..``steep_to`` is the steepest part of the decrease.
    """
    out = []
    i, n = 0, len(y)
    while i < n - 1:
        if y[i + 1] >= y[i]:
            i += 1
            continue
        j = i
        while j < n - 1 and y[j + 1] < y[j]:
            j += 1
        steps = np.diff(y[i : j + 1])
        k = int(np.argmin(steps))
        # equally steep neighbours (a linear fill across a gap) share the drop:
        # the cut lies somewhere in the whole block, so it is dated in its middle
        a = b = k
        while a > 0 and steps[a - 1] <= 0.8 * steps[k]:
            a -= 1
        while b < len(steps) - 1 and steps[b + 1] <= 0.8 * steps[k]:
            b += 1
        out.append((i, j, i + a, i + b + 1))
        i = j
    return out


def detect_series(
    t: np.ndarray,
    y: np.ndarray,
    s: np.ndarray,
    doy: np.ndarray,
    method: str,
    p: DetectParams,
) -> list[float]:
    """Cut dates (same units as ``t``) of one series given at its valid points.

    ``t`` are the days of the valid points (increasing), ``y`` their NDVI, ``s``
    their std (0 where unknown), ``doy`` their day of year.
    """
    if len(y) < 3:
        return []
    keep = _despike(t, y, p)
    t, y, s, doy = t[keep], y[keep], s[keep], doy[keep]
    found: list[tuple[float, float]] = []  # (date, score)
    for i, j, a, b in _candidates(t, y):
        amp = float(y[i] - y[j])
        if y[i] < p.min_peak or amp < p.min_drop:
            continue
        if t[j] - t[i] > p.max_fall_days:
            # a slow decline: only its steepest part may be a cut
            amp = float(y[a] - y[b])
            if amp < p.min_drop or t[b] - t[a] > p.max_fall_days:
                continue
            i, j = a, b
        if p.regrow > 0:
            after = y[(t > t[j]) & (t <= t[j] + p.regrow_days)]
            if after.size == 0 or after.max() - y[j] < p.regrow * amp:
                continue
        if method == "zdrop":
            sig = float(np.sqrt(s[i] ** 2 + s[j] ** 2 + 2 * p.obs_noise**2))
            score = amp / sig
            if score < p.z:
                continue
        else:
            score = amp
        when = 0.5 * (t[a] + t[b]) + p.date_offset
        d = 0.5 * (doy[a] + doy[b])
        if not p.season[0] <= d <= p.season[1]:
            continue
        found.append((float(when), score))
    # cuts closer than the regrowth time: keep the stronger one
    found.sort(key=lambda e: -e[1])
    kept: list[float] = []
    for when, _ in found:
        if all(abs(when - w) >= p.min_gap_days for w in kept):
            kept.append(when)
    return sorted(kept)


def _packed(keep: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each row's kept values moved to its front, in order (the rest after them), and a
    mask of the front part: the series' points as :func:`detect_series` sees them.

    Rows whose kept values are at the front already are left as they are (a filled
    series, or one without spikes); the arrays are copied only when some row moves.
    """
    moves = np.flatnonzero((keep[:, 1:] & ~keep[:, :-1]).any(axis=1))
    count = keep.sum(axis=1)
    front = np.arange(keep.shape[1])[None, :] < count[:, None]
    if moves.size == 0:
        return (front, *arrays)
    order = np.argsort(~keep[moves], axis=1, kind="stable")
    out = []
    for a in arrays:
        a = a.copy()
        a[moves] = np.take_along_axis(a[moves], order, axis=1)
        out.append(a)
    return (front, *out)


def _despiked(t: np.ndarray, y: np.ndarray, on: np.ndarray, p: DetectParams) -> np.ndarray:
    """:func:`_despike` for every row of packed series: the mask of the points kept."""
    a, mid, b = y[:, :-2], y[:, 1:-1], y[:, 2:]
    with np.errstate(invalid="ignore"):
        spike = (
            (mid < np.minimum(a, b) - p.spike)
            & (np.abs(a - b) < p.spike / 2)
            & (t[:, 2:] - t[:, :-2] <= p.spike_days)
            & on[:, 2:]
        )
    keep = on.copy()
    keep[:, 1:-1] &= ~spike
    return keep


def _candidate_table(y: np.ndarray, on: np.ndarray, min_peak: float, min_drop: float
                     ) -> tuple[np.ndarray, ...]:
    """:func:`_candidates` of every row at once, for the decreasing runs that start at
    ``min_peak`` or above and fall by ``min_drop`` or more (no other can be a cut):
    ``(row, peak, trough, steep_from, steep_to)`` arrays, by row and then in time order."""
    with np.errstate(invalid="ignore"):
        down = (y[:, 1:] < y[:, :-1]) & on[:, 1:]
    rows, pos = np.nonzero(down)
    empty = np.zeros(0, np.intp)
    if rows.size == 0:
        return empty, empty, empty, empty, empty
    # a run starts where the previous step of the same row was not a decrease
    first = np.ones(rows.size, bool)
    first[1:] = (rows[1:] != rows[:-1]) | (pos[1:] != pos[:-1] + 1)
    start = np.flatnonzero(first)
    last = np.append(start[1:], rows.size) - 1
    peak, trough = y[rows[start], pos[start]], y[rows[start], pos[last] + 1]
    tall = (peak >= min_peak) & (peak - trough >= min_drop)
    # keep the steps of those runs only
    length = last - start + 1
    sel = np.repeat(tall, length)
    rows, pos = rows[sel], pos[sel]
    if rows.size == 0:
        return empty, empty, empty, empty, empty
    start = np.cumsum(np.append(0, length[tall][:-1]))
    last = np.append(start[1:], rows.size) - 1
    first = np.zeros(rows.size, bool)
    first[start] = True
    run = np.cumsum(first) - 1
    step = y[rows, pos + 1] - y[rows, pos]
    steepest = np.minimum.reduceat(step, start)
    # the first steepest step of each run, and the block of steps around it that are at
    # least 0.8 as steep (a linear fill across a gap: the cut lies somewhere in it)
    k = np.minimum.reduceat(np.where(step == steepest[run], np.arange(rows.size), rows.size),
                            start)
    steep = step <= 0.8 * steepest[run]
    change = first.copy()
    change[1:] |= steep[1:] != steep[:-1]
    block_start = np.flatnonzero(change)
    block_last = np.append(block_start[1:], rows.size) - 1
    block = np.cumsum(change)[k] - 1
    a, b = block_start[block], block_last[block]
    return rows[start], pos[start], pos[last] + 1, pos[a], pos[b] + 1


def detect(
    ndvi: np.ndarray,
    std: np.ndarray | None,
    days: np.ndarray,
    doy: np.ndarray,
    method: str = "zdrop",
    params: DetectParams | None = None,
    max_events: int = MAX_EVENTS,
) -> np.ndarray:
    """Cut dates per series: ``(N, max_events)`` day numbers (units of ``days``), NaN padded.

    The same cuts as :func:`detect_series` on each row's valid points, computed for all
    rows at once (array operations over the rows and their decreasing runs; the only
    loop left is over the few candidates a series has, for the regrowth spacing).

    Args:
        ndvi: ``(N, T)`` NDVI, NaN = no value.
        std: ``(N, T)`` standard deviation or None (unknown = 0).
        days: ``(T,)`` day numbers of the bin centres.
        doy: ``(T,)`` day of year of the bin centres.
        method: one of :data:`METHODS`.
        params: thresholds; default :data:`DEFAULTS` of the method.
        max_events: at most this many cuts per series (the earliest are kept).
    """
    if method not in METHODS:
        raise ValueError(f"unknown mowing method {method!r}; use one of {METHODS}")
    p = params or DEFAULTS[method]
    ndvi = np.asarray(ndvi, np.float64)
    n, width = ndvi.shape
    sd = np.zeros_like(ndvi) if std is None else np.nan_to_num(np.asarray(std, np.float64))
    grid = np.broadcast_to(np.asarray(days, np.float64), ndvi.shape)
    season = np.broadcast_to(np.asarray(doy, np.float64), ndvi.shape)
    out = np.full((n, max_events), np.nan)
    ok = np.isfinite(ndvi)
    ok &= (ok.sum(axis=1) >= 3)[:, None]
    on, t, y, s, d = _packed(ok, grid, ndvi, sd, season)
    on, t, y, s, d = _packed(_despiked(t, y, on, p), t, y, s, d)
    row, i, j, a, b = _candidate_table(y, on, p.min_peak, p.min_drop)
    amp = y[row, i] - y[row, j]
    good = np.ones(row.size, bool)
    # a slow decline: only its steepest part may be a cut
    slow = t[row, j] - t[row, i] > p.max_fall_days
    steep_amp = y[row, a] - y[row, b]
    good &= ~slow | ((steep_amp >= p.min_drop) & (t[row, b] - t[row, a] <= p.max_fall_days))
    i, j = np.where(slow, a, i), np.where(slow, b, j)
    amp = np.where(slow, steep_amp, amp)
    if p.regrow > 0:
        tj = t[row, j][:, None]
        after = on[row] & (t[row] > tj) & (t[row] <= tj + p.regrow_days)
        top = np.where(after, y[row], -np.inf).max(axis=1)
        good &= after.any(axis=1) & ~(top - y[row, j] < p.regrow * amp)
    if method == "zdrop":
        score = amp / np.sqrt(s[row, i] ** 2 + s[row, j] ** 2 + 2 * p.obs_noise**2)
        good &= score >= p.z
    else:
        score = amp
    when = 0.5 * (t[row, a] + t[row, b]) + p.date_offset
    mid = 0.5 * (d[row, a] + d[row, b])
    good &= (p.season[0] <= mid) & (mid <= p.season[1])
    row, when, score = row[good], when[good], score[good]
    # cuts closer than the regrowth time: the stronger one is kept (ties: the earlier),
    # visiting each row's candidates strongest first
    order = np.lexsort((np.arange(row.size), -score, row))
    row, when = row[order], when[order]
    new_row = np.ones(row.size, bool)
    new_row[1:] = row[1:] != row[:-1]
    heads = np.flatnonzero(new_row)
    rank = np.arange(row.size) - np.repeat(heads, np.diff(np.append(heads, row.size)))
    kept = np.full((n, width), np.nan)
    count = np.zeros(n, np.intp)
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        at = rank == r
        rr, ww = row[at], when[at]
        near = np.abs(ww[:, None] - kept[rr]) < p.min_gap_days
        free = ~near.any(axis=1)
        rr, ww = rr[free], ww[free]
        kept[rr, count[rr]] = ww
        count[rr] += 1
    kept.sort(axis=1)
    m = min(max_events, width)
    out[:, :m] = kept[:, :m]
    return out
