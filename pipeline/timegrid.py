"""The regular 6-day time grid.

Bins are anchored to a fixed epoch, so two runs, two tiles or an appended month
always share bin edges: bin ``k`` covers ``[EPOCH + k*step, EPOCH + (k+1)*step)``
(dates, UTC). A bin is labelled by its first day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Fixed anchor of every time grid (a Sentinel-era date; changing it breaks cube appends).
EPOCH = dt.date(2015, 1, 1)
#: Default bin length in days.
STEP_DAYS = 6


def _as_date(value: dt.date | dt.datetime | str | np.datetime64 | pd.Timestamp) -> dt.date:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.date()


@dataclass(frozen=True)
class TimeGrid:
    """The bins covering a period, on the epoch-anchored grid.

    Attributes:
        first: index of the first bin (counted from ``EPOCH``).
        count: number of bins.
        step_days: bin length in days.
    """

    first: int
    count: int
    step_days: int = STEP_DAYS

    @classmethod
    def covering(
        cls, start: dt.date | str, end: dt.date | str, step_days: int = STEP_DAYS
    ) -> TimeGrid:
        """Smallest grid whose bins cover every day from ``start`` to ``end`` inclusive."""
        s, e = _as_date(start), _as_date(end)
        if e < s:
            raise ValueError(f"end {e} is before start {s}")
        first = (s - EPOCH).days // step_days
        last = (e - EPOCH).days // step_days
        return cls(first=first, count=last - first + 1, step_days=step_days)

    @property
    def starts(self) -> pd.DatetimeIndex:
        """First day of each bin (the bin labels)."""
        base = pd.Timestamp(EPOCH) + pd.Timedelta(days=self.first * self.step_days)
        return pd.date_range(base, periods=self.count, freq=f"{self.step_days}D")

    @property
    def start(self) -> dt.date:
        """First day covered."""
        return self.starts[0].date()

    @property
    def end(self) -> dt.date:
        """Last day covered (inclusive)."""
        return (self.starts[-1] + pd.Timedelta(days=self.step_days - 1)).date()

    @classmethod
    def of_starts(cls, starts: object) -> TimeGrid:
        """The grid whose bins start at ``starts`` (e.g. a cube's ``time`` values)."""
        times = pd.DatetimeIndex(np.atleast_1d(np.asarray(starts)))
        grid = cls.covering(times[0], times[-1])
        assert grid.count == len(times), "the times are not consecutive 6-day bin starts"
        return grid

    def iso_dates(self) -> list[str]:
        """Bin labels as ISO dates (used for band descriptions)."""
        return [d.strftime("%Y-%m-%d") for d in self.starts]

    def bin_index(self, when: object) -> np.ndarray:
        """Bin position (0..count-1) of each timestamp; -1 where outside the grid."""
        times = pd.to_datetime(np.atleast_1d(np.asarray(when)), utc=True, format="ISO8601")
        times = times.tz_localize(None)
        days = (times.normalize() - pd.Timestamp(EPOCH)).days.to_numpy()
        idx = days // self.step_days - self.first
        return np.where((idx >= 0) & (idx < self.count), idx, -1).astype(np.int64)
