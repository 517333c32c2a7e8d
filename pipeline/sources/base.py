"""The interface every scene source implements."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

import pystac
from shapely.geometry.base import BaseGeometry


@runtime_checkable
class Source(Protocol):
    """Finds scenes as STAC items; ingestion reads their assets.

    Sentinel-2 items carry assets ``B04``, ``B08`` and ``SCL`` (after
    :func:`pipeline.s2.normalise_item`), Sentinel-1 items ``vv`` and ``vh``
    (calibrated backscatter, linear power) and ``sat:orbit_state``.
    """

    name: str

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Scenes found but not delivered, each ``{"id", "reason"}`` (to run.json)."""
        ...

    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 L2A items intersecting ``aoi`` (EPSG:4326) within the period."""
        ...

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 backscatter items intersecting ``aoi`` within the period."""
        ...
