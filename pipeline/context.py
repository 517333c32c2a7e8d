"""Same-date context from the field: clear pixels of a parcel or segment fill its cloudy ones.

A per-pixel filler interpolates across a date on which part of the field was clear.
The clear part says what the field looked like that day: the pixels of one parcel
share its crop, its management (a cut, a harvest) and its weather, and differ from
each other by offsets that change slowly (soil, sowing density, the border). So, for
a pixel ``p`` of zone ``z`` without a clear observation on date ``t`` while other
pixels of ``z`` are clear:

* the zone's clear mean ``m[z, t]`` (clear pixels of that date, the pixel itself
  excluded where it is clear, so its own value never sets its offset);
* the pixel's offset to its zone ``d[p, s] = ndvi[p, s] - m[z, s]`` on the pixel's
  own clear dates ``s``, interpolated linearly to ``t`` (nearest value beyond the
  ends; zero for a pixel with no clear date of its own);
* the context estimate ``c = m[z, t] + d[p, t]``.

Its error variance is measured on the tile itself, on clear pixel-dates where the
answer is known (:func:`calibrate`), in two ways. Leaving one pixel out gives
``v_pix`` per clear-share bin: the error when a few scattered pixels are missing.
But clouds are contiguous, and a field's anomaly on a date is spatially correlated
(irrigation, a part cut first, a haze band): the clear part then tells less about the
hidden part than scattered pixels do. So each zone is also split in halves through
its centroid (west/east and north/south) and each half predicted from the other one
alone, giving ``v_half``, the error when half the field is hidden. The variance used
for a cell whose zone is clear by a share ``s`` goes from ``v_pix`` (one pixel hidden)
through ``v_half`` at ``s = 0.5`` and beyond it: ``v_pix(s) + max(v_half - v_pix, 0)
* (1 - s) / 0.5``.

The context estimate and the filler's own estimate (mean ``f``, std ``s``) are
combined by inverse variance, ``f + a s^2 / (a s^2 + v_c) * (c - f)``, and the std of
the combination is ``sqrt(a s^2 v_c / (a s^2 + v_c))``. The filler's std was
calibrated on its training regions, and on a tile its reliability differs by land
cover (on the demo world SF's std is about four times too wide on forest and about
right on maize), while the weight of the blend rests on it. So the filler is checked
on the tile as the context is (:func:`check_filler`): in a few pixels of every zone
(:data:`CHECK_PIXELS`, or :data:`CHECK_SHARE` of a large one, and
:data:`CHECK_MIN_PIXELS` over the tile at least, chosen by a hash of their
coordinates, so the choice does not depend on chunks) :data:`CHECK_DATES` clear dates
are hidden and refilled, and ``a`` is the zone's ratio of squared error to predicted
variance, shrunk toward the tile's pooled ratio with Bühlmann's credibility (the prior
weight estimated from the spread of the ratios within and between zones, not set by
hand). Without such a check (a filler without std, or none given) ``a = 1``.

Where the zone has fewer than ``MIN_CLEAR`` clear pixels on the date, where a pixel
has no zone, or where the pixel is itself observed, the filler's output is kept
unchanged: without context the product is what it was.

Segments are the run's own guess at fields, drawn from the season's composites, and a
narrow track or a strip of built-up land is merged into the field beside it. Such a
pixel does not share its segment's season, which the context would lend it. So with
segments (:attr:`ZoneContext.flat_zone`) a pixel whose clear observations show
no season (:func:`pipeline.baselines.flat_pixels`) takes no context from a zone whose
clear mean shows one (:func:`flat_zones`). A parcel is a declared field, managed as
one: there every pixel takes its parcel's context (on the demo worlds this rule would
cost parcels 0.1-0.2 points of their gain over all cloudy cells and 0.6-2.7 on partly
clear ones, and would spare no land cover a loss).

The zone tables (per zone and date: pixels, clear pixels, sum of clear NDVI, the
same per half zone) are sums over chunks, so a parcel that crosses a chunk or tile border
gets the same context as one that does not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pipeline.baselines import flat_pixels, linear, neighbour_indices
from pipeline.zones import zone_date_sums

#: The context's method, part of a zoned tile's fill signature: a run filled by another
#: method is not resumed chunk by chunk with this one.
CONTEXT_METHOD = ("zone mean + offset, half-zone variance, filler checked on the tile; "
                  "segments: pixels without a season take none from zones with one")
#: Fewest clear pixels of a zone on a date for its mean to be used (a handful of
#: pixels next to a cloud edge are the most likely to be hazy or shadowed).
MIN_CLEAR = 4
#: Floor of the offset interpolation variance (NDVI^2): the SCL-clear noise of one
#: pixel (about 0.02 NDVI, haze and residual shadow) bounds how well any offset holds.
VAR_FLOOR = 0.02**2
#: Prior weight (in pixel-dates) that shrinks a zone's offset variance toward the
#: pooled one, so a zone with few clear dates does not claim a tiny error.
PRIOR_WEIGHT = 20.0


@dataclass(frozen=True)
class ZoneTable:
    """Per zone (row 0 = no zone) and date: clear-pixel statistics of NDVI.

    Attributes:
        n_pixels: (K+1,) pixels of the zone inside the grid.
        n_clear: (K+1, T) clear pixels of the zone on each date.
        sum_ndvi: (K+1, T) sum of the clear pixels' NDVI.
        half_clear: (4, K+1, T) clear pixels per half of the zone (west, east, north,
            south of its centroid; zeros when the halves are not known).
        half_sum: (4, K+1, T) sum of their NDVI.
    """

    n_pixels: np.ndarray
    n_clear: np.ndarray
    sum_ndvi: np.ndarray
    half_clear: np.ndarray
    half_sum: np.ndarray

    def __add__(self, other: ZoneTable) -> ZoneTable:
        return ZoneTable(self.n_pixels + other.n_pixels, self.n_clear + other.n_clear,
                         self.sum_ndvi + other.sum_ndvi,
                         self.half_clear + other.half_clear, self.half_sum + other.half_sum)

    def without_halves(self) -> ZoneTable:
        """The same table without the half-zone sums (all the fill of a block needs)."""
        empty = np.zeros((4, 0, 0))
        return ZoneTable(self.n_pixels, self.n_clear, self.sum_ndvi, empty, empty)

    @property
    def clear_share(self) -> np.ndarray:
        """(K+1, T) share of the zone's pixels clear on each date."""
        return self.n_clear / np.maximum(self.n_pixels, 1)[:, None]


