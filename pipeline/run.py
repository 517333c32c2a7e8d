"""The orchestrator: one function per CLI command, stages called in order.

``run_pipeline`` validates the request before any graph is built or any file
written and turns it into the values the stages take (grid, time grid, filler,
ingest options, output place); nothing below it sees the request. Then, per tile:
search -> lazy cube -> chunked Zarr write -> dask fill -> COG export, and a mosaic
of the tiles. Library code logs; progress reaches the CLI through callbacks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pystac
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from pipeline.aoi import AOI, aoi_in_crs, make_geobox, read_aoi
from pipeline.blocks import n_chunks
from pipeline.checks import check_filled_tile
from pipeline.cluster import ClusterSpec, choose_scheduler, client_for, preload_filler
from pipeline.cube import (
    TileSignatures,
    WriteStats,
    describe_cube,
    n_regions,
    open_cube,
    write_chunked,
)
from pipeline.errors import NoDataError
from pipeline.export import PRODUCTS, write_products
from pipeline.fill import Filler, compute_filled, default_filler
from pipeline.ingest import IngestOptions, SceneLog, backscatter_items, make_cube
from pipeline.parcel_table import ParcelSums, cube_sums, finish_parcels
from pipeline.provenance import TileEntry, add_skipped, run_record
from pipeline.request import (
    RunRequest,
    request_parameters,
    run_signature,
    source_choice,
    validate,
)
from pipeline.segments import CHOICE as SEGMENTS
from pipeline.segments import segment_layers
from pipeline.sources.demo import check_demo_extent
from pipeline.sources.select import open_sources
from pipeline.storage import (
    Loc,
    OutputPlace,
    check_disk_space,
    check_resume,
    claim_out,
    upload_products,
)
from pipeline.tiles import Tile, make_tiles, mosaic_products
from pipeline.timegrid import TimeGrid
from pipeline.zones import Parcels, prepare_parcels, zone_layers

log = logging.getLogger(__name__)

#: Progress callback factory: stage name -> callback(done, total).
ProgressFactory = Callable[[str], Callable[[int, int], None]]

#: Products a finished tile must have (``ndvi_std`` is absent for fillers without one).
_REQUIRED = [p.filename for p in PRODUCTS if p.variable != "ndvi_std"]


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


@dataclass(frozen=True)
class TilePlan:
    """What every tile of a run shares.

    Attributes:
        aoi: the area of interest.
        grid: the run's time grid.
        filler: the gap filler.
        ingest: how scenes become a cube.
        source: name of the scene source (cube attribute).
        s2_items: Sentinel-2 items over the AOI (each tile takes those over it).
        s1_items: Sentinel-1 items over the AOI.
        parameters: the request as recorded in run.json.
        workers: local threads that write chunks (1 when a dask cluster does the work).
        tiled: the run has several tiles (each then uploads its own products).
        parcels: the run's zone table (``--parcels``), or None.
        segments: cut each tile into segments after its cube is written (``--segments``).
    """

    aoi: AOI
    grid: TimeGrid
    filler: Filler
    ingest: IngestOptions
    source: str
    s2_items: list[pystac.Item]
    s1_items: list[pystac.Item]
    parameters: Mapping[str, Any]
    workers: int = 1
    tiled: bool = False
    parcels: Parcels | None = None
    segments: bool = False

    @property
    def zones_key(self) -> str:
        """What the tiles' zones are made of (part of their signatures), "" for none."""
        if self.parcels is not None:
            return self.parcels.digest
        return f"segments {SEGMENTS}" if self.segments else ""


