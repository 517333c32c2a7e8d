"""Which source serves which sensor: ``--source`` plus ``--s2-source``/``--s1-source``.

Sensors may come from different sources in one run (e.g. S2 from the CDSE STAC
over ``/eodata``, S1 gamma0 from Sentinel Hub). :class:`SplitSource` joins two
sources behind the one :class:`~pipeline.sources.base.Source` protocol, so the
orchestrator and ingestion never learn which source ran.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pystac
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from pipeline.errors import InputError
from pipeline.sources.base import Source

log = logging.getLogger(__name__)

#: The sources a run can use (``--source``, ``--s2-source``, ``--s1-source``).
SOURCE_NAMES = ("demo", "stac", "sentinelhub")


@dataclass(frozen=True)
class SourceChoice:
    """The source options of a run (validated by :func:`check_sources`).

    Attributes:
        s2: source of Sentinel-2 scenes.
        s1: source of Sentinel-1 scenes.
        stac_url: STAC API root or static catalog (None: the CDSE STAC API).
        eodata: EODATA access mode (``auto``, ``mount``, ``s3``, ``https``).
        s1_assets: ``vv=KEY,vh=KEY`` mapping of a STAC S1 collection's assets.
        s1_collection: STAC collection id of the S1 backscatter (None: the known ids).
        s2_collection: STAC collection id of the S2 L2A items (None: ``sentinel-2-l2a``).
        sh_profile: sentinelhub config profile (None: env variables / default profile).
        cache: cache folder (the demo archive, Sentinel Hub downloads in ``cache/sentinelhub``).
        seed: seed of the demo world.
        allow_paths: folders besides a local catalog's own whose files its assets may name.
    """

    s2: str
    s1: str
    stac_url: str | None = None
    eodata: str = "auto"
    s1_assets: str | None = None
    s1_collection: str | None = None
    s2_collection: str | None = None
    sh_profile: str | None = None
    cache: Path = Path(".")
    seed: int = 0
    allow_paths: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``demo``, ``stac``, ``sentinelhub`` or e.g. ``stac+sentinelhub``."""
        return self.s2 if self.s2 == self.s1 else f"{self.s2}+{self.s1}"


def check_sources(choice: SourceChoice) -> None:
    """Entry checks that need no download: names, options, credentials (InputError)."""
    for option, value in (("--s2-source", choice.s2), ("--s1-source", choice.s1)):
        if value not in SOURCE_NAMES:
            raise InputError(f"{option}: unknown source {value!r}; choose one of {SOURCE_NAMES}")
    used = {choice.s2, choice.s1}
    if "stac" in used:
        from pipeline.sources.eodata import resolve_access
        from pipeline.sources.stac import parse_asset_map

        parse_asset_map(choice.s1_assets)
        resolve_access(choice.eodata)
    for folder in choice.allow_paths:
        if not Path(folder).is_dir():
            raise InputError(f"--allow-path: not a folder: {folder}; pass existing folders, "
                             "comma-separated")
    if "sentinelhub" in used:
        from pipeline.sources.sentinelhub import load_config

        load_config(choice.sh_profile)


@dataclass
class SplitSource:
    """Sentinel-2 from one source, Sentinel-1 from another.

    Attributes:
        s2_source: serves ``search_s2``.
        s1_source: serves ``search_s1``.
        name: e.g. ``stac+sentinelhub``.
    """

    s2_source: Source
    s1_source: Source
    name: str

    def search_s2(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-2 items from the S2 source."""
        return self.s2_source.search_s2(aoi, start, end)

    def search_s1(self, aoi: BaseGeometry, start: dt.date, end: dt.date) -> list[pystac.Item]:
        """Sentinel-1 items from the S1 source."""
        return self.s1_source.search_s1(aoi, start, end)

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Scenes either source could not deliver, with the reason."""
        out: list[dict[str, str]] = []
        for src in {id(s): s for s in (self.s2_source, self.s1_source)}.values():
            out.extend(src.skipped)
        return out


_: type[Source] = SplitSource


def open_sources(choice: SourceChoice, geobox: GeoBox | None) -> Source:
    """The source(s) of a run (the demo archive is generated if missing).

    ``geobox`` is the run's grid; sources that download (Sentinel Hub) request on it.
    """
    opened: dict[str, Source] = {}

    def get(kind: str) -> Source:
        if kind not in opened:
            opened[kind] = _open_one(kind, choice, geobox)
        return opened[kind]

    s2, s1 = get(choice.s2), get(choice.s1)
    if s2 is s1:
        return s2
    return SplitSource(s2, s1, choice.name)


def _open_one(kind: str, choice: SourceChoice, geobox: GeoBox | None) -> Source:
    if kind == "demo":
        from pipeline.sources.demo import open_demo_source

        return open_demo_source(choice.cache, choice.seed)
    if kind == "stac":
        from pipeline.sources.eodata import resolve_access
        from pipeline.sources.stac import (
            CDSE_STAC_URL,
            S1_COLLECTIONS,
            S2_COLLECTIONS,
            open_stac_source,
            parse_asset_map,
        )

        return open_stac_source(
            choice.stac_url or CDSE_STAC_URL,
            access=resolve_access(choice.eodata),
            s1_collections=(choice.s1_collection,) if choice.s1_collection else S1_COLLECTIONS,
            s2_collections=(choice.s2_collection,) if choice.s2_collection else S2_COLLECTIONS,
            s1_assets=parse_asset_map(choice.s1_assets),
            allow_paths=choice.allow_paths,
        )
    from pipeline.sources.sentinelhub import SentinelHubSource, load_config

    if geobox is None:
        raise ValueError("the sentinelhub source downloads on the run grid: pass the geobox")
    return SentinelHubSource(load_config(choice.sh_profile), geobox, choice.cache)