def zone_centroids(zone: np.ndarray, x: np.ndarray, y: np.ndarray, n_zones: int
                   ) -> np.ndarray:
    """(3, K+1) pixel count and sums of x and y per zone of a block (add over blocks).

    ``x`` and ``y`` are the block's pixel-centre coordinates, broadcastable to ``zone``.
    """
    z = np.asarray(zone).reshape(-1).astype(np.int64)
    xx = np.broadcast_to(x, np.shape(zone)).reshape(-1)
    yy = np.broadcast_to(y, np.shape(zone)).reshape(-1)
    k = n_zones + 1
    return np.stack([np.bincount(z, minlength=k).astype(np.float64),
                     np.bincount(z, weights=xx, minlength=k),
                     np.bincount(z, weights=yy, minlength=k)])


def zone_sides(zone: np.ndarray, x: np.ndarray, y: np.ndarray, centroids: np.ndarray
               ) -> np.ndarray:
    """Side code per pixel: bit 0 set east of the zone's centroid, bit 1 set south of it.

    ``centroids`` is the (3, K+1) sum of :func:`zone_centroids` over the whole cube, so
    a pixel's side does not depend on the block it is in.
    """
    z = np.asarray(zone).astype(np.int64)
    n = np.maximum(centroids[0], 1)
    cx, cy = centroids[1] / n, centroids[2] / n
    east = np.broadcast_to(x, z.shape) > cx[z]
    south = np.broadcast_to(y, z.shape) < cy[z]
    return (east.astype(np.int8) + 2 * south.astype(np.int8)).astype(np.int8)


