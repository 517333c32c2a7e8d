"""Scenes from a STAC catalog: a static catalog (local path or http(s) URL).

Items are filtered by collection, AOI intersection and datetime. Reading the
assets is ingestion's job (odc-stac / rasterio), identical for every source.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import pystac
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

#: Collection ids recognised as Sentinel-2 L2A.
S2_COLLECTIONS: tuple[str, ...] = ("sentinel-2-l2a",)
#: Collection ids recognised as calibrated Sentinel-1 backscatter.
S1_COLLECTIONS: tuple[str, ...] = (
    "sentinel-1-grd-backscatter",
    "sentinel-1-rtc",
    "sentinel-1-global-mosaics",
)


def _in_period(item: pystac.Item, start: dt.date, end: dt.date) -> bool:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        return False
    day = when.astimezone(dt.UTC).date() if when.tzinfo else when.date()
    return start <= day <= end


def _intersects(item: pystac.Item, aoi: BaseGeometry) -> bool:
    if item.geometry is not None:
        return bool(shape(item.geometry).intersects(aoi))
    if item.bbox is not None:
        w, s, e, n = item.bbox[:4]
        aw, as_, ae, an = aoi.bounds
        return not (e < aw or w > ae or n < as_ or s > an)
    return False


@dataclass
class StaticCatalogSource:
    """A static STAC catalog read with pystac.

    Attributes:
        url: path or URL of the root ``catalog.json``.
        s2_collections: collection ids holding Sentinel-2 L2A items.
        s1_collections: collection ids holding Sentinel-1 backscatter items.
    """

    url: str
    s2_collections: tuple[str, ...] = S2_COLLECTIONS
    s1_collections: tuple[str, ...] = S1_COLLECTIONS
    name: str = "stac"
    _items: dict[str, list[pystac.Item]] | None = field(default=None, repr=False)

    def _load(self) -> dict[str, list[pystac.Item]]:
        if self._items is None:
            root = pystac.Catalog.from_file(self.url)
            by_collection: dict[str, list[pystac.Item]] = {}
            for item in root.get_items(recursive=True):
                by_collection.setdefault(item.collection_id or "", []).append(item)
            self._items = by_collection
            log.info(
                "catalog %s: %s",
                self.url,
                ", ".join(f"{k}={len(v)}" for k, v in sorted(by_collection.items())),
            )
        return self._items

    def _search(
        self, collections: tuple[str, ...], aoi: BaseGeometry, start: dt.date, end: dt.date
    ) -> list[pystac.Item]:
        items = [
            it
            for cid in collections
            for it in self._load().get(cid, [])
            if _in_period(it, start, end) and _intersects(it, aoi)
        ]
        return sorted(items, key=lambda it: (it.datetime or dt.datetime.min, it.id))

    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 L2A items intersecting the AOI within the period (sorted by time)."""
        return self._search(self.s2_collections, aoi, start, end)

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 backscatter items intersecting the AOI within the period."""
        return self._search(self.s1_collections, aoi, start, end)
