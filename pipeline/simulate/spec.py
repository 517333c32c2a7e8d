"""The world's specification, its grids and its acquisition schedules.

Everything here is a pure function of :class:`WorldSpec`: the Sentinel-2 UTM grid,
the padded simulation grid (the landscape extends beyond the bounds so the
Sentinel-1 grid, which covers a margin, samples real land), the geographic
Sentinel-1 grid, and the lists of acquisitions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

#: Pixel size of the Sentinel-2 10 m bands (metres).
S2_RES = 10.0
#: Cells of land simulated beyond the bounds on every side (covers the S1 margin).
PAD_PX = 40
#: Sentinel-1 geographic grid steps (degrees): ~11 m in latitude, ~10 m in longitude at 55.7N.
S1_RES_LAT = 0.0001
S1_RES_LON = 0.00016
#: Margin of the Sentinel-1 grid around the bounds (degrees latitude / longitude).
S1_MARGIN_LAT = 0.0015
S1_MARGIN_LON = 0.0024


@dataclass(frozen=True)
class WorldSpec:
    """What to simulate. Same spec (seed included) gives byte-identical rasters."""

    bounds: tuple[float, float, float, float]
    """(xmin, ymin, xmax, ymax) in ``crs``; every value a multiple of 20 m."""
    crs: int = 32634
    """EPSG code of the UTM zone of the Sentinel-2 grid (default UTM 34N, Lithuania)."""
    start: dt.date = dt.date(2023, 3, 20)
    """First day of the archive (first Sentinel-2 acquisition)."""
    end: dt.date = dt.date(2023, 11, 10)
    """Last day of the archive (inclusive)."""
    seed: int = 0
    """Root of every random stream (landscape, management, weather, clouds, speckle)."""
    cloudy_share: float = 0.62
    """Probability that an S2 acquisition is mostly cloudy (> 50 % flagged)."""
    clear_share: float = 0.16
    """Probability that an S2 acquisition is nearly clear (< 5 % flagged)."""
    thin_cloud_share: float = 0.06
    """Mean share of the unflagged area covered by thin cloud that SCL misses."""
    mean_parcel_ha: float = 4.0
    """Mean parcel size in hectares (Voronoi cells)."""
    s1_repeat_days: int = 6
    """Repeat of each Sentinel-1 relative orbit (6: S1A+S1B, 12: S1A alone)."""
    s1_enl: float = 4.4
    """Equivalent number of looks of the 10 m GRD speckle per pixel (gamma marginal, >= 2)."""
    s1_swath_edge: bool = True
    """Cut the descending orbit's swath edge through the west of the area (NaN there)."""

    def __post_init__(self) -> None:
        xmin, ymin, xmax, ymax = self.bounds
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"bounds {self.bounds}: need xmin < xmax and ymin < ymax")
        if any(abs(v / 20.0 - round(v / 20.0)) > 1e-9 for v in self.bounds):
            raise ValueError(f"bounds {self.bounds}: every value must be a multiple of 20 m")
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if not (0 <= self.clear_share and 0 <= self.cloudy_share
                and self.clear_share + self.cloudy_share <= 1):
            raise ValueError("clear_share and cloudy_share must be >= 0 and sum to <= 1")
        if not 0 <= self.thin_cloud_share < 0.5:
            raise ValueError(f"thin_cloud_share {self.thin_cloud_share}: pass 0 .. 0.5")
        if not self.s1_enl >= 2.0:
            raise ValueError(f"s1_enl {self.s1_enl}: pass 2 or more looks")
        if self.s1_repeat_days not in (6, 12):
            raise ValueError(f"s1_repeat_days {self.s1_repeat_days}: pass 6 or 12")

    def key(self) -> str:
        """Short stable hash of the spec (names cache folders)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


def default_world() -> WorldSpec:
    """The demo world: 4.8 km x 4.8 km of farmland in Lithuania, one growing season."""
    return WorldSpec(bounds=(670900.0, 6179400.0, 675700.0, 6184200.0))


def stream(spec: WorldSpec, component: int, index: int = 0) -> np.random.Generator:
    """Independent random stream per component (and per scene), order-free."""
    return np.random.default_rng([spec.seed, component, index])


def s2_geobox(spec: WorldSpec) -> GeoBox:
    """The Sentinel-2 10 m grid of the bounds."""
    xmin, ymin, xmax, ymax = spec.bounds
    shape = (round((ymax - ymin) / S2_RES), round((xmax - xmin) / S2_RES))
    return GeoBox(shape, Affine(S2_RES, 0, xmin, 0, -S2_RES, ymax), f"EPSG:{spec.crs}")


def scl_geobox(spec: WorldSpec) -> GeoBox:
    """The 20 m grid of SCL (same extent as :func:`s2_geobox`)."""
    xmin, ymin, xmax, ymax = spec.bounds
    shape = (round((ymax - ymin) / 20.0), round((xmax - xmin) / 20.0))
    return GeoBox(shape, Affine(20.0, 0, xmin, 0, -20.0, ymax), f"EPSG:{spec.crs}")


def padded_geobox(spec: WorldSpec) -> GeoBox:
    """The simulation grid: the S2 grid grown by ``PAD_PX`` cells on every side."""
    xmin, ymin, xmax, ymax = spec.bounds
    pad = PAD_PX * S2_RES
    shape = (round((ymax - ymin) / S2_RES) + 2 * PAD_PX, round((xmax - xmin) / S2_RES) + 2 * PAD_PX)
    return GeoBox(shape, Affine(S2_RES, 0, xmin - pad, 0, -S2_RES, ymax + pad), f"EPSG:{spec.crs}")


def lonlat_bounds(spec: WorldSpec) -> tuple[float, float, float, float]:
    """Bounds of the world in EPSG:4326 (densified edges)."""
    to_ll = Transformer.from_crs(spec.crs, 4326, always_xy=True)
    xmin, ymin, xmax, ymax = spec.bounds
    t = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(21, xmax),
                         xmax - (xmax - xmin) * t, np.full(21, xmin)])
    ys = np.concatenate([np.full(21, ymin), ymin + (ymax - ymin) * t,
                         np.full(21, ymax), ymax - (ymax - ymin) * t])
    lon, lat = to_ll.transform(xs, ys)
    return float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))


def s1_geobox(spec: WorldSpec) -> GeoBox:
    """The geographic Sentinel-1 grid: the bounds plus a margin, ~10 m, north up."""
    w, s, e, n = lonlat_bounds(spec)
    x0 = math.floor((w - S1_MARGIN_LON) / S1_RES_LON) * S1_RES_LON
    x1 = math.ceil((e + S1_MARGIN_LON) / S1_RES_LON) * S1_RES_LON
    y0 = math.floor((s - S1_MARGIN_LAT) / S1_RES_LAT) * S1_RES_LAT
    y1 = math.ceil((n + S1_MARGIN_LAT) / S1_RES_LAT) * S1_RES_LAT
    shape = (round((y1 - y0) / S1_RES_LAT), round((x1 - x0) / S1_RES_LON))
    return GeoBox(shape, Affine(S1_RES_LON, 0, x0, 0, -S1_RES_LAT, y1), "EPSG:4326")


@dataclass(frozen=True)
class S2Acquisition:
    """One Sentinel-2 L2A scene of the archive."""

    index: int
    """Position in the schedule (also the index of its random stream)."""
    time: dt.datetime
    """Sensing time (UTC, timezone-aware)."""
    platform: str
    """``sentinel-2a`` or ``sentinel-2b``."""
    item_id: str
    """CDSE-style product name without ``.SAFE``."""


@dataclass(frozen=True)
class S1Acquisition:
    """One Sentinel-1 GRD backscatter scene of the archive."""

    index: int
    """Position in the schedule (also the index of its random stream)."""
    time: dt.datetime
    """Start of the acquisition (UTC, timezone-aware)."""
    platform: str
    """``sentinel-1a`` or ``sentinel-1b``."""
    orbit_state: str
    """``ascending`` or ``descending``."""
    relative_orbit: int
    """Relative orbit number (1..175)."""
    item_id: str
    """S1 GRD product name without ``.SAFE``."""
    extra: dict[str, int] = field(default_factory=dict, compare=False)
    """Absolute orbit and datatake (informative)."""


#: Relative orbits and sensing times over the demo area: (state, orbit, hh, mm, ss, day offset).
S1_ORBITS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ascending", 102, 16, 10, 12, 1),
    ("descending", 80, 4, 40, 33, 3),
)
#: Sentinel-2 relative orbit and tile.
S2_RELATIVE_ORBIT = 79
S2_TILE = "34UFG"


def _hex(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n].upper()


def s2_schedule(spec: WorldSpec) -> list[S2Acquisition]:
    """One acquisition every 5 days from ``start`` to ``end``, platforms alternating."""
    out: list[S2Acquisition] = []
    day = spec.start
    k = 0
    while day <= spec.end:
        platform = "sentinel-2b" if k % 2 == 0 else "sentinel-2a"
        sec = 29 if platform == "sentinel-2b" else 31
        time = dt.datetime(day.year, day.month, day.day, 9, 50, sec, tzinfo=dt.UTC)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        proc = f"{day.strftime('%Y%m%d')}T{11 + k % 3:02d}{(7 * k) % 60:02d}{(13 * k) % 60:02d}"
        item_id = (f"S2{platform[-1].upper()}_MSIL2A_{stamp}_N0509_R{S2_RELATIVE_ORBIT:03d}"
                   f"_T{S2_TILE}_{proc}")
        out.append(S2Acquisition(k, time, platform, item_id))
        day += dt.timedelta(days=5)
        k += 1
    return out


def s1_schedule(spec: WorldSpec) -> list[S1Acquisition]:
    """Both relative orbits, each every ``s1_repeat_days``, sorted by time."""
    rows: list[tuple[dt.datetime, str, int]] = []
    for state, rel, hh, mm, ss, offset in S1_ORBITS:
        day = spec.start + dt.timedelta(days=offset)
        while day <= spec.end:
            rows.append((dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=dt.UTC),
                         state, rel))
            day += dt.timedelta(days=spec.s1_repeat_days)
    rows.sort()
    out: list[S1Acquisition] = []
    epoch = dt.date(2023, 1, 1)
    for k, (time, state, rel) in enumerate(rows):
        # With a 6-day repeat the two satellites alternate (12-day cycle each).
        cycle = ((time.date() - epoch).days // 6) % 2
        sat = "B" if spec.s1_repeat_days == 6 and cycle == 1 else "A"
        # Absolute orbit consistent with the relative one (S1A: rel = (abs - 73) % 175 + 1).
        base = 46600 if sat == "A" else 35900
        shift = 73 if sat == "A" else 27
        absolute = base + ((rel - 1 + shift - base) % 175)
        absolute += 175 * ((time.date() - epoch).days // 12)
        take = int(_hex(f"{sat}{absolute}", 5), 16)
        start = time.strftime("%Y%m%dT%H%M%S")
        stop = (time + dt.timedelta(seconds=25)).strftime("%Y%m%dT%H%M%S")
        item_id = (f"S1{sat}_IW_GRDH_1SDV_{start}_{stop}_{absolute:06d}_{take:06X}"
                   f"_{_hex(start + sat, 4)}")
        out.append(S1Acquisition(k, time, f"sentinel-1{sat.lower()}", state, rel, item_id,
                                 {"absolute_orbit": absolute, "datatake": take}))
    return out
