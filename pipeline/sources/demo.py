"""The ``demo`` source: the embedded, simulated Sentinel-1/2 archive.

The archive is generated once per world spec into a cache folder (see
:mod:`pipeline.simulate`) and then read like any static STAC catalog of COGs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pystac
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from pipeline.errors import InputError
from pipeline.simulate import WorldSpec, default_world, write_archive
from pipeline.sources.base import Source
from pipeline.sources.stac import StaticCatalogSource

#: The demo source is a static catalog like any other (checked by mypy).
_: type[Source] = StaticCatalogSource

log = logging.getLogger(__name__)


def ensure_demo_archive(cache: Path, spec: WorldSpec | None = None) -> Path:
    """Path of the demo archive's ``catalog.json`` under ``cache``, generated if missing.

    Each spec gets its own folder ``cache/demo-<hash of the spec>``, so changing the
    world never serves a stale archive; generation is atomic and skipped when the
    catalog already exists.
    """
    spec = spec or default_world()
    root = Path(cache) / f"demo-{spec.key()}"
    log.debug("demo archive for %s at %s", spec, root)
    return write_archive(root, spec)


def open_demo_source(cache: Path, seed: int = 0) -> StaticCatalogSource:
    """The demo source for a world seed; its archive is generated under ``cache`` if missing."""
    spec = replace(default_world(), seed=seed)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--cache: cannot create {cache} ({exc.strerror})") from None
    return StaticCatalogSource(str(ensure_demo_archive(cache, spec)), name="demo")


def check_demo_extent(source: Source, aoi: BaseGeometry, s2_items: list[pystac.Item]) -> None:
    """InputError when the AOI reaches outside the demo archive (other sources: no-op)."""
    if source.name != "demo" or not s2_items:
        return
    footprint = shape(s2_items[0].geometry)
    if not footprint.contains(aoi):
        w, s, e, n = footprint.bounds
        raise InputError(
            f"--aoi: the demo archive covers only lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}; "
            "pick an AOI inside it (e.g. examples/lithuania.geojson) or use --source stac"
        )