@dataclass(frozen=True)
class TileResult:
    """What one tile contributed (for the summary and run.json)."""

    entry: TileEntry
    directory: Path
    pixels_in_aoi: int
    observed_cells: int
    parcel_sums: ParcelSums | None = None


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
    assert geobox.crs is not None
    parcels = None if req.parcels is None else prepare_parcels(
        req.parcels, aoi_in_crs(aoi, geobox.crs.to_wkt()), geobox, req.parcel_id,
        req.min_parcel_pixels)
    grid = TimeGrid.covering(req.start, req.end)
    filler = default_filler(req.model, req.method, use_dates=req.sf_dates)
    ingest = IngestOptions(req.chunk, req.cache / "grd", req.dem, req.eodata, req.s1_processing)
    place = OutputPlace(req.out, None if req.remote is None else Loc(req.remote))
    sig = run_signature(req, aoi.geometry.wkb)
    check_resume(req.out, sig, req.overwrite)  # again under the lock, in claim_out
    check_disk_space(req.out, geobox.shape[0] * geobox.shape[1], grid.count)

    source = open_sources(source_choice(req), geobox)
    s2_items = source.search_s2(aoi.geometry, grid.start, grid.end)
    s1_items = source.search_s1(aoi.geometry, grid.start, grid.end)
    if not s2_items:
        raise NoDataError(
            f"no Sentinel-2 scenes from source {source.name!r} for the AOI between "
            f"{req.start} and {req.end}; check the period and the AOI"
        )
    check_demo_extent(source, aoi.geometry, s2_items)
    log.info("found %d Sentinel-2 and %d Sentinel-1 scenes", len(s2_items), len(s1_items))
    tiles = make_tiles(geobox, aoi_in_crs(aoi, geobox.crs.to_wkt()), req.tile_m)

    scenes = SceneLog()
    scenes.skipped.extend(source.skipped)  # scenes a source could not deliver
    plan = TilePlan(aoi, grid, filler, ingest, source.name, s2_items, s1_items,
                    request_parameters(req), parcels=parcels, segments=req.segments)
    chunks = sum(n_chunks(t.geobox.shape, req.chunk) for t in tiles)
    spec = choose_scheduler(ClusterSpec(scheduler=req.scheduler, workers=req.workers), chunks)
    with claim_out(req.out, sig, req.overwrite), client_for(spec) as client:
        preload_filler(client, filler)
        plan = replace(plan, workers=req.workers if client is None else 1, tiled=len(tiles) > 1)
        stats = run_tiles(plan, tiles, place, scenes, progress,
                          tiles_in_flight(client is not None, len(tiles)))
        record = run_record(plan.parameters, grid, scenes, filler, [s.entry for s in stats])
        if len(tiles) > 1:
            products = mosaic_products(
                req.out, [s.directory for s in stats], record, geobox, grid
            )
        else:
            add_skipped(req.out / "run.json", source.skipped)
            products = sorted(
                p
                for p in req.out.iterdir()
                if p.suffix in (".tif", ".nc", ".json", ".qml", ".qgs", ".png") or p.name == "stac"
            )
        products += finish_parcels(req.out, parcels, [s.parcel_sums for s in stats], grid)
        if place.remote is not None:
            upload_products(req.out, place.remote)
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
        chunks_skipped=sum(s.entry.ingest.skipped + s.entry.fill.skipped for s in stats),
        seconds=time.perf_counter() - t0,
        tiles=len(tiles),
        tiles_skipped=sum(s.entry.skipped for s in stats),
        location=req.remote or str(req.out),
    )


#: Tiles run at once on a dask cluster (see :func:`tiles_in_flight`).
TILES_IN_FLIGHT = 2
#: One tile's export at a time: it writes netCDF through HDF5 and draws the quicklook
#: with matplotlib, neither of which may run in two threads at once.
_EXPORT_LOCK = threading.Lock()


def tiles_in_flight(cluster: bool, n_tiles: int) -> int:
    """How many tiles run at once: on a dask cluster two, so the client's share of a
    tile (scene checks, GRD processing, graph building, the export) overlaps the
    workers' chunks of the other and the cluster's queue never drains at a tile's
    end; with in-process threads one (its threads already are the machine's cores).
    Exports never overlap each other (``_EXPORT_LOCK``)."""
    return min(TILES_IN_FLIGHT, n_tiles) if cluster and n_tiles > 1 else 1


def run_tiles(
    plan: TilePlan, tiles: list[Tile], place: OutputPlace, scenes: SceneLog,
    progress: ProgressFactory, in_flight: int = 1,
) -> list[TileResult]:
    """:func:`run_tile` for every tile, ``in_flight`` at a time, results in tile order.

    Each tile logs its scenes apart and the logs join ``scenes`` in tile order, so
    run.json does not depend on which tile finished first. The first failure cancels
    the tiles not started and is raised once the running ones stop (each tile resumes
    from its own markers).
    """
    logs = [SceneLog() for _ in tiles]

    def one(n: int) -> TileResult:
        tile = tiles[n]
        log.info("tile %s (%d of %d)", tile.id, n + 1, len(tiles))
        rel = "" if len(tiles) == 1 else f"tiles/{tile.id}"
        return run_tile(plan, tile, place.tile(rel), logs[n], progress)

    try:
        if in_flight <= 1:
            return [one(n) for n in range(len(tiles))]
        with ThreadPoolExecutor(in_flight, thread_name_prefix="tile") as pool:
            futures = [pool.submit(one, n) for n in range(len(tiles))]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        for part in logs:
            scenes.used.extend(part.used)
            scenes.skipped.extend(part.skipped)


def _items_over(items: list[pystac.Item], footprint: BaseGeometry) -> list[pystac.Item]:
    return [it for it in items if it.geometry is None or shape(it.geometry).intersects(footprint)]


