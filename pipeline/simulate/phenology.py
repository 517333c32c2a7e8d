"""Seasons, management and weather: NDVI of every unit at any time, soil moisture.

A unit's NDVI is a double-logistic season (class parameters, jittered per unit),
cut by harvest (crops), mowing (1-3 cuts: an instant drop, then exponential
regrowth over 3-4 weeks) and grazing (small repeated dips). Times are fractional
days of year of ``spec.start.year`` (1.0 = 1 January 00:00 UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pipeline.simulate import calibration as cal
from pipeline.simulate.spec import WorldSpec, stream

MANAGEMENT_STREAM = 2
WEATHER_STREAM = 3
MAX_CUTS = 3
MAX_GRAZINGS = 10


def day_of_year(when: dt.datetime | dt.date, year: int) -> float:
    """Fractional day of year of ``when`` (UTC) counted from 1 January of ``year``."""
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day, 12, tzinfo=dt.UTC)
    jan1 = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    return (when - jan1).total_seconds() / 86400.0 + 1.0


def doy_to_date(doy: float, year: int) -> dt.date:
    """Calendar date of a fractional day of year."""
    return dt.date(year, 1, 1) + dt.timedelta(days=int(np.floor(doy)) - 1)


@dataclass(frozen=True)
class Calendar:
    """Per-unit season parameters and management events (arrays over units)."""

    base: np.ndarray
    """NDVI before green-up."""
    peak: np.ndarray
    """NDVI at the top of the season."""
    late: np.ndarray
    """NDVI at the end of senescence."""
    sos: np.ndarray
    """Half green-up day of year."""
    rise: np.ndarray
    """Green-up time scale (days)."""
    eos: np.ndarray
    """Half senescence day of year."""
    fall: np.ndarray
    """Senescence time scale (days)."""
    harvest: np.ndarray
    """Harvest day of year (NaN: none)."""
    cuts: np.ndarray
    """(units, MAX_CUTS) mowing times, day of year (NaN: none)."""
    cut_drop: np.ndarray
    """(units, MAX_CUTS) requested NDVI drop of each cut."""
    grazings: np.ndarray
    """(units, MAX_GRAZINGS) grazing times (NaN: none)."""
    graze_drop: np.ndarray
    """(units, MAX_GRAZINGS) NDVI dip of each grazing."""


def make_calendar(unit_class: np.ndarray, spec: WorldSpec) -> Calendar:
    """Draw season parameters and management of every unit."""
    rng = stream(spec, MANAGEMENT_STREAM)
    n = unit_class.size

    def table(attr: str) -> np.ndarray:
        return np.array([getattr(cal.PHENOLOGY[int(c)], attr) for c in unit_class], float)

    jitter = table("jitter")
    shift = rng.standard_normal(n) * jitter
    amp = 1.0 + 0.03 * rng.standard_normal(n)
    base, peak, late = table("base"), table("peak"), table("late")
    peak = base + (peak - base) * amp
    harvest = np.array([np.nan if cal.PHENOLOGY[int(c)].harvest is None
                        else cal.PHENOLOGY[int(c)].harvest for c in unit_class], float)
    harvest = harvest + shift + rng.uniform(-5, 5, n)

    cuts = np.full((n, MAX_CUTS), np.nan)
    n_cuts = rng.choice(np.array(list(cal.MOW_CUTS)), size=n,
                        p=np.array(list(cal.MOW_CUTS.values())))
    t = rng.uniform(*cal.FIRST_CUT_DOY, n)
    for k in range(MAX_CUTS):
        ok = (unit_class == cal.GRASS) & (n_cuts > k) & (t < 265)
        cuts[ok, k] = np.floor(t[ok]) + 0.25  # mown in the early morning
        t = t + rng.uniform(*cal.CUT_GAP_DAYS, n)
    cut_drop = rng.uniform(*cal.MOW_DROP, (n, MAX_CUTS))

    grazings = np.full((n, MAX_GRAZINGS), np.nan)
    t = rng.uniform(128, 150, n)
    for k in range(MAX_GRAZINGS):
        ok = (unit_class == cal.PASTURE) & (t < 275)
        grazings[ok, k] = t[ok]
        t = t + rng.uniform(*cal.GRAZE_INTERVAL, n)
    graze_drop = rng.uniform(*cal.GRAZE_DROP, (n, MAX_GRAZINGS))
    return Calendar(base=base, peak=peak, late=late, sos=table("sos") + shift,
                    rise=table("rise"), eos=table("eos") + shift, fall=table("fall"),
                    harvest=harvest, cuts=cuts, cut_drop=cut_drop, grazings=grazings,
                    graze_drop=graze_drop)


def _season(c: Calendar, t: np.ndarray) -> np.ndarray:
    """Undisturbed season; ``t`` broadcasts against (units, 1)."""
    def sig(z: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # logistic without overflow

    up = sig((t - c.sos[:, None]) / c.rise[:, None])
    down = sig((t - c.eos[:, None]) / c.fall[:, None])
    v = c.base[:, None] + (c.peak - c.base)[:, None] * up - (c.peak - c.late)[:, None] * down
    h = c.harvest[:, None]
    after = t >= h
    since = np.where(after, t - h, 0.0)
    stubble = cal.STUBBLE_NDVI + 0.10 * (1.0 - np.exp(-since / 30.0))
    return np.asarray(np.where(after, stubble, v))


def _subset(c: Calendar, rows: np.ndarray) -> Calendar:
    return Calendar(**{name: getattr(c, name)[rows] for name in Calendar.__dataclass_fields__})


def _disturb(v: np.ndarray, t: np.ndarray, c: Calendar, times: np.ndarray, drops: np.ndarray,
             regrowth: float) -> np.ndarray:
    """Subtract instantaneous drops that regrow exponentially (events in time order).

    Each drop is taken from the NDVI standing at the event (season minus what
    earlier events left), never below ``MOW_FLOOR``.
    """
    rows = np.flatnonzero(~np.all(np.isnan(times), axis=1))
    if rows.size == 0:
        return v
    sub = _subset(c, rows)
    ev = times[rows]
    applied = np.zeros_like(ev)
    deficit = np.zeros((rows.size, t.size))
    for k in range(ev.shape[1]):
        has = ~np.isnan(ev[:, k])
        if not has.any():
            continue
        te = np.where(has, ev[:, k], 0.0)
        standing = _season(sub, te[:, None])[:, 0]
        for j in range(k):
            lag = te - np.nan_to_num(ev[:, j], nan=np.inf)
            left = applied[:, j] * np.exp(-np.clip(lag, 0, None) / regrowth)
            standing -= np.where(lag >= 0, left, 0.0)
        d = np.clip(np.minimum(drops[rows, k], standing - cal.MOW_FLOOR), 0.02, None)
        applied[:, k] = np.where(has, d, 0.0)
        lag_t = t[None, :] - np.where(has, te, np.inf)[:, None]
        deficit += np.where(lag_t >= 0,
                            applied[:, k, None] * np.exp(-np.clip(lag_t, 0, None) / regrowth), 0.0)
    out = v.copy()
    out[rows] -= deficit
    return out


def unit_ndvi(c: Calendar, t: np.ndarray) -> np.ndarray:
    """Clean NDVI of every unit at the times ``t`` (days of year), shape (units, times)."""
    t = np.atleast_1d(np.asarray(t, float))
    v = _season(c, t[None, :])
    v = _disturb(v, t, c, c.cuts, c.cut_drop, cal.MOW_REGROWTH_DAYS)
    return _disturb(v, t, c, c.grazings, c.graze_drop, cal.GRAZE_REGROWTH_DAYS)


@dataclass(frozen=True)
class Weather:
    """Daily rain and the soil-moisture index it drives (one value per day, whole area)."""

    first_day: dt.date
    """Date of element 0."""
    rain_mm: np.ndarray
    """Rain of each day (falls at midday)."""
    moisture: np.ndarray
    """Soil-moisture index after each day's rain (1 ~ a 10 mm day on dry soil)."""

    def moisture_at(self, when: dt.datetime) -> float:
        """Moisture index at a time (rain of a day counts from midday on)."""
        pos = (when - dt.datetime(self.first_day.year, self.first_day.month, self.first_day.day,
                                  12, tzinfo=dt.UTC)).total_seconds() / 86400.0
        i = int(np.floor(pos))
        if i < 0:
            return 0.0
        frac = pos - i
        i = min(i, self.moisture.size - 1)
        return float(self.moisture[i] * np.exp(-frac / cal.DRYING_DAYS))


def make_weather(spec: WorldSpec) -> Weather:
    """Wet/dry Markov chain of rain days (p(wet|dry) 0.25, p(wet|wet) 0.55), exponential amounts."""
    rng = stream(spec, WEATHER_STREAM)
    first = spec.start - dt.timedelta(days=15)
    n = (spec.end - first).days + 8
    wet = np.zeros(n, bool)
    u = rng.random(n)
    for i in range(1, n):
        wet[i] = u[i] < (0.55 if wet[i - 1] else 0.25)
    rain = np.where(wet, rng.exponential(4.5, n), 0.0)
    moisture = np.zeros(n)
    decay = np.exp(-1.0 / cal.DRYING_DAYS)
    for i in range(n):
        prev = moisture[i - 1] * decay if i else 0.0
        moisture[i] = min(prev + rain[i] / 10.0, 1.5)
    return Weather(first_day=first, rain_mm=rain, moisture=moisture)