def zone_table(zone: np.ndarray, ndvi: np.ndarray, n_zones: int,
               sides: np.ndarray | None = None) -> ZoneTable:
    """Zone sums of one block: ``zone`` (y, x) ints (0 = none), ``ndvi`` (..., T) NaN = not clear.

    ``ndvi`` has the block's spatial shape followed by time (time last); ``sides``
    (:func:`zone_sides`, the block's spatial shape) adds the sums per half of each zone.
    """
    z = np.asarray(zone).astype(np.int64)
    if z.size and (z.min() < 0 or z.max() > n_zones):
        raise ValueError(f"zone ids must lie in 0..{n_zones}")
    z = z.reshape(np.shape(ndvi)[:-1])
    by_date = np.moveaxis(np.asarray(ndvi), -1, 0)  # the sums take time first
    whole = zone_date_sums(z, by_date, n_zones)
    k, t = n_zones + 1, by_date.shape[0]
    h_clear = np.zeros((4, k, t), np.int64)
    h_sum = np.zeros((4, k, t))
    if sides is not None:
        code = np.asarray(sides).reshape(z.shape).astype(np.int64)
        for h, member in enumerate(_half_members(code)):
            half = zone_date_sums(np.where(member, z, 0), by_date, n_zones)
            h_clear[h], h_sum[h] = half.clear, half.ndvi_sum
    return ZoneTable(np.bincount(z.reshape(-1), minlength=k).astype(np.int64),
                     whole.clear.astype(np.int64), whole.ndvi_sum, h_clear, h_sum)


def _half_members(code: np.ndarray) -> list[np.ndarray]:
    """Pixels in the west, east, north and south halves, from the side codes."""
    east = (code & 1) > 0
    south = (code & 2) > 0
    return [~east, east, ~south, south]


#: Clear-share bins of the error calibration (share of the zone's other pixels clear).
SHARE_EDGES = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0 + 1e-9])
#: Error variance assumed where a tile offers no cell to calibrate on (NDVI^2): large, so
#: the filler's own estimate keeps most of the weight.
VAR_DEFAULT = 0.05**2


@dataclass(frozen=True)
class FillerCheck:
    """The filler's errors on clear cells hidden and refilled, per zone (sums over blocks).

    Attributes:
        n: (K+1,) cells scored per zone (row 0 = no zone, never scored).
        sq_err: (K+1,) sum of squared errors of the filler's mean.
        var: (K+1,) sum of the variances the filler predicted for those cells.
        ratio: (K+1,) sum of the per-cell ratios squared error / predicted variance.
        ratio_sq: (K+1,) sum of their squares (for the spread within a zone).
    """

    n: np.ndarray
    sq_err: np.ndarray
    var: np.ndarray
    ratio: np.ndarray
    ratio_sq: np.ndarray

    def __add__(self, other: FillerCheck) -> FillerCheck:
        return FillerCheck(self.n + other.n, self.sq_err + other.sq_err, self.var + other.var,
                           self.ratio + other.ratio, self.ratio_sq + other.ratio_sq)

    def scale(self) -> np.ndarray:
        """(K+1,) factor on the filler's variance per zone (:meth:`_scale`, computed once
        per check: every block of the fill asks for it)."""
        return self._scale

    @functools.cached_property
    def _scale(self) -> np.ndarray:
        """(K+1,) factor on the filler's variance per zone (1 for row 0 and without cells).

        The zone's ratio of summed squared errors to summed predicted variances, weighted
        ``n / (n + k)`` against the pooled ratio, with Bühlmann's ``k`` = expected
        variance of a cell's ratio within a zone / variance of the zones' true ratios
        (between-zone variance of the zone means less its sampling part). Where the zones
        do not differ beyond sampling noise, ``k`` is infinite and every zone gets the
        pooled ratio.
        """
        out = np.ones(self.n.shape)
        if self.var.sum() <= 0:
            return out
        pooled = float(self.sq_err.sum() / self.var.sum())
        n = self.n.astype(np.float64)
        many = n >= 2
        many[0] = False
        k = np.inf
        if many.sum() >= 2:
            m = self.ratio[many] / n[many]
            within = (self.ratio_sq[many] - n[many] * m**2) / (n[many] - 1)
            epv = float(within.mean())
            vhm = float(np.var(m, ddof=1)) - epv * float(np.mean(1.0 / n[many]))
            if vhm > 0:
                k = epv / vhm
        own = np.where(self.var > 0, self.sq_err / np.maximum(self.var, 1e-300), pooled)
        w = n / (n + k) if np.isfinite(k) else np.zeros_like(n)
        out = w * own + (1.0 - w) * pooled
        out[0] = 1.0
        return out


