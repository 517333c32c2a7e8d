"""The ``demo`` source: the embedded, simulated Sentinel-1/2 archive.

The archive is generated once per world spec into a cache folder (see
:mod:`pipeline.simulate`) and then read like any static STAC catalog of COGs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.simulate import WorldSpec, default_world, write_archive

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
