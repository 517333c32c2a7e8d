"""The Sentinel-1/2 fusion network (SF): a small CNN-RNN gap filler.

After Tsardanidis et al. (arXiv 2403.09554): per-feature 1-D convolution branches
(one for the masked NDVI series, one for the Sentinel-1 features), a bidirectional
LSTM over the season and NDVI out on every date. Differences from the paper, each
chosen for speed or robustness and measured in ``benchmarks/bench_model.py`` and
``python -m pipeline evaluate``:

* No repeated-encoding decoder: the paper feeds the same encoding to a decoder LSTM at
  every step; here one bidirectional LSTM reads the per-date branch features and a
  per-date head decodes, so any season length works and the cost is one recurrence.
* The NDVI branch also sees the linear interpolation of the observed NDVI and the
  distance (in steps) to the previous/next observation; the head predicts a residual
  on top of the linear interpolation. The network then only learns what linear
  interpolation gets wrong, which a small network learns quickly.
* Sentinel-1 enters as per-series temporal anomalies of VV, VH and VH-VV (dB) per orbit
  direction, averaged over the directions present in a bin, plus the series' mean
  levels. Offsets between orbit directions and incidence angles cancel, so a series
  from another orbit, or with one direction missing, looks the same to the network.
  Missing S1 is a mask channel, never a value.
* A second output gives the predicted standard deviation per date (Gaussian NLL).
* Optional Akima base (weights >= 1.3, ``akima=True``): the NDVI branch also sees an
  Akima spline through the observations and the local curvature evidence (mean
  absolute change of the neighbouring secant slopes), and the head's residual is added
  to the Akima fill instead of the linear one. Akima follows the curvature its
  neighbours show, which is where linear interpolation loses on short gaps.
* Optional day of year (weights >= 1.1): sin and cos of each date's phase in the year
  join the second branch, so long gaps can follow the grassland season (green-up,
  first cut, autumn decline) rather than a straight line. An unknown date is (0, 0),
  which training shows in a share of windows; networks built without it
  (``doy=False``, weights 1.0.x) read only the first 11 feature channels.

Everything here is plain PyTorch; the module never imports geo libraries.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Number of input channels built by :func:`build_features` per date.
N_FEATURES = 13
#: Channels built with ``akima=True`` (two more NDVI-branch channels).
N_FEATURES_AKIMA = 15
#: Channels of a network without the day-of-year input (weights 1.0.x).
N_FEATURES_NO_DOY = 11
#: Channels of the NDVI branch (the first ones of :func:`build_features`).
N_NDVI_FEATURES = 5
#: Channels of the NDVI branch with ``akima=True``.
N_NDVI_FEATURES_AKIMA = 7
#: Feature channel of the Akima fill (``akima=True`` layout).
AKIMA_CHANNEL = 5
#: Feature channel of the curvature evidence (``akima=True`` layout).
CURVATURE_CHANNEL = 6
#: dB scale used to normalise Sentinel-1 anomalies and levels.
S1_SCALE_DB = 3.0
#: Typical VV / VH levels (dB) of vegetated land, subtracted from the series means.
S1_LEVEL_DB = (-11.0, -18.0)
#: Distances to the nearest observation are capped at this many steps.
MAX_DISTANCE = 12.0
#: Floor of the predicted standard deviation (NDVI units).
MIN_STD = 0.003
#: Length of the year used for the day-of-year phase (days).
YEAR_DAYS = 365.25
#: Curvature evidence (NDVI per step) is scaled by this for the network input.
CURVATURE_SCALE = 10.0


def _neighbours(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the last observation at or before / first at or after each date.

    -1 / T where there is none (``valid`` is ``(B, T)`` boolean).
    """
    t = valid.shape[-1]
    pos = torch.arange(t, device=valid.device).expand_as(valid)
    prev = torch.where(valid, pos, torch.full_like(pos, -1)).cummax(dim=-1).values
    rev = torch.where(valid, pos, torch.full_like(pos, t)).flip(-1)
    nxt = (-(-rev).cummax(dim=-1).values).flip(-1)
    return prev, nxt