def _tile_complete(marker: Loc, place: OutputPlace) -> bool:
    """Whether a tile finished earlier; products of a tile finished on another machine
    are fetched from object storage first."""
    if place.remote is not None and marker.exists():
        for name in _REQUIRED:
            if not (place.local / name).exists() and (place.remote / name).exists():
                (place.remote / name).download(place.local / name)
    return marker.exists() and all((place.local / name).exists() for name in _REQUIRED)


def run_tile(
    plan: TilePlan,
    tile: Tile,
    place: OutputPlace,
    scenes: SceneLog,
    progress: ProgressFactory = _noop,
) -> TileResult:
    """Cube, fill and products of one tile; a tile finished earlier is only re-read.

    The tile's scenes are added to ``scenes``. Products of a tile with its own place
    on object storage (a multi-tile run) are uploaded there.
    """
    geobox = tile.geobox
    footprint = geobox.extent.to_crs("EPSG:4326").geom
    s2 = _items_over(plan.s2_items, footprint)
    s1 = _items_over(plan.s1_items, footprint)
    tile_scenes = SceneLog()
    s1 = backscatter_items(s1, geobox, tile_scenes, plan.ingest)
    cube = make_cube(s2, s1, plan.aoi, geobox, plan.grid, tile_scenes, chunk=plan.ingest.chunk)
    scenes.used.extend(tile_scenes.used)
    scenes.skipped.extend(tile_scenes.skipped)
    if not any(u["sensor"] == "sentinel-2" for u in tile_scenes.used):
        first = next((s for s in tile_scenes.skipped if s["id"] in {i.id for i in s2}), None)
        why = f" (first, {first['id']}: {first['reason']})" if first else ""
        raise NoDataError(  # no run.json is written for a failed run: the reason goes here
            f"all {len(s2)} Sentinel-2 scenes of tile {tile.id} were unreadable{why}; "
            "the log (-v) lists each one"
        )
    if plan.parcels is not None:
        cube = cube.assign(zone_layers(plan.parcels, geobox, plan.ingest.chunk))
    cube = describe_cube(
        cube, geobox, plan.grid, plan.source, tile.id, (tile_scenes.used, tile_scenes.skipped)
    )
    place.local.mkdir(parents=True, exist_ok=True)
    store = place.cube
    sigs = TileSignatures.of(geobox, plan.grid, [str(u["id"]) for u in tile_scenes.used],
                             plan.filler, zones=plan.zones_key)
    marker = sigs.done_marker(store)
    pixels = int(geobox.shape[0] * geobox.shape[1])
    if _tile_complete(marker, place):
        done = WriteStats(written=0, skipped=n_regions(cube))
        entry = TileEntry(tile.id, True, done, done, {}, pixels)
    else:
        t0 = time.perf_counter()
        ingested = write_chunked(cube, store, "ingest", sigs.ingest,
                                 progress=progress(f"ingest {tile.id}"), workers=plan.workers)
        if plan.segments:  # zones from the written cube, before the fill reads them
            write_chunked(segment_layers(open_cube(store)), store, "segments", sigs.ingest,
                          new_store=False, workers=plan.workers)
        t1 = time.perf_counter()
        filled = compute_filled(open_cube(store), plan.filler)
        fill_stats = write_chunked(filled, store, "fill", sigs.fill,
                                   progress=progress(f"fill {tile.id}"), new_store=False,
                                   workers=plan.workers)
        t2 = time.perf_counter()
        entry = TileEntry(tile.id, False, ingested, fill_stats,
                          {"ingest": t1 - t0, "fill": t2 - t1}, pixels)
        check_filled_tile(open_cube(store), plan.grid.count, tile.id)
        record = run_record(plan.parameters, plan.grid, tile_scenes, plan.filler, [entry])
        record["tile"] = tile.id
        with _EXPORT_LOCK:  # HDF5 (netCDF) and matplotlib are not thread-safe
            write_products(open_cube(store), geobox, plan.grid, place.local, record)
        entry = replace(entry, seconds={**entry.seconds, "export": time.perf_counter() - t2})
        if place.remote is not None and plan.tiled:
            upload_products(place.local, place.remote)  # tile products of a multi-tile run
        marker.write_text(json.dumps(entry.seconds))
    final = open_cube(store)
    inside_mask = final["aoi_mask"] > 0
    return TileResult(
        entry=entry,
        directory=place.local,
        pixels_in_aoi=int(inside_mask.sum().compute()),
        observed_cells=int(final["observed"].where(inside_mask, 0).sum().compute()),
        parcel_sums=None if plan.parcels is None else cube_sums(final, plan.parcels.n_zones),
    )
