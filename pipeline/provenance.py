"""The provenance record (``run.json``): versions, parameters, time grid, scenes, tiles.

A run's record and each tile's record are built by the same two functions:
:func:`run_record` for the whole and :meth:`TileEntry.as_record` for one tile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.baselines import FLAT_MIN_OBS, FLAT_MIN_SPAN_DAYS
from pipeline.cube import WriteStats
from pipeline.export import write_json
from pipeline.fill import Filler, ModelFiller, shipped_weights
from pipeline.ingest import SceneLog
from pipeline.storage import atomic_write
from pipeline.timegrid import EPOCH, TimeGrid

_PACKAGES = ("numpy", "xarray", "dask", "rasterio", "odc-stac", "zarr", "torch", "pystac",
             "netCDF4")


@dataclass(frozen=True)
class TileEntry:
    """What one tile did, as recorded in run.json.

    Attributes:
        id: the tile's id.
        skipped: True when the tile was complete from an earlier run.
        ingest: chunks written and skipped by ingestion.
        fill: chunks written and skipped by the fill.
        seconds: wall time per stage (empty for a skipped tile).
        pixels: pixels of the tile's grid.
    """

    id: str
    skipped: bool
    ingest: WriteStats
    fill: WriteStats
    seconds: dict[str, float] = field(default_factory=dict)
    pixels: int = 0

    def as_record(self) -> dict[str, Any]:
        """The tile's entry in ``run.json["tiles"]``."""
        return {
            "id": self.id,
            "skipped_as_complete": self.skipped,
            "ingest": asdict(self.ingest),
            "fill": asdict(self.fill),
            "seconds": self.seconds,
            "pixels": self.pixels,
        }


def _unique(entries: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for e in entries:
        seen.setdefault(str(e.get("id")), e)
    return list(seen.values())


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def model_info(path: str | Path | None) -> dict[str, Any]:
    """Weights file and its SHA-256 (None: the shipped weights); reads the file only, so
    the process that writes run.json never imports torch."""
    weights = Path(path) if path is not None else shipped_weights()
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"weights": str(weights), "sha256": digest.hexdigest()}


def run_record(
    parameters: Mapping[str, Any],
    grid: TimeGrid,
    scenes: SceneLog,
    filler: Filler,
    tiles: Sequence[TileEntry] = (),
) -> dict[str, Any]:
    """The provenance record of a run (or of one tile, with its one entry)."""
    record: dict[str, Any] = {
        "software": "s1s2-gapfill",
        "version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": _versions(),
        "parameters": dict(parameters),
        "time_grid": {
            "epoch": EPOCH.isoformat(),
            "step_days": grid.step_days,
            "dates": grid.iso_dates(),
        },
        "fill_method": filler.name,
        "scenes": {"used": _unique(scenes.used), "skipped": _unique(scenes.skipped)},
        "tiles": [t.as_record() for t in tiles],
    }
    if isinstance(filler, ModelFiller):
        record["model"] = model_info(filler.path)
        if filler.flat_amplitude > 0:
            record["flat_pixels"] = (
                "filled by linear interpolation: clear NDVI range (90th - 10th percentile) "
                f"under {filler.flat_amplitude:g} over at least {FLAT_MIN_OBS} clear dates "
                f"spanning at least {FLAT_MIN_SPAN_DAYS} days (pipeline.baselines.flat_pixels)")
    return record


def add_skipped(path: Path, skipped: list[dict[str, str]]) -> None:
    """Add scenes a source could not deliver to a written run.json (atomically)."""
    if not skipped or not path.is_file():
        return
    record = json.loads(path.read_text(encoding="utf-8"))
    known = record.setdefault("scenes", {}).setdefault("skipped", [])
    known.extend(s for s in skipped if s not in known)
    with atomic_write(path) as tmp:
        write_json(record, tmp)