def _linear_fill(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Linear interpolation along the last axis, nearest value beyond the ends.

    Returns the filled series and the distances (steps) to the previous and next
    observation (capped, as float). Rows without observations fill with 0.
    """
    t = x.shape[-1]
    pos = torch.arange(t, device=x.device).expand_as(x)
    prev, nxt = _neighbours(valid)
    has_prev, has_next = prev >= 0, nxt < t
    y_prev = x.gather(-1, prev.clamp(0, t - 1))
    y_next = x.gather(-1, nxt.clamp(0, t - 1))
    span = (nxt - prev).clamp(min=1).to(x.dtype)
    w = (pos - prev).to(x.dtype) / span
    inner = y_prev + w * (y_next - y_prev)
    filled = torch.where(has_prev & has_next, inner, torch.where(has_prev, y_prev, y_next))
    filled = torch.where(has_prev | has_next, filled, torch.zeros_like(filled))
    filled = torch.where(valid, x, filled)
    d_prev = torch.where(has_prev, (pos - prev).to(x.dtype), torch.full_like(x, MAX_DISTANCE))
    d_next = torch.where(has_next, (nxt - pos).to(x.dtype), torch.full_like(x, MAX_DISTANCE))
    return filled, d_prev.clamp(max=MAX_DISTANCE), d_next.clamp(max=MAX_DISTANCE)


def _gather_prev(last_valid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Index of the observation before observation ``idx`` (-1 if none or idx < 0)."""
    before = (idx - 1).clamp(min=0)
    out = last_valid.gather(-1, before)
    return torch.where(idx > 0, out, torch.full_like(out, -1))


def _gather_next(first_valid: torch.Tensor, idx: torch.Tensor, t: int) -> torch.Tensor:
    """Index of the observation after observation ``idx`` (t if none or idx >= t-1)."""
    after = (idx + 1).clamp(max=t - 1)
    out = first_valid.gather(-1, after)
    return torch.where(idx < t - 1, out, torch.full_like(out, t))


def akima_fill(
    x: torch.Tensor, valid: torch.Tensor, lin: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Akima spline through the observations along the last axis, vectorised.

    The same spline as :class:`scipy.interpolate.Akima1DInterpolator` (secants
    extended linearly beyond the first and last observation); each gap date needs the
    three observations on either side, found with the same cumulative max/min as the
    linear fill. Beyond the first or last observation the nearest value is held; rows
    with fewer than two observations give the linear fill's values.

    Returns:
        ``(filled, curvature)``, both like ``x``: the spline (observed dates kept) and
        the curvature evidence of the neighbourhood, the mean absolute change of the
        four neighbouring secant slopes (NDVI per step; 0 where the observations lie on
        a straight line, and on observed dates).
    """
    t = x.shape[-1]
    pos = torch.arange(t, device=x.device).expand_as(x)
    last_valid, first_valid = _neighbours(valid)
    p1, n1 = last_valid, first_valid
    p2 = _gather_prev(last_valid, p1)
    p3 = _gather_prev(last_valid, p2)
    n2 = _gather_next(first_valid, n1, t)
    n3 = _gather_next(first_valid, n2, t)

    def at(i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ok = (i >= 0) & (i < t)
        return x.gather(-1, i.clamp(0, t - 1)), ok

    def secant(i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yi, oi = at(i)
        yj, oj = at(j)
        dx = (j - i).clamp(min=1).to(x.dtype)
        return (yj - yi) / dx, oi & oj

    m0, inner = secant(p1, n1)
    mm1, ok_m1 = secant(p2, p1)
    mm2, ok_m2 = secant(p3, p2)
    mp1, ok_p1 = secant(n1, n2)
    mp2, ok_p2 = secant(n2, n3)
    # Extend missing secants linearly, as scipy does at the ends of the data.
    both = ~ok_m1 & ~ok_p1
    mm1 = torch.where(ok_m1, mm1, torch.where(both, m0, 2 * m0 - mp1))
    mp1 = torch.where(ok_p1, mp1, torch.where(both, m0, 2 * m0 - mm1))
    mm2 = torch.where(ok_m2, mm2, 2 * mm1 - m0)
    mp2 = torch.where(ok_p2, mp2, 2 * mp1 - m0)

    def slope(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        # Akima slope at a knot between secants b (left) and c (right).
        w1, w2 = (d - c).abs(), (b - a).abs()
        den = w1 + w2
        ok = den > 1e-9
        return torch.where(ok, (w1 * b + w2 * c) / den.clamp(min=1e-9), 0.5 * (b + c))

    ta = slope(mm2, mm1, m0, mp1)
    tb = slope(mm1, m0, mp1, mp2)
    ya, _ = at(p1)
    yb, _ = at(n1)
    h = (n1 - p1).clamp(min=1).to(x.dtype)
    s = (pos - p1).to(x.dtype) / h
    s2, s3 = s * s, s * s * s
    spline = ((2 * s3 - 3 * s2 + 1) * ya + (s3 - 2 * s2 + s) * h * ta
              + (-2 * s3 + 3 * s2) * yb + (s3 - s2) * h * tb)
    if lin is None:
        lin = _linear_fill(x, valid)[0]
    gap = inner & ~valid
    filled = torch.where(gap, spline, lin)
    curv = ((mp1 - m0).abs() + (m0 - mm1).abs() + (mm1 - mm2).abs() + (mp2 - mp1).abs()) / 4
    curv = torch.where(gap, curv, torch.zeros_like(curv))
    return filled, curv


def doy_features(doy: torch.Tensor | None, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(sin, cos)`` of the day-of-year phase, both ``like``-shaped ``(B, T)``.

    ``doy`` is ``(B, T)`` or ``(T,)`` (broadcast over rows); ``None`` or NaN entries
    (date unknown) give ``(0, 0)``, which no real date produces.
    """
    if doy is None:
        z = torch.zeros_like(like)
        return z, z
    d = doy.to(like.dtype).expand_as(like)
    ok = torch.isfinite(d)
    ang = torch.where(ok, d, torch.zeros_like(d)) * (2.0 * torch.pi / YEAR_DAYS)
    zero = torch.zeros_like(like)
    return torch.where(ok, torch.sin(ang), zero), torch.where(ok, torch.cos(ang), zero)


def _s1_features(
    vv: torch.Tensor, vh: torch.Tensor, like: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The six Sentinel-1 channels of :func:`build_features`, each ``like``-shaped."""
    s1_ok = torch.isfinite(vv) & torch.isfinite(vh)
    w = s1_ok.to(like.dtype)
    vv0 = torch.where(s1_ok, vv, torch.zeros_like(vv))
    vh0 = torch.where(s1_ok, vh, torch.zeros_like(vh))
    n_dir = w.sum(dim=1, keepdim=True)  # (B, 1, D) acquisitions per direction
    vv_mean = vv0.sum(dim=1, keepdim=True) / n_dir.clamp(min=1)
    vh_mean = vh0.sum(dim=1, keepdim=True) / n_dir.clamp(min=1)
    n_bin = w.sum(dim=2)  # (B, T) directions present per date
    inv = 1.0 / n_bin.clamp(min=1)
    vv_a = ((vv0 - vv_mean) * w).sum(dim=2) * inv / S1_SCALE_DB
    vh_a = ((vh0 - vh_mean) * w).sum(dim=2) * inv / S1_SCALE_DB
    vv_a, vh_a = vv_a.clamp(-3, 3), vh_a.clamp(-3, 3)
    s1m = (n_bin > 0).to(like.dtype)
    dir_w = (n_dir > 0).to(like.dtype)  # (B, 1, D)
    n_dirs = dir_w.sum(dim=2).clamp(min=1)
    any_s1 = (dir_w.sum(dim=2) > 0).to(like.dtype)  # (B, 1)
    vv_lvl = ((vv_mean * dir_w).sum(dim=2) / n_dirs - S1_LEVEL_DB[0]) / S1_SCALE_DB
    vh_lvl = ((vh_mean * dir_w).sum(dim=2) / n_dirs - S1_LEVEL_DB[1]) / S1_SCALE_DB
    vv_lvl = (vv_lvl.clamp(-3, 3) * any_s1).expand_as(like)
    vh_lvl = (vh_lvl.clamp(-3, 3) * any_s1).expand_as(like)
    return vv_a, vh_a, vh_a - vv_a, s1m, vv_lvl, vh_lvl


def build_features(
    ndvi: torch.Tensor,
    vv: torch.Tensor | None,
    vh: torch.Tensor | None,
    doy: torch.Tensor | None = None,
    akima: bool = False,
) -> torch.Tensor:
    """Per-date input features of the network.

    Args:
        ndvi: ``(B, T)`` NDVI, NaN where not observed (gap values never reach the
            output: they are replaced before any arithmetic).
        vv: ``(B, T, D)`` VV backscatter in dB per orbit direction (D >= 1), NaN = none;
            ``None`` (with ``vh``) = no Sentinel-1 at all, the same channels as an
            all-NaN input (zeros) without computing them.
        vh: ``(B, T, D)`` VH backscatter in dB, same layout.
        doy: ``(B, T)`` or ``(T,)`` day of year of each date (bin centre), NaN or
            ``None`` = unknown.
        akima: also build the Akima fill and the curvature evidence (networks built
            with ``akima=True``); they follow the five linear-branch channels, so the
            layout is ``N_FEATURES_AKIMA`` channels with the NDVI branch first.

    Returns:
        ``(T, B, N_FEATURES)`` float tensor: NDVI branch channels (masked NDVI, mask,
        linear interpolation, distance to previous / next observation) then S1 branch
        channels (VV, VH, VH-VV anomalies, S1 mask, VV and VH series levels) then the
        day-of-year sine and cosine (read by the second branch of networks built with
        ``doy=True``; networks without it ignore them).
    """
    valid = torch.isfinite(ndvi)
    x = torch.where(valid, ndvi, torch.zeros_like(ndvi))
    lin, d_prev, d_next = _linear_fill(x, valid)
    m = valid.to(x.dtype)
    if vv is None or vh is None:
        zero = torch.zeros_like(x)
        s1: tuple[torch.Tensor, ...] = (zero,) * 6
    else:
        s1 = _s1_features(vv, vh, x)
    d_sin, d_cos = doy_features(doy, x)
    extra: list[torch.Tensor] = []
    if akima:
        ak, curv = akima_fill(x, valid, lin)
        extra = [ak, curv * CURVATURE_SCALE]
    feats = torch.stack(
        [x, m, lin, d_prev / 6.0, d_next / 6.0, *extra, *s1, d_sin, d_cos], dim=-1
    )
    return feats.transpose(0, 1).contiguous()


class TemporalConv(nn.Module):
    """Kernel-3 temporal convolution in ``(T, B, C)`` layout, zero padded at both ends.

    One matrix product gives the contributions of the previous, current and next date;
    they are added with shifted slices, which avoids copying shifted inputs.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.proj = nn.Linear(c_in, 3 * c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, B, c_in)`` -> ``(T, B, c_out)``."""
        c = self.c_out
        y = self.proj(x)
        out = y[..., c : 2 * c].clone()
        out[1:] += y[:-1, :, :c]
        out[:-1] += y[1:, :, 2 * c :]
        return out


class SFNet(nn.Module):
    """CNN-RNN: conv branches (NDVI, S1) -> bidirectional LSTM -> per-date head.

    The whole network stays in ``(T, B, C)`` layout, so no transposes are needed
    around the LSTM.
    """

    def __init__(
        self,
        ndvi_channels: int = 16,
        s1_channels: int = 8,
        hidden: int = 20,
        doy: bool = False,
        akima: bool = False,
    ) -> None:
        super().__init__()
        self.config: dict[str, int | bool] = {
            "ndvi_channels": ndvi_channels, "s1_channels": s1_channels, "hidden": hidden,
        }
        if doy:
            self.config["doy"] = True
        if akima:
            self.config["akima"] = True
        #: Whether :func:`build_features` must be called with ``akima=True``.
        self.akima = akima
        #: Channels of the NDVI branch (the first ones of the features).
        self.n_ndvi = N_NDVI_FEATURES_AKIMA if akima else N_NDVI_FEATURES
        #: Feature channel the residual is added to (Akima or linear fill).
        self.base_channel = AKIMA_CHANNEL if akima else 2
        #: Last feature channel read (the second branch reads n_ndvi:n_in).
        self.n_in = (N_FEATURES if doy else N_FEATURES_NO_DOY) + (self.n_ndvi - N_NDVI_FEATURES)
        self.ndvi_conv = TemporalConv(self.n_ndvi, ndvi_channels)
        self.s1_conv = TemporalConv(self.n_in - self.n_ndvi, s1_channels)
        branch = ndvi_channels + s1_channels
        self.rnn = nn.LSTM(branch, hidden, bidirectional=True)
        self.head_h = nn.Linear(2 * hidden, hidden)
        self.head_z = nn.Linear(branch, hidden, bias=False)
        self.head2 = nn.Linear(hidden, 2)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict NDVI and its standard deviation on every date.

        Args:
            feats: ``(T, B, C)`` from :func:`build_features` (T >= 1, any length;
                ``C = N_FEATURES``, or ``N_FEATURES_AKIMA`` built with ``akima=True``
                for a network with ``akima=True``).

        Returns:
            ``(mean, std)``, both ``(B, T)``: the predicted NDVI (the base fill, Akima
            or linear, plus a learnt residual) and the predicted standard deviation (> 0).
        """
        nf = self.n_ndvi
        a = F.relu(self.ndvi_conv(feats[..., :nf]))
        b = F.relu(self.s1_conv(feats[..., nf : self.n_in]))
        z = torch.cat([a, b], dim=-1)
        h, _ = self.rnn(z)
        o = self.head2(F.relu(self.head_h(h) + self.head_z(z)))
        base = feats[..., self.base_channel]
        mean = (base + o[..., 0]).transpose(0, 1)
        std = (F.softplus(o[..., 1]) + MIN_STD).transpose(0, 1)
        return mean, std


def classic_error(feats: torch.Tensor) -> torch.Tensor:
    """Expected error of the Akima fill on every date, from its neighbourhood alone.

    The disagreement of the two classic fills (``|akima - linear|``) plus the
    curvature evidence times the geometric mean distance to the neighbouring
    observations: both vanish where the observations around a gap lie on a straight
    line, so a classic fill that is exact there is kept exactly.

    Args:
        feats: ``(T, B, N_FEATURES_AKIMA)`` built with ``akima=True``.

    Returns:
        ``(B, T)`` expected absolute error (NDVI units; 0 on observed dates).
    """
    lin, ak = feats[..., 2], feats[..., AKIMA_CHANNEL]
    curv = feats[..., CURVATURE_CHANNEL] / CURVATURE_SCALE
    dist = (feats[..., 3] * feats[..., 4]).clamp(min=0).sqrt() * 6.0
    return ((ak - lin).abs() + curv * dist).transpose(0, 1)


def fallback(
    mean: torch.Tensor, std: torch.Tensor, feats: torch.Tensor
) -> torch.Tensor:
    """Shrink the network's prediction toward the Akima fill where it cannot tell.

    Inverse-variance weighting of two estimates of each gap date: the Akima fill with
    its expected error :func:`classic_error` and the network with its predicted std.
    Where the classic fill is expected to be exact the result is the classic fill;
    where the network is far more certain than the classic fill, the network's.

    Args:
        mean: ``(B, T)`` network mean (Akima base plus residual).
        std: ``(B, T)`` network std (calibrated).
        feats: the ``(T, B, N_FEATURES_AKIMA)`` features the network read.

    Returns:
        ``(B, T)`` blended mean.
    """
    base = feats[..., AKIMA_CHANNEL].transpose(0, 1)
    var_c = classic_error(feats) ** 2
    w = var_c / (var_c + std**2)
    return base + w * (mean - base)
