"""The orchestrator: one function per CLI command, stages called in order.

``run_pipeline`` validates everything it can before any graph is built or any
file written, then: search -> lazy cube -> chunked Zarr write -> dask fill ->
COG export. Library code logs; progress reaches the CLI through callbacks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import xarray as xr
from odc.geo.geobox import GeoBox
from shapely.geometry import shape

from pipeline import __version__
from pipeline.aoi import DEFAULT_MAX_AREA_KM2, aoi_in_crs, make_geobox, read_aoi
from pipeline.cluster import ClusterSpec, dashboard_link, open_client
from pipeline.cube import WriteStats, add_grid_mapping, open_cube, signature, write_chunked
from pipeline.errors import InputError, NoDataError
from pipeline.export import (
    PRODUCTS,
    StackSpec,
    make_qml,
    write_extras,
    write_json,
    write_products,
)
from pipeline.fill import compute_filled, default_filler
from pipeline.grd import S1_PROCESSING, grd_options, process_grd_items
from pipeline.ingest import CHUNK, SceneLog, make_cube
from pipeline.sources.base import Source
from pipeline.sources.select import SourceChoice, check_sources, open_sources
from pipeline.sources.stac import StaticCatalogSource
from pipeline.storage import Loc
from pipeline.tiles import DEFAULT_TILE_M, Tile, make_tiles, mosaic_cog
from pipeline.timegrid import TimeGrid

log = logging.getLogger(__name__)

#: Progress callback factory: stage name -> callback(done, total).
ProgressFactory = Callable[[str], Callable[[int, int], None]]

SOURCES = ("demo", "stac", "sentinelhub")
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
    s2_source: str | None = None
    s1_source: str | None = None
    eodata: str = "auto"
    s1_assets: str | None = None
    s1_collection: str | None = None
    s2_collection: str | None = None
    sh_profile: str | None = None
    cache: Path = field(default_factory=default_cache)
    method: str = "sf"
    model: Path | None = None
    crs: str | None = None
    max_area_km2: float = DEFAULT_MAX_AREA_KM2
    chunk: int = CHUNK
    workers: int = max(1, os.cpu_count() or 1)
    seed: int = 0
    tile_m: float = DEFAULT_TILE_M
    remote: str | None = None
    sf_dates: bool = True
    scheduler: str | None = None
    s1_processing: str = "local"
    dem: Path | None = None


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
    tiles: int = 1
    tiles_skipped: int = 0
    location: str = ""


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
    check_sources(source_choice(req))
    if req.method not in METHODS:
        raise InputError(f"--method: unknown method {req.method!r}; choose one of {METHODS}")
    if req.model is not None and not req.model.is_file():
        raise InputError(f"--model: file not found: {req.model}")
    if req.s1_processing not in S1_PROCESSING:
        raise InputError(f"--s1-processing {req.s1_processing!r}: choose one of {S1_PROCESSING}")
    if req.dem is not None and not req.dem.is_file():
        raise InputError(f"--dem: file not found: {req.dem}")
    if req.tile_m < 10 * req.chunk / 4:
        raise InputError(
            f"--tile-size {req.tile_m:g} m is too small for --chunk {req.chunk}; "
            f"pass at least {10 * req.chunk / 4:g} m"
        )
    if req.chunk < 16 or req.chunk > 4096:
        raise InputError(f"--chunk {req.chunk} is out of range; pass 16..4096 pixels")
    check_writable_dir(req.out)
    if req.remote is not None:
        check_remote_out(req.remote)


def source_choice(req: RunRequest) -> SourceChoice:
    """Which source serves which sensor (``--s2-source``, ``--s1-source``; default ``--source``)."""
    return SourceChoice(
        s2=req.s2_source or req.source,
        s1=req.s1_source or req.source,
        stac_url=req.stac_url,
        eodata=req.eodata,
        s1_assets=req.s1_assets,
        s1_collection=req.s1_collection,
        s2_collection=req.s2_collection,
        sh_profile=req.sh_profile,
        cache=req.cache,
    )


def open_source(req: RunRequest, geobox: GeoBox | None = None) -> Source:
    """The scene source(s) of the request (the demo archive is generated if missing).

    ``geobox`` is the run's grid; sources that download (Sentinel Hub) request on it.
    """
    return open_sources(source_choice(req), geobox, lambda: _open_demo(req))


def _open_demo(req: RunRequest) -> Source:
    from pipeline.simulate import default_world
    from pipeline.sources.demo import ensure_demo_archive

    spec = replace(default_world(), seed=req.seed)
    try:
        req.cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--cache: cannot create {req.cache} ({exc.strerror})") from None
    catalog = ensure_demo_archive(req.cache, spec)
    return StaticCatalogSource(str(catalog), name="demo")


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


def _add_skipped(path: Path, skipped: list[dict[str, str]]) -> None:
    """Add scenes a source could not deliver to a written run.json (atomically)."""
    if not skipped or not path.is_file():
        return
    import json

    record = json.loads(path.read_text(encoding="utf-8"))
    known = record.setdefault("scenes", {}).setdefault("skipped", [])
    known.extend(s for s in skipped if s not in known)
    tmp = path.with_name(path.name + ".part")
    write_json(record, tmp)
    os.replace(tmp, path)


def _noop(_: str) -> Callable[[int, int], None]:
    return lambda done, total: None


def run_pipeline(req: RunRequest, progress: ProgressFactory = _noop) -> RunSummary:
    """Run ingestion, fill and export for one AOI and period; return the summary.

    The AOI is cut into tiles of ``req.tile_m`` metres (one tile for small AOIs,
    whose products then go straight into ``req.out``); each tile is an
    independent, resumable unit whose products are mosaicked at the end.
    """
    t0 = time.perf_counter()
    validate(req)
    aoi = read_aoi(req.aoi, max_area_km2=req.max_area_km2)
    geobox = make_geobox(aoi, crs=req.crs)
    grid = TimeGrid.covering(req.start, req.end)
    filler = default_filler(req.model, req.method, use_dates=req.sf_dates)

    source = open_source(req, geobox)
    s2_items = source.search_s2(aoi.geometry, grid.start, grid.end)
    s1_items = source.search_s1(aoi.geometry, grid.start, grid.end)
    if not s2_items:
        raise NoDataError(
            f"no Sentinel-2 scenes from source {source.name!r} for the AOI between "
            f"{req.start} and {req.end}; check the period and the AOI"
        )
    _demo_extent_check(source, aoi.geometry, s2_items)
    log.info("found %d Sentinel-2 and %d Sentinel-1 scenes", len(s2_items), len(s1_items))
    assert geobox.crs is not None
    tiles = make_tiles(geobox, aoi_in_crs(aoi, geobox.crs.to_wkt()), req.tile_m)

    req.out.mkdir(parents=True, exist_ok=True)
    scenes = SceneLog()
    scenes.skipped.extend(getattr(source, "skipped", []))  # scenes a source could not deliver
    stats: list[TileResult] = []
    cluster = ClusterSpec(scheduler=req.scheduler, workers=req.workers)
    with _maybe_client(cluster, progress) as client:
        for n, tile in enumerate(tiles, start=1):
            rel = "" if len(tiles) == 1 else f"tiles/{tile.id}"
            tile_dir = req.out / rel if rel else req.out
            log.info("tile %s (%d of %d)", tile.id, n, len(tiles))
            stats.append(
                run_tile(
                    req,
                    tile,
                    tile_dir,
                    aoi,
                    grid,
                    source.name,
                    s2_items,
                    s1_items,
                    filler,
                    scenes,
                    progress,
                    parallel=client is None,
                    remote=_remote(req, rel),
                )
            )
        record = _run_record(req, grid, scenes, filler.name, stats)
        if len(tiles) > 1:
            products = _mosaic(
                req.out, [s.directory for s in stats], record, geobox, grid.iso_dates()
            )
        else:
            _add_skipped(req.out / "run.json", getattr(source, "skipped", []))
            products = sorted(
                p
                for p in req.out.iterdir()
                if p.suffix in (".tif", ".json", ".qml", ".qgs", ".png") or p.name == "stac"
            )
        if req.remote is not None:
            _upload_products(req.out, Loc(req.remote))
    inside = sum(s.pixels_in_aoi for s in stats)
    observed = sum(s.observed_cells for s in stats)
    cells = inside * grid.count
    return RunSummary(
        out=req.out,
        pixels=int(sum(t.geobox.shape[0] * t.geobox.shape[1] for t in tiles)),
        pixels_in_aoi=inside,
        dates=grid.count,
        observed_share=observed / cells if cells else 0.0,
        filled_share=1 - observed / cells if cells else 0.0,
        products=[p.name for p in products],
        scenes_used=len({u["id"] for u in scenes.used}),
        scenes_skipped=len({u["id"] for u in scenes.skipped}),
        chunks_skipped=sum(s.chunks_skipped for s in stats),
        seconds=time.perf_counter() - t0,
        tiles=len(tiles),
        tiles_skipped=sum(s.skipped for s in stats),
        location=req.remote or str(req.out),
    )


def _remote(req: RunRequest, rel: str) -> Loc | None:
    if req.remote is None:
        return None
    return Loc(req.remote) / rel if rel else Loc(req.remote)


def check_remote_out(url: str) -> None:
    """InputError unless the object-storage location can be listed and written."""
    if not url.startswith("s3://"):
        raise InputError(f"--out: unsupported URL scheme in {url}; use a local folder or s3://")
    loc = Loc(url) / ".write-test"
    try:
        loc.write_text("ok")
        loc.rmtree()
    except Exception as exc:  # botocore/s3fs raise many types
        raise InputError(
            f"--out: cannot write to {url} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "check the bucket and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_ENDPOINT_URL"
        ) from None


def _upload_products(local: Path, remote: Loc) -> None:
    """Copy the products of ``local`` (not the cube, already remote) to ``remote``;
    run.json goes last, so its presence means the upload is complete."""
    names = sorted(
        p.name
        for p in local.iterdir()
        if p.name not in ("run.json", "cube.zarr", "cube.zarr.progress", "tiles")
        and not p.name.startswith(".staging-")
    )
    for name in names:
        (remote / name).upload(local / name)
    if (local / "run.json").exists():
        (remote / "run.json").upload(local / "run.json")


@contextmanager
def _maybe_client(spec: ClusterSpec, progress: ProgressFactory) -> Iterator[Any]:
    """A dask.distributed client, or None for ``--scheduler threads`` (in-process threads)."""
    if spec.scheduler == "threads":
        yield None
        return
    with open_client(spec) as client:
        link = dashboard_link(client)
        if link:
            log.warning("dask dashboard: %s", link)
        yield client


@dataclass(frozen=True)
class TileResult:
    """What one tile contributed (for the summary and run.json)."""

    id: str
    directory: Path
    pixels_in_aoi: int
    observed_cells: int
    chunks_skipped: int
    skipped: bool
    ingest: WriteStats
    fill: WriteStats
    seconds: dict[str, float] = field(default_factory=dict)
    pixels: int = 0


def _items_over(items: list[Any], footprint: Any) -> list[Any]:
    return [it for it in items if it.geometry is None or shape(it.geometry).intersects(footprint)]


def run_tile(
    req: RunRequest,
    tile: Tile,
    tile_dir: Path,
    aoi: Any,
    grid: TimeGrid,
    source_name: str,
    s2_items: list[Any],
    s1_items: list[Any],
    filler: Any,
    scenes: SceneLog,
    progress: ProgressFactory,
    parallel: bool = True,
    remote: Loc | None = None,
) -> TileResult:
    """Cube, fill and products of one tile; a tile finished earlier is only re-read."""
    geobox = tile.geobox
    footprint = geobox.extent.to_crs("EPSG:4326").geom
    s2 = _items_over(s2_items, footprint)
    s1 = _items_over(s1_items, footprint)
    tile_scenes = SceneLog()
    # GRD products in radar geometry become calibrated backscatter on the tile's grid
    s1 = process_grd_items(
        s1,
        geobox,
        req.cache / "grd",
        req.dem,
        grd_options(req.eodata),
        tile_scenes,
        processing=req.s1_processing,
    )
    cube = make_cube(s2, s1, aoi, geobox, grid, tile_scenes, chunk=req.chunk)
    scenes.used.extend(tile_scenes.used)
    scenes.skipped.extend(tile_scenes.skipped)
    if not any(u["sensor"] == "sentinel-2" for u in tile_scenes.used):
        raise NoDataError(
            f"all {len(s2)} Sentinel-2 scenes of tile {tile.id} were unreadable; "
            "see run.json or the log for the reasons"
        )
    cube = add_grid_mapping(cube, geobox)
    cube.attrs.update(
        Conventions="CF-1.10",
        title="Sentinel-1/2 cube on a 6-day grid",
        source=source_name,
        tile=tile.id,
        time_grid=f"{grid.step_days}-day bins from epoch 2015-01-01, first bin {grid.start}",
        scenes_json=_json(tile_scenes.used),
        skipped_json=_json(tile_scenes.skipped),
        history=f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} s1s2-gapfill "
        f"{__version__} ingest",
    )
    tile_dir.mkdir(parents=True, exist_ok=True)
    # With --out on object storage the cube lives there (workers write to it directly,
    # so any VM can resume); products are made locally and uploaded.
    store = (remote / "cube.zarr") if remote is not None else Loc.of(tile_dir / "cube.zarr")
    sig = signature(
        geobox=str(geobox),
        grid=asdict(grid),
        scenes=[u["id"] for u in tile_scenes.used],
        version=__version__,
    )
    fill_sig = signature(ingest=sig, filler=repr(filler))
    done_marker = store.with_suffix_name(".progress") / f"tile-{fill_sig}.done"
    workers = req.workers if parallel else 1
    if remote is not None and done_marker.exists():
        for p in _required():  # a tile finished on another machine: fetch its products
            if not (tile_dir / p.filename).exists() and (remote / p.filename).exists():
                (remote / p.filename).download(tile_dir / p.filename)
    if done_marker.exists() and all((tile_dir / p.filename).exists() for p in _required()):
        ingest_stats = fill_stats = WriteStats(written=0, skipped=_n_regions(cube))
        seconds = {}
        skipped = True
    else:
        t0 = time.perf_counter()
        ingest_stats = write_chunked(
            cube, store, "ingest", sig, progress=progress(f"ingest {tile.id}"), workers=workers
        )
        t1 = time.perf_counter()
        filled = compute_filled(open_cube(store), filler)
        fill_stats = write_chunked(
            filled,
            store,
            "fill",
            fill_sig,
            progress=progress(f"fill {tile.id}"),
            new_store=False,
            workers=workers,
        )
        t2 = time.perf_counter()
        final = open_cube(store)
        record = _run_record(req, grid, tile_scenes, filler.name, [])
        record["tile"] = tile.id
        record["tiles"] = [
            {
                "id": tile.id,
                "skipped_as_complete": False,
                "ingest": asdict(ingest_stats),
                "fill": asdict(fill_stats),
                "seconds": {"ingest": t1 - t0, "fill": t2 - t1},
                "pixels": int(geobox.shape[0] * geobox.shape[1]),
            }
        ]
        write_products(final, geobox, grid.iso_dates(), tile_dir, record)
        seconds = {"ingest": t1 - t0, "fill": t2 - t1, "export": time.perf_counter() - t2}
        if remote is not None and remote.url != (Loc(req.remote or "")).url:
            _upload_products(tile_dir, remote)  # tile products of a multi-tile run
        done_marker.write_text(json.dumps(seconds))
        skipped = False
    final = open_cube(store)
    inside_mask = final["aoi_mask"] > 0
    inside = int(inside_mask.sum().compute())
    observed = int(final["observed"].where(inside_mask, 0).sum().compute())
    return TileResult(
        id=tile.id,
        directory=tile_dir,
        pixels_in_aoi=inside,
        observed_cells=observed,
        chunks_skipped=ingest_stats.skipped + fill_stats.skipped,
        skipped=skipped,
        ingest=ingest_stats,
        fill=fill_stats,
        seconds=seconds,
        pixels=int(geobox.shape[0] * geobox.shape[1]),
    )


def _required() -> list[StackSpec]:
    return [p for p in PRODUCTS if p.variable != "ndvi_std"]


def _n_regions(ds: Any) -> int:
    return int(len(ds.chunks["y"]) * len(ds.chunks["x"]))


def _mosaic(
    out: Path, tile_dirs: list[Path], record: dict[str, Any], geobox: Any, dates: list[str]
) -> list[Path]:
    """Mosaic every product the tiles share into ``out``, with styles, the QGIS project,
    the STAC catalog and run.json (the quicklook stays per tile)."""
    written = []
    for spec in PRODUCTS:
        sources = [d / spec.filename for d in tile_dirs]
        if not all(p.exists() for p in sources):
            continue
        target = out / spec.filename
        mosaic_cog(sources, target, resampling="NEAREST" if spec.dtype == "uint8" else "AVERAGE")
        written.append(target)
        if spec.style:
            qml = out / spec.filename.replace(".tif", ".qml")
            qml.write_text(make_qml(spec.style))
            written.append(qml)
    record["products"] = sorted(p.name for p in written if p.suffix == ".tif")
    write_extras(xr.Dataset(), geobox, dates, out, record, PRODUCTS)
    written += [p for p in (out / "products.qgs", out / "stac") if p.exists()]
    tmp = out / "run.json.part"
    write_json(record, tmp)
    os.replace(tmp, out / "run.json")
    written.append(out / "run.json")
    return sorted(written)


def _unique(entries: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for e in entries:
        seen.setdefault(str(e.get("id")), e)
    return list(seen.values())


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)


def _run_record(
    req: RunRequest, grid: TimeGrid, scenes: SceneLog, method: str, tiles: list[TileResult]
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
        "scenes": {"used": _unique(scenes.used), "skipped": _unique(scenes.skipped)},
        "tiles": [
            {
                "id": t.id,
                "skipped_as_complete": t.skipped,
                "ingest": asdict(t.ingest),
                "fill": asdict(t.fill),
                "seconds": t.seconds,
                "pixels": t.pixels,
            }
            for t in tiles
        ],
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
