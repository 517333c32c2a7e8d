"""The orchestrator: one function per CLI command, stages called in order.

``run_pipeline`` validates everything it can before any graph is built or any
file written, then: search -> lazy cube -> chunked Zarr write -> dask fill ->
COG export. Library code logs; progress reaches the CLI through callbacks.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shapely.geometry import shape

from pipeline import __version__
from pipeline.aoi import DEFAULT_MAX_AREA_KM2, make_geobox, read_aoi
from pipeline.cube import WriteStats, add_grid_mapping, open_cube, signature, write_chunked
from pipeline.errors import InputError, NoDataError
from pipeline.export import write_products
from pipeline.fill import compute_filled, default_filler
from pipeline.ingest import CHUNK, SceneLog, make_cube
from pipeline.sources.base import Source
from pipeline.sources.stac import StaticCatalogSource
from pipeline.timegrid import TimeGrid

log = logging.getLogger(__name__)

#: Progress callback factory: stage name -> callback(done, total).
ProgressFactory = Callable[[str], Callable[[int, int], None]]

SOURCES = ("demo", "stac")
METHODS = ("sf", "linear")


def default_cache() -> Path:
    """Cache folder for the demo archive and downloads (``$S1S2_CACHE`` overrides)."""
    env = os.environ.get("S1S2_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s1s2-gapfill"


@dataclass(frozen=True)
class RunRequest:
    """Everything ``pipeline run`` needs (validated by :func:`validate`)."""

    aoi: Path
    out: Path
    start: dt.date
    end: dt.date
    source: str = "demo"
    stac_url: str | None = None
    cache: Path = field(default_factory=default_cache)
    method: str = "sf"
    model: Path | None = None
    crs: str | None = None
    max_area_km2: float = DEFAULT_MAX_AREA_KM2
    chunk: int = CHUNK
    workers: int = max(1, os.cpu_count() or 1)
    seed: int = 0


@dataclass(frozen=True)
class RunSummary:
    """What a run produced (printed by the CLI)."""

    out: Path
    pixels: int
    pixels_in_aoi: int
    dates: int
    observed_share: float
    filled_share: float
    products: list[str]
    scenes_used: int
    scenes_skipped: int
    chunks_skipped: int
    seconds: float


def check_writable_dir(path: Path, option: str = "--out") -> None:
    """InputError unless ``path`` is (or can be created as) a writable folder."""
    p = path.absolute()
    if p.exists() and not p.is_dir():
        raise InputError(f"{option}: {path} exists and is not a folder; pass a folder path")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{option}: cannot create {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{option}: cannot write to {path} (no write permission on {probe})")


def validate(req: RunRequest) -> None:
    """Input checks that need no data: dates, options, output folder."""
    if req.end < req.start:
        raise InputError(
            f"--end {req.end} is before --start {req.start}; pass an end date after the start"
        )
    if req.source not in SOURCES:
        raise InputError(f"--source: unknown source {req.source!r}; choose one of {SOURCES}")
    if req.source == "stac" and not req.stac_url:
        raise InputError("--stac-url is required with --source stac (a catalog.json path or URL)")
    if req.method not in METHODS:
        raise InputError(f"--method: unknown method {req.method!r}; choose one of {METHODS}")
    if req.model is not None and not req.model.is_file():
        raise InputError(f"--model: file not found: {req.model}")
    if req.chunk < 16 or req.chunk > 4096:
        raise InputError(f"--chunk {req.chunk} is out of range; pass 16..4096 pixels")
    check_writable_dir(req.out)


def open_source(req: RunRequest) -> Source:
    """The scene source named in the request (the demo archive is generated if missing)."""
    if req.source == "demo":
        from pipeline.simulate import default_world
        from pipeline.sources.demo import ensure_demo_archive

        spec = replace(default_world(), seed=req.seed)
        try:
            req.cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--cache: cannot create {req.cache} ({exc.strerror})") from None
        catalog = ensure_demo_archive(req.cache, spec)
        return StaticCatalogSource(str(catalog), name="demo")
    assert req.stac_url is not None
    return StaticCatalogSource(req.stac_url)


def _demo_extent_check(source: Source, aoi_geom: Any, s2_items: list[Any]) -> None:
    if source.name != "demo" or not s2_items:
        return
    footprint = shape(s2_items[0].geometry)
    if not footprint.contains(aoi_geom):
        w, s, e, n = footprint.bounds
        raise InputError(
            f"--aoi: the demo archive covers only lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}; "
            "pick an AOI inside it (e.g. examples/lithuania.geojson) or use --source stac"
        )


def _noop(_: str) -> Callable[[int, int], None]:
    return lambda done, total: None


def run_pipeline(req: RunRequest, progress: ProgressFactory = _noop) -> RunSummary:
    """Run ingestion, fill and export for one AOI and period; return the summary."""
    t0 = time.perf_counter()
    validate(req)
    aoi = read_aoi(req.aoi, max_area_km2=req.max_area_km2)
    geobox = make_geobox(aoi, crs=req.crs)
    grid = TimeGrid.covering(req.start, req.end)
    filler = default_filler(req.model, req.method)

    source = open_source(req)
    s2_items = source.search_s2(aoi.geometry, grid.start, grid.end)
    s1_items = source.search_s1(aoi.geometry, grid.start, grid.end)
    if not s2_items:
        raise NoDataError(
            f"no Sentinel-2 scenes from source {source.name!r} for the AOI between "
            f"{req.start} and {req.end}; check the period and the AOI"
        )
    _demo_extent_check(source, aoi.geometry, s2_items)
    log.info("found %d Sentinel-2 and %d Sentinel-1 scenes", len(s2_items), len(s1_items))

    scenes = SceneLog()
    cube = make_cube(s2_items, s1_items, aoi, geobox, grid, scenes, chunk=req.chunk)
    if not any(u["sensor"] == "sentinel-2" for u in scenes.used):
        raise NoDataError(
            f"all {len(s2_items)} Sentinel-2 scenes were unreadable; see the log for reasons"
        )
    cube = add_grid_mapping(cube, geobox)
    cube.attrs.update(
        Conventions="CF-1.10",
        title="Sentinel-1/2 cube on a 6-day grid",
        source=source.name,
        time_grid=f"{grid.step_days}-day bins from epoch 2015-01-01, first bin {grid.start}",
        scenes_json=_json(scenes.used),
        skipped_json=_json(scenes.skipped),
        history=f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} s1s2-gapfill "
        f"{__version__} ingest",
    )
    req.out.mkdir(parents=True, exist_ok=True)
    store = req.out / "cube.zarr"
    sig = signature(
        geobox=str(geobox),
        grid=asdict(grid),
        scenes=[u["id"] for u in scenes.used],
        version=__version__,
    )
    ingest_stats = write_chunked(
        cube, store, "ingest", sig, progress=progress("ingest"), workers=req.workers
    )
    stored = open_cube(store)
    filled = compute_filled(stored, filler)
    fill_sig = signature(ingest=sig, filler=repr(filler))
    fill_stats = write_chunked(
        filled,
        store,
        "fill",
        fill_sig,
        progress=progress("fill"),
        new_store=False,
        workers=req.workers,
    )
    final = open_cube(store)
    record = _run_record(req, grid, scenes, filler.name, ingest_stats, fill_stats)
    products = write_products(final, geobox, grid.iso_dates(), req.out, record)

    inside = final["aoi_mask"].values > 0
    obs = final["observed"].values[:, inside]
    return RunSummary(
        out=req.out,
        pixels=int(geobox.shape[0] * geobox.shape[1]),
        pixels_in_aoi=int(inside.sum()),
        dates=grid.count,
        observed_share=float(obs.mean()) if obs.size else 0.0,
        filled_share=float(1 - obs.mean()) if obs.size else 0.0,
        products=[p.name for p in products],
        scenes_used=len(scenes.used),
        scenes_skipped=len(scenes.skipped),
        chunks_skipped=ingest_stats.skipped + fill_stats.skipped,
        seconds=time.perf_counter() - t0,
    )


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)


def _run_record(
    req: RunRequest,
    grid: TimeGrid,
    scenes: SceneLog,
    method: str,
    ingest: WriteStats,
    fill: WriteStats,
) -> dict[str, Any]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in ("numpy", "xarray", "dask", "rasterio", "odc-stac", "zarr", "torch", "pystac"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    record: dict[str, Any] = {
        "software": "s1s2-gapfill",
        "version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": versions,
        "parameters": {
            k: (str(v) if isinstance(v, Path | dt.date) else v) for k, v in asdict(req).items()
        },
        "time_grid": {
            "epoch": "2015-01-01",
            "step_days": grid.step_days,
            "dates": grid.iso_dates(),
        },
        "fill_method": method,
        "scenes": {"used": scenes.used, "skipped": scenes.skipped},
        "chunks": {"ingest": asdict(ingest), "fill": asdict(fill)},
    }
    if method == "sf":
        record["model"] = _model_info(req.model)
    return record


def _model_info(path: Path | None) -> dict[str, Any]:
    import hashlib

    import model

    weights = (
        Path(path)
        if path is not None
        else Path(model.__file__).parent / "weights" / "sf.safetensors"
    )
    return {
        "weights": str(weights),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
