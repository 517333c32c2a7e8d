"""Sentinel-1 adapter: polarisations, orbit directions, dB conversion.

Ascending and descending passes see the ground at different incidence and
azimuth, so their levels differ by about a decibel: they are kept as separate
cube variables and never averaged together. Within a direction, acquisitions
in one 6-day bin are averaged in linear power before the dB conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pystac

ORBIT_DIRECTIONS: tuple[str, ...] = ("ascending", "descending")
#: Short suffix of cube variables per direction.
DIRECTION_SUFFIX = {"ascending": "asc", "descending": "desc"}


@dataclass(frozen=True)
class Sentinel1:
    """Sentinel-1 backscatter as the pipeline reads it.

    Attributes:
        polarisations: canonical polarisation names (lower case, cube variables).
        asset_keys: candidate asset keys per polarisation, first match wins.
    """

    polarisations: tuple[str, ...] = ("vv", "vh")
    asset_keys: tuple[tuple[str, ...], ...] = (("vv", "VV"), ("vh", "VH"))

    def asset_key(self, item: pystac.Item, pol: str) -> str:
        """The item's asset key for a polarisation."""
        for key in self.asset_keys[self.polarisations.index(pol)]:
            if key in item.assets:
                return key
        raise KeyError(f"{item.id}: no asset for polarisation {pol}")


S1 = Sentinel1()


def orbit_direction(item: pystac.Item) -> str:
    """``ascending`` or ``descending`` from ``sat:orbit_state``; ValueError otherwise."""
    state = str(item.properties.get("sat:orbit_state", "")).lower()
    if state not in ORBIT_DIRECTIONS:
        raise ValueError(f"{item.id}: sat:orbit_state is {state!r}, not ascending/descending")
    return state


def cube_variable(pol: str, direction: str) -> str:
    """Cube variable name, e.g. ``vh_asc``."""
    return f"{pol}_{DIRECTION_SUFFIX[direction]}"


def to_db(power: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Linear backscatter power to decibels; NaN for non-positive values. ``out``: a
    float32 array to write into (may be ``power`` itself)."""
    power = np.asarray(power, dtype=np.float32)
    bad = ~(power > 0)
    db = np.empty(power.shape, np.float32) if out is None else out
    np.log10(power, out=db, where=~bad)
    db *= np.float32(10.0)
    db[bad] = np.nan
    return db
