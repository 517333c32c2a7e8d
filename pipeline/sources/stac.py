"""Scenes from STAC: a STAC API (CDSE, Earth Search, ...) or a static catalog.

The root may be a local path, an ``http(s)://`` URL or an ``s3://`` URL. Items are
filtered by collection, AOI intersection and datetime and handed to ingestion
unchanged except for two things, both data and both done here once:

* asset hrefs are rewritten for the chosen EODATA access (:mod:`pipeline.sources.eodata`):
  the ``/eodata`` mount of a CreoDIAS VM, S3 through GDAL, or HTTPS;
* Sentinel-1 asset keys are mapped onto ``vv``/``vh`` (``--s1-assets``), so any
  collection of calibrated backscatter (RTC / gamma0 COGs) can feed the pipeline.

Reading the assets is ingestion's job (odc-stac / rasterio), identical for every
source; offsets stay in the assets' ``raster:bands`` where the catalog put them and
are applied once, by the rule of :func:`pipeline.s2.reflectance_scaling`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from pipeline.errors import InputError, request_failure
from pipeline.sources.eodata import (
    EodataAccess,
    configure_gdal,
    rewrite_href,
    stac_io_for,
)

log = logging.getLogger(__name__)

#: The documented default: the CDSE STAC API.
CDSE_STAC_URL = "https://stac.dataspace.copernicus.eu/v1"
#: Collection ids recognised as Sentinel-2 L2A.
S2_COLLECTIONS: tuple[str, ...] = ("sentinel-2-l2a",)
#: Collection ids recognised as calibrated Sentinel-1 backscatter.
S1_COLLECTIONS: tuple[str, ...] = (
    "sentinel-1-grd-backscatter",
    "sentinel-1-rtc",
    "sentinel-1-global-mosaics",
)
#: Schemes of asset hrefs that name no local file (read over the network).
REMOTE_SCHEMES = ("http", "https", "s3")
#: API searches stop here (CDSE pages stop at 10,000 items; a season of one tile is ~150).
MAX_ITEMS = 10_000


def parse_asset_map(text: str | None) -> dict[str, str]:
    """``"vv=VV_gamma0,vh=VH_gamma0"`` -> ``{"vv": "VV_gamma0", "vh": "VH_gamma0"}``.

    Keys are the pipeline's polarisations (``vv``, ``vh``), values the catalog's
    asset keys. InputError names ``--s1-assets`` on malformed text.
    """
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        pol, sep, key = part.partition("=")
        pol, key = pol.strip().lower(), key.strip()
        if not sep or pol not in ("vv", "vh") or not key:
            raise InputError(
                f"--s1-assets: cannot parse {text!r}; pass e.g. 'vv=VV,vh=VH' "
                "(pipeline polarisation = the catalog's asset key)"
            )
        out[pol] = key
    return out


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


def _sorted(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    def when(it: pystac.Item) -> dt.datetime:
        t = it.datetime or it.common_metadata.start_datetime or dt.datetime.min
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

    return sorted(items, key=lambda it: (when(it), it.id))


@dataclass(frozen=True)
class HrefPolicy:
    """Which asset hrefs of a catalog may be opened.

    GDAL opens whatever string an href holds: a local file anywhere, a virtual path
    (``/vsicurl/``, ``/vsizip/``, ...) or a ``file://`` URL. So assets of a local
    static catalog must be files inside the catalog's folder or one of the folders
    passed with ``--allow-path``; virtual paths, ``file://`` and other schemes are
    refused everywhere; ``http(s)://`` and ``s3://`` hrefs read no local file and pass.
    A remote catalog (STAC API, catalog over http(s) or s3) may name only those.

    Attributes:
        roots: folders (resolved) that local asset files must lie in; empty for a
            remote catalog, whose assets may not be local files at all.
    """

    roots: tuple[Path, ...] = ()

    @classmethod
    def for_catalog(cls, url: str, allow: Sequence[str | Path] = ()) -> HrefPolicy:
        """The policy of a catalog at ``url``: its folder and ``allow`` when it is local."""
        if urlparse(url).scheme in REMOTE_SCHEMES:
            return cls(())
        local = Path(url.removeprefix("file://"))
        return cls(tuple(Path(os.path.realpath(p)) for p in (local.parent, *allow)))

    def refusal(self, href: str) -> str | None:
        """Why ``href`` may not be opened, or None when it may."""
        if href.lower().startswith("/vsi"):
            return "GDAL virtual paths (/vsi...) are not read from catalogs"
        scheme = urlparse(href).scheme.lower()
        if scheme in REMOTE_SCHEMES:
            return None
        if scheme == "file":
            return "file:// hrefs are not read; name the file by its path"
        if scheme:
            return f"unsupported scheme {scheme!r}; assets are files, http(s):// or s3://"
        if not self.roots:
            return "a local file named by a remote catalog"
        real = Path(os.path.realpath(href))
        if not Path(href).is_absolute() or not any(real.is_relative_to(r) for r in self.roots):
            return (f"outside the catalog's folder {self.roots[0]}"
                    + (" and the --allow-path folders" if len(self.roots) > 1 else "")
                    + "; pass --allow-path to read there")
        return None

    def refusal_of(self, item: pystac.Item) -> str | None:
        """Why an item's assets may not be opened (the first refused href), or None."""
        for key, asset in item.assets.items():
            hrefs = [asset.get_absolute_href() or asset.href]
            alternates = asset.extra_fields.get("alternate")
            if isinstance(alternates, dict):
                hrefs += [str(a.get("href")) for a in alternates.values()
                          if isinstance(a, dict) and a.get("href")]
            for href in hrefs:
                why = self.refusal(href)
                if why:
                    return f"asset {key} {href!r} refused: {why}"
        return None

    def admit(self, items: Iterable[pystac.Item], skipped: list[dict[str, str]]
              ) -> list[pystac.Item]:
        """The items whose assets may be opened; the others go to ``skipped`` with the
        reason (never opened)."""
        kept = []
        for item in items:
            why = self.refusal_of(item)
            if why is None:
                kept.append(item)
                continue
            entry = {"id": item.id, "reason": why}
            if entry not in skipped:
                log.warning("scene %s skipped: %s", item.id, why)
                skipped.append(entry)
        return kept