#: Pixels per zone (expected) whose clear dates are hidden to check the filler's std...
CHECK_PIXELS = 4
#: ... or this share of a large zone's pixels, whichever is more (the check refills
#: these pixels: about 2 % more filler time with parcels, up to 7 % with small segments).
CHECK_SHARE = 0.02
#: ... and at least this many pixels over the cube's zones (where it has as many), so
#: the tile's pooled ratio rests on some 400 cells (a ratio of one cell scatters as a
#: chi-square of one degree: the mean of 400 is within about 7 %).
CHECK_MIN_PIXELS = 200
#: Clear dates hidden in each checked pixel (inside its first and last clear date).
CHECK_DATES = 2


def _unit_hash(*keys: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) from integer keys (splitmix64), the same on any block."""
    h = np.zeros(np.broadcast(*keys).shape, np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h = h ^ np.asarray(k).astype(np.int64).astype(np.uint64)
            h = h + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def check_cells(ndvi: np.ndarray, zone: np.ndarray, x: np.ndarray, y: np.ndarray,
                n_pixels: np.ndarray) -> np.ndarray:
    """(P, T) clear cells to hide for the filler check (P = the block's pixels).

    A pixel of zone ``z`` is checked where a hash of its coordinates falls below
    ``max(CHECK_PIXELS / n_pixels[z], CHECK_SHARE, CHECK_MIN_PIXELS / n_pixels[1:].sum())``
    (``n_pixels``: the zones' pixels over the cube); of its clear dates strictly between
    its first and last, the ``CHECK_DATES`` with the lowest hash of (coordinates, date) are hidden.
    Coordinates are the pixel centres (``x``, ``y`` broadcastable to ``zone``); they,
    not the block, decide, so any chunking hides the same cells.
    """
    t = ndvi.shape[-1]
    clear = np.isfinite(np.asarray(ndvi)).reshape(-1, t)
    z = np.asarray(zone).reshape(-1).astype(np.int64)
    # the coordinates' own bits: the same on any block, in metres or in degrees
    xq = np.ascontiguousarray(np.broadcast_to(x, np.shape(zone)), np.float64).reshape(-1)
    yq = np.ascontiguousarray(np.broadcast_to(y, np.shape(zone)), np.float64).reshape(-1)
    xq, yq = xq.view(np.int64), yq.view(np.int64)
    n = np.asarray(n_pixels, np.float64)
    floor = max(CHECK_SHARE, CHECK_MIN_PIXELS / max(float(n[1:].sum()), 1.0))
    share = np.maximum(CHECK_PIXELS / np.maximum(n[z], 1.0), floor)
    chosen = (z > 0) & (_unit_hash(xq, yq) < share)
    hide = np.zeros(clear.shape, bool)
    rows = np.flatnonzero(chosen & (clear.sum(axis=1) >= 3))
    if rows.size == 0:
        return hide
    c = clear[rows]
    inner = c & (np.cumsum(c, axis=1) > 1) & (np.cumsum(c[:, ::-1], axis=1)[:, ::-1] > 1)
    key = _unit_hash(xq[rows, None], yq[rows, None], np.arange(t)[None, :])
    order = np.argsort(np.where(inner, key, np.inf), axis=1)[:, :CHECK_DATES]
    pick = np.take_along_axis(inner, order, axis=1)
    hide[rows[:, None], order] = pick
    return hide


def check_filler(ndvi: np.ndarray, zone: np.ndarray, x: np.ndarray, y: np.ndarray,
                 n_pixels: np.ndarray, n_zones: int,
                 fill: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                 ) -> FillerCheck:
    """Hide the :func:`check_cells` of a block, refill them and score the filler per zone.

    ``ndvi`` has the block's spatial shape followed by time; ``zone`` holds the zones'
    table rows (1-based, 0 = none); ``n_pixels`` (K+1,) the zones' pixel counts over the
    cube; ``fill(rows, series)`` fills the series ``(R, T)`` of the block's pixels
    ``rows`` (indices into the flattened block) and returns their (mean, std).
    """
    t = ndvi.shape[-1]
    k = n_zones + 1
    empty = np.zeros(k)
    hide = check_cells(ndvi, zone, x, y, n_pixels)
    rows = np.flatnonzero(hide.any(axis=1))
    if rows.size == 0:
        return FillerCheck(empty, empty, empty, empty, empty)
    series = np.asarray(ndvi, np.float32).reshape(-1, t)[rows]
    h = hide[rows]
    mean, std = fill(rows, np.where(h, np.nan, series).astype(np.float32))
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    ok = h & np.isfinite(mean) & np.isfinite(std) & (std > 0)
    if not ok.any():
        return FillerCheck(empty, empty, empty, empty, empty)
    z = np.broadcast_to(np.asarray(zone).reshape(-1)[rows][:, None], h.shape)[ok]
    err2 = (mean - series)[ok] ** 2
    var = std[ok] ** 2
    ratio = err2 / var
    return FillerCheck(np.bincount(z, minlength=k).astype(np.float64),
                       np.bincount(z, weights=err2, minlength=k),
                       np.bincount(z, weights=var, minlength=k),
                       np.bincount(z, weights=ratio, minlength=k),
                       np.bincount(z, weights=ratio**2, minlength=k))


@dataclass(frozen=True)
class Calibration:
    """Errors of the context estimate where the answer is known (sums over blocks).

    Attributes:
        sq_err: (bins,) sum of squared errors leaving one pixel out, per clear-share bin.
        count: (bins,) number of clear pixel-dates scored so.
        half_sq_err: sum of squared errors predicting a half of a zone from the other half.
        half_count: number of pixel-dates scored so.
        filler: the filler's own errors on hidden clear cells per zone
            (:func:`check_filler`), or None: its std is then taken as it is.
    """

    sq_err: np.ndarray
    count: np.ndarray
    half_sq_err: float = 0.0
    half_count: float = 0.0
    filler: FillerCheck | None = None

    def __add__(self, other: Calibration) -> Calibration:
        if self.filler is None or other.filler is None:
            filler = self.filler if other.filler is None else other.filler
        else:
            filler = self.filler + other.filler
        return Calibration(self.sq_err + other.sq_err, self.count + other.count,
                           self.half_sq_err + other.half_sq_err,
                           self.half_count + other.half_count, filler)

    def with_filler(self, check: FillerCheck) -> Calibration:
        """The same calibration with the filler check ``check`` (replacing any)."""
        return replace(self, filler=check)

    def filler_scale(self, zone: np.ndarray) -> np.ndarray:
        """Factor on the filler's variance for zone rows ``zone`` (1 without a check)."""
        if self.filler is None:
            return np.ones(np.shape(zone))
        return self.filler.scale()[np.asarray(zone)]

    def variance(self, share: np.ndarray) -> np.ndarray:
        """Error variance of the context estimate for zones clear by ``share``.

        Per clear-share bin, the one-pixel-out variance shrunk toward the pooled one with
        ``PRIOR_WEIGHT`` pseudo-counts, plus the excess of the half-zone variance over
        the pooled one, scaled by the hidden share over one half (see the module
        docstring); never below ``VAR_FLOOR``; ``VAR_DEFAULT`` where nothing was scored.
        """
        total = float(self.count.sum())
        pooled = float(self.sq_err.sum()) / total if total > 0 else VAR_DEFAULT
        per_bin = (self.sq_err + PRIOR_WEIGHT * pooled) / (self.count + PRIOR_WEIGHT)
        v = per_bin[_share_bin(share)]
        if self.half_count > 0:
            excess = max(self.half_sq_err / self.half_count - pooled, 0.0)
            v = v + excess * (1.0 - np.clip(share, 0.0, 1.0)) / 0.5
        return np.maximum(v, VAR_FLOOR)


def _share_bin(share: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(SHARE_EDGES, share, side="right") - 1, 0, len(SHARE_EDGES) - 2)


@dataclass(frozen=True)
class _Parts:
    y: np.ndarray  # (P, T) observations
    clear: np.ndarray  # (P, T)
    z: np.ndarray  # (P,)
    n_o: np.ndarray  # (P, T) clear pixels of the zone other than the pixel
    m_o: np.ndarray  # (P, T) their mean NDVI
    share_o: np.ndarray  # (P, T) their share of the zone
    d: np.ndarray  # (P, T) the pixel's offset to them on its clear dates (NaN elsewhere)


def _parts(ndvi: np.ndarray, zone: np.ndarray, table: ZoneTable) -> _Parts:
    t = ndvi.shape[-1]
    y = np.asarray(ndvi, np.float64).reshape(-1, t)
    z = np.asarray(zone).reshape(-1).astype(np.int64)
    clear = np.isfinite(y)
    n_c = table.n_clear[z].astype(np.float64)
    n_o = n_c - clear
    m_o = np.where(n_o > 0, (table.sum_ndvi[z] - np.where(clear, y, 0.0)) / np.maximum(n_o, 1),
                   np.nan)
    share_o = n_o / np.maximum(table.n_pixels[z], 1)[:, None]
    d = np.where(clear & (n_o >= MIN_CLEAR) & (z[:, None] > 0), y - m_o, np.nan)
    return _Parts(y, clear, z, n_o, m_o, share_o, d)


def calibrate(ndvi: np.ndarray, zone: np.ndarray, table: ZoneTable,
              sides: np.ndarray | None = None) -> Calibration:
    """Score the context estimate on a block's clear pixel-dates, leaving each one out.

    For a clear pixel-date with clear dates of the pixel on both sides, the estimate
    made without it (the other pixels' mean that date plus the pixel's offset
    interpolated from its neighbouring clear dates) is compared with the observation.
    This is the estimate the fill makes for a cloudy pixel, scored where the answer is
    known, on the tile at hand: no figure is carried over from another region. With
    ``sides`` (and a table made with them), the same pixel-dates are also predicted
    from the other half of their zone only.
    """
    p = _parts(ndvi, zone, table)
    n, t = p.d.shape
    valid = np.isfinite(p.d)
    pos = np.broadcast_to(np.arange(t), (n, t))
    prev, nxt = neighbour_indices(valid)
    before = np.concatenate([np.full((n, 1), -1), prev[:, :-1]], axis=1)
    after = np.concatenate([nxt[:, 1:], np.full((n, 1), t)], axis=1)
    ok = valid & (before >= 0) & (after < t)
    rows = np.arange(n)[:, None]
    d0 = p.d[rows, np.clip(before, 0, t - 1)]
    d1 = p.d[rows, np.clip(after, 0, t - 1)]
    w = (pos - before) / np.maximum(after - before, 1)
    d_loo = d0 + w * (d1 - d0)
    err = (d_loo - np.where(valid, p.d, 0.0)) ** 2
    b = _share_bin(p.share_o[ok])
    nb = len(SHARE_EDGES) - 1
    half_sq, half_n = 0.0, 0.0
    if sides is not None and table.half_clear.any():
        code = np.asarray(sides).reshape(-1).astype(np.int64)
        east, south = (code & 1) > 0, (code & 2) > 0
        # the other half of each split: east pixels are predicted from the west half, ...
        for other in (np.where(east, 0, 1), np.where(south, 2, 3)):
            n_h = table.half_clear[other, p.z].astype(np.float64)
            m_h = table.half_sum[other, p.z] / np.maximum(n_h, 1)
            sel = ok & (n_h >= MIN_CLEAR)
            e = (m_h + d_loo - p.y)[sel]
            half_sq += float((e**2).sum())
            half_n += float(sel.sum())
    return Calibration(np.bincount(b, weights=err[ok], minlength=nb),
                       np.bincount(b, minlength=nb).astype(np.float64), half_sq, half_n)


def flat_zones(table: ZoneTable) -> np.ndarray:
    """(K+1,) True for the zones whose clear mean shows no season (row 0: False).

    The rule of :func:`pipeline.baselines.flat_pixels` on each zone's series of clear
    means, taken on the dates with at least :data:`MIN_CLEAR` clear pixels.
    """
    n = table.n_clear
    mean = np.where(n >= MIN_CLEAR, table.sum_ndvi / np.maximum(n, 1), np.nan)
    out = flat_pixels(mean)
    out[0] = False
    return out


@dataclass(frozen=True)
class ZoneContext:
    """What the fill of one cube needs: its zones' tables and the context calibration.

    Zone ids of a run can be global (every parcel of an agency file); ``ids`` lists
    the ones present in this cube, and the tables are indexed by their position in it
    (1-based, 0 = no zone), so their size follows the zones of the tile, not of the run.

    Attributes:
        ids: (L,) sorted zone ids of the cube (0 excluded).
        table: zone sums (L+1 rows), without the half-zone sums.
        calibration: the errors of the context estimate on the cube.
        flat_zone: with segments, :func:`flat_zones` of ``table`` (a pixel without a
            season takes no context from a zone with one; module docstring); None with
            parcels.
    """

    ids: np.ndarray
    table: ZoneTable
    calibration: Calibration
    flat_zone: np.ndarray | None = None

    def local(self, zone: np.ndarray) -> np.ndarray:
        """Cube zone ids -> rows of the tables (0 = none)."""
        return local_ids(zone, self.ids)

    def apply(self, mean: np.ndarray, std: np.ndarray, ndvi: np.ndarray, zone: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`apply_context` on a block whose ``zone`` holds the cube's ids."""
        return apply_context(mean, std, ndvi, self.local(zone), self.table, self.calibration,
                             self.flat_zone)


def local_ids(zone: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Zone ids -> 1-based positions in the sorted ``ids`` (0 for 0 or an absent id)."""
    z = np.asarray(zone).astype(np.int64)
    if ids.size == 0:
        return np.zeros_like(z)
    pos = np.clip(np.searchsorted(ids, z), 0, ids.size - 1)
    return np.where((z > 0) & (ids[pos] == z), pos + 1, 0)


def apply_context(
    mean: np.ndarray, std: np.ndarray, ndvi: np.ndarray, zone: np.ndarray, table: ZoneTable,
    calibration: Calibration, flat_zone: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine a block's fill with its zones' same-date clear NDVI (see the module docstring).

    ``mean``, ``std``, ``ndvi`` (observations, NaN = not clear) have the block's spatial
    shape followed by time; ``zone`` the spatial shape. ``flat_zone`` (per table row,
    :func:`flat_zones`): where given, a pixel without a season takes no context from a
    zone with one. Returns new (mean, std).
    """
    shape = ndvi.shape
    t = shape[-1]
    p = _parts(ndvi, zone, table)
    f = np.asarray(mean, np.float64).reshape(-1, t)
    s = np.asarray(std, np.float64).reshape(-1, t)
    offset = linear(p.d.astype(np.float32)).astype(np.float64)
    offset = np.where(np.isfinite(offset), offset, 0.0)
    v_c = calibration.variance(p.share_o)
    c = p.m_o + offset
    use = ((~p.clear) & (p.z[:, None] > 0) & (p.n_o >= MIN_CLEAR) & np.isfinite(f)
           & np.isfinite(s))
    if flat_zone is not None:
        use &= ~(flat_pixels(p.y) & ~flat_zone[p.z])[:, None]
    v_f = s**2 * calibration.filler_scale(p.z)[:, None]
    w = np.where(use, v_f / (v_f + v_c), 0.0)
    out_mean = np.where(use, f + w * (np.nan_to_num(c) - f), f)
    out_std = np.where(use, np.sqrt(v_f * v_c / (v_f + v_c)), s)
    return (out_mean.reshape(shape).astype(np.float32),
            out_std.reshape(shape).astype(np.float32))