@dataclass
class ItemAdapter:
    """What is done to every found item before ingestion sees it (pure, per item).

    Attributes:
        access: how EODATA hrefs are reached (None: hrefs left as the catalog has them).
        s1_assets: pipeline polarisation -> catalog asset key for Sentinel-1 items.
    """

    access: EodataAccess | None = None
    s1_assets: dict[str, str] = field(default_factory=dict)

    def s2(self, item: pystac.Item) -> pystac.Item:
        """The item with its asset hrefs rewritten for the access mode."""
        return self._rewrite(item)

    def s1(self, item: pystac.Item) -> pystac.Item:
        """Hrefs rewritten and the mapped assets added under ``vv``/``vh``."""
        item = self._rewrite(item)
        for pol, key in self.s1_assets.items():
            if key in item.assets and pol not in item.assets:
                item.assets[pol] = item.assets[key]
        return item

    def _rewrite(self, item: pystac.Item) -> pystac.Item:
        if self.access is None:
            return item
        item = item.clone()
        for asset in item.assets.values():
            href = asset.get_absolute_href() or asset.href
            asset.href = rewrite_href(href, self.access, asset.extra_fields)
        return item


@dataclass
class StaticCatalogSource:
    """A static STAC catalog read with pystac.

    Attributes:
        url: path or URL (``http(s)://``, ``s3://``) of the root ``catalog.json``.
        s2_collections: collection ids holding Sentinel-2 L2A items.
        s1_collections: collection ids holding Sentinel-1 backscatter items.
        adapter: href rewrite and S1 asset mapping applied to every found item.
        stac_io: how the catalog's JSON is read (None: pystac's default, urllib/files).
        policy: which asset hrefs may be opened (None: :meth:`HrefPolicy.for_catalog`
            of ``url``, i.e. files inside the catalog's folder).
        skipped: scenes not delivered: those whose hrefs the policy refuses (ingestion
            records unreadable assets itself).
    """

    url: str
    s2_collections: tuple[str, ...] = S2_COLLECTIONS
    s1_collections: tuple[str, ...] = S1_COLLECTIONS
    name: str = "stac"
    adapter: ItemAdapter = field(default_factory=ItemAdapter)
    stac_io: pystac.StacIO | None = field(default=None, repr=False)
    policy: HrefPolicy | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    _items: dict[str, list[pystac.Item]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.policy is None:
            self.policy = HrefPolicy.for_catalog(self.url)

    def _load(self) -> dict[str, list[pystac.Item]]:
        if self._items is None:
            root = pystac.Catalog.from_file(self.url, stac_io=self.stac_io)
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
        assert self.policy is not None
        return _sorted(self.policy.admit(items, self.skipped))

    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 L2A items intersecting the AOI within the period (sorted by time)."""
        return [self.adapter.s2(it) for it in self._search(self.s2_collections, aoi, start, end)]

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 backscatter items intersecting the AOI within the period."""
        return [self.adapter.s1(it) for it in self._search(self.s1_collections, aoi, start, end)]


@dataclass
class StacApiSource:
    """A STAC API (``/search``), e.g. the CDSE STAC, queried with pystac-client.

    Attributes:
        url: the API root (landing page).
        s2_collections: collection ids holding Sentinel-2 L2A items.
        s1_collections: collection ids holding Sentinel-1 backscatter items (an
            API may not have any; then ``search_s1`` finds nothing).
        adapter: href rewrite and S1 asset mapping applied to every found item.
        max_items: upper bound on items per search (CDSE stops paging at 10,000).
        policy: which asset hrefs may be opened (only http(s) and s3 ones).
        skipped: scenes not delivered: those whose hrefs the policy refuses (ingestion
            records unreadable assets itself).
    """

    url: str
    s2_collections: tuple[str, ...] = S2_COLLECTIONS
    s1_collections: tuple[str, ...] = S1_COLLECTIONS
    name: str = "stac"
    adapter: ItemAdapter = field(default_factory=ItemAdapter)
    max_items: int = MAX_ITEMS
    policy: HrefPolicy = field(default_factory=HrefPolicy)
    skipped: list[dict[str, str]] = field(default_factory=list)
    _collections: set[str] | None = field(default=None, repr=False)
    _client: Any = field(default=None, repr=False)

    def _open(self) -> Any:
        if self._client is None:
            from pystac_client import Client

            self._client = Client.open(self.url)
            self._collections = {c.id for c in self._client.get_collections()}
            log.info("STAC API %s: %d collections", self.url, len(self._collections))
        return self._client

    def _search(
        self, collections: tuple[str, ...], aoi: BaseGeometry, start: dt.date, end: dt.date
    ) -> list[pystac.Item]:
        client = self._open()
        wanted = [c for c in collections if self._collections is None or c in self._collections]
        if not wanted:
            log.info("STAC API %s has none of the collections %s", self.url, collections)
            return []
        search = client.search(
            collections=wanted,
            intersects=mapping(aoi),
            datetime=f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z",
            max_items=self.max_items,
            limit=100,
        )
        items = list(search.items())
        if len(items) >= self.max_items:
            log.warning(
                "STAC search hit %d items, the most one search returns; split the period",
                self.max_items,
            )
        # The API filters by datetime range; the day test keeps both sources identical.
        found = [it for it in items if _in_period(it, start, end)]
        return _sorted(self.policy.admit(found, self.skipped))

    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 L2A items intersecting the AOI within the period (sorted by time)."""
        return [self.adapter.s2(it) for it in self._search(self.s2_collections, aoi, start, end)]

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 backscatter items intersecting the AOI within the period."""
        return [self.adapter.s1(it) for it in self._search(self.s1_collections, aoi, start, end)]


def is_stac_api(root: dict[str, Any]) -> bool:
    """True if a root document is a STAC API landing page (it offers item search)."""
    conforms = root.get("conformsTo") or []
    if any("item-search" in str(c) for c in conforms):
        return True
    return any(link.get("rel") == "search" for link in root.get("links", []))


def _read_root(url: str, stac_io: pystac.StacIO) -> dict[str, Any]:
    try:
        text = stac_io.read_text(url)
    except Exception as exc:  # urllib, file and S3 readers raise different types
        raise InputError(
            f"--stac-url: cannot read {url} ({request_failure(exc)}); pass a STAC API "
            "root or a catalog.json path/URL"
        ) from None
    try:
        doc: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        raise InputError(
            f"--stac-url: {url} is not JSON; pass a STAC API root or catalog.json"
        ) from None
    return doc


def open_stac_source(
    url: str,
    *,
    access: EodataAccess,
    s2_collections: tuple[str, ...] = S2_COLLECTIONS,
    s1_collections: tuple[str, ...] = S1_COLLECTIONS,
    s1_assets: dict[str, str] | None = None,
    name: str = "stac",
    read_root: Callable[[str, pystac.StacIO], dict[str, Any]] = _read_root,
    allow_paths: Sequence[str | Path] = (),
) -> StaticCatalogSource | StacApiSource:
    """A STAC API or a static catalog at ``url``, whichever the root document says it is.

    Assets of a local static catalog may be files in its folder or in ``allow_paths``
    (:class:`HrefPolicy`).

    Configures GDAL for the access mode (``/vsicurl`` and ``/vsis3`` settings) so the
    assets read the same way in ingestion's checks and in odc-stac's dask tasks.
    """
    scheme = urlparse(url).scheme
    if scheme not in ("", "file", "http", "https", "s3") or (len(scheme) == 1):
        # a one-letter scheme is a Windows drive ("C:\\...")
        if len(scheme) != 1:
            raise InputError(
                f"--stac-url: unsupported scheme {scheme!r} in {url}; pass an http(s):// "
                "or s3:// URL or a local path"
            )
    configure_gdal(access)
    stac_io = stac_io_for(url, access)
    adapter = ItemAdapter(access=access, s1_assets=dict(s1_assets or {}))
    root = read_root(url, stac_io)
    if is_stac_api(root):
        return StacApiSource(
            url, s2_collections=s2_collections, s1_collections=s1_collections, name=name,
            adapter=adapter,
        )
    return StaticCatalogSource(
        url, s2_collections=s2_collections, s1_collections=s1_collections, name=name,
        adapter=adapter, stac_io=stac_io, policy=HrefPolicy.for_catalog(url, allow_paths),
    )
