"""Each stage's throughput next to its limit on the same work, in one sitting.

    python benchmarks/bench_limits.py [--size 2000] [--workers 2] [--chunk 256] [--repeat 3]
                                      [--cache DIR]

On a square AOI of ``--size`` metres inside the demo world (off the tile lattice; the
world is 4.8 km wide, so at most 4000 m: bench_scale's 16x AOI), with
``--workers`` local threads, one process:

* ingest (the pipeline's read, mask, reproject, bin and Zarr write of the cube) against
  the decode limit: plain rasterio reads of the same AOI windows of every asset the
  ingest used, decoded only, and decoded plus one GDAL warp of each window onto the
  grid (S1 from its lat/lon grid, SCL from 20 m) as the reference cost of resampling
  (the ingest resamples S1 itself, per pixel centre: ``pipeline.warp``);
* fill (the pipeline's fill stage: read the cube, fill the AOI's pixels, write) against
  the SF kernel (``ModelFiller.fill``) on the same pixels, already in memory;
* mowing (``write_cut_days``: read the filled series, detect, store; the ``zdrop`` rule)
  against the detector on the same series in memory, in parts of one chunk's pixels;
  and the learned detectors (on the observations) on a sample of the AOI's pixels in
  memory, for their core-hours: ``learned-fast``, the default of ``mowing``'s per-pixel
  rasters, as ``mowing`` runs it (pixels without a season skip it; their share of the
  sample is printed), and the ``learned`` ensemble, the default of its per-parcel events;
* export (COG stacks, netCDF, QGIS project, STAC, quicklook) with no limit measured, at
  the AOI and at its quarter: the two sizes split its cost into a per-pixel part and a
  fixed part per product set (one per tile), which is how it is projected.

Ingest and its two limits are timed ``--repeat`` times, one after the other (ingest,
decode, decode + warps), the pool of open datasets emptied before each ingest, after an
untimed ingest of the same AOI: a fresh process's first ingest grows its heap and block
cache and loads its codecs, which a run pays once per worker, not per chunk (its time is
printed apart);
the ratio of each of these paired runs is printed and the table takes the pair of
median ratio (timings of one short run on a shared machine move by 20-30 %).
The limits run on the same number of threads as the stages. Each line gives the
stage's pixels per second, the limit's and their ratio, and the projection for
Lithuania (6.5e8 pixels, one season) in core-hours at the measured rate per thread
(and from the CPU time the stage used, which other jobs on the machine do not inflate).
The SF model is loaded before anything is timed (its one-time load is printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.warp
import rasterio.windows
from rasterio.enums import Resampling

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import square_aoi

from pipeline import s1 as s1mod
from pipeline import s2 as s2mod
from pipeline.aoi import make_geobox, read_aoi
from pipeline.baselines import flat_pixels
from pipeline.cube import describe_cube, open_cube, write_chunked
from pipeline.errors import InputError
from pipeline.export import write_products
from pipeline.fill import ModelFiller, compute_filled
from pipeline.handles import POOL
from pipeline.ingest import SceneLog, make_cube
from pipeline.mowing.detect import default_params, detect
from pipeline.mowing.learned import detect_learned, threads_for
from pipeline.mowing.learned import shipped as shipped_learned
from pipeline.mowing.raster import _detect_block, write_cut_days
from pipeline.mowing.series import grid_axes
from pipeline.request import default_cache
from pipeline.sources.demo import check_demo_extent, open_demo_source
from pipeline.tiles import DEFAULT_TILE_M as TILE_M
from pipeline.timegrid import TimeGrid

LITHUANIA_PX = 6.5e8
START, END = dt.date(2023, 4, 1), dt.date(2023, 10, 31)


#: CPU seconds (all threads of this process) of each timed call, by call order.
CPU: list[float] = []


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result); the call's CPU seconds go to :data:`CPU`."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0, out


def _in_threads(jobs: Sequence[Callable[[], Any]], workers: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def _asset_reads(scenes: SceneLog, items: dict[str, Any]) -> list[tuple[str, Resampling | None]]:
    """(href, warp resampling or None) of every asset the ingest read."""
    reads: list[tuple[str, Resampling | None]] = []
    for used in scenes.used:
        item = items[str(used["id"])]
        if used["sensor"] == "sentinel-2":
            for band in s2mod.S2.bands:
                key = s2mod.asset_key(item, band)
                reads.append((item.assets[key].get_absolute_href(), None))
        else:
            for pol in s1mod.S1.polarisations:
                key = s1mod.S1.asset_key(item, pol)
                reads.append((item.assets[key].get_absolute_href(), Resampling.bilinear))
    return reads


def _read_window(href: str, geobox: Any, warp: Resampling | None, warp_all: bool) -> int:
    """Decode the AOI's window of one asset (and warp it onto ``geobox`` if it needs it);
    the number of values decoded."""
    with rasterio.open(href) as src:
        bounds = geobox.extent.to_crs(src.crs.to_wkt()).boundingbox
        window = rasterio.windows.from_bounds(*bounds, transform=src.transform)
        col0, row0 = int(np.floor(window.col_off)), int(np.floor(window.row_off))
        col1 = int(np.ceil(window.col_off + window.width))
        row1 = int(np.ceil(window.row_off + window.height))
        window = rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0).intersection(
            rasterio.windows.Window(0, 0, src.width, src.height))
        data = src.read(1, window=window)
        needs = warp or (Resampling.nearest if src.res[0] > geobox.resolution.x else None)
        if warp_all and needs is not None:
            dst = np.zeros(geobox.shape, np.float32)
            rasterio.warp.reproject(
                data.astype(np.float32), dst, src_transform=src.window_transform(window),
                src_crs=src.crs, dst_transform=geobox.affine, dst_crs=geobox.crs.to_wkt(),
                resampling=needs,
            )
    return int(data.size)


def _line(stage: str, px: int, secs: float, limit_secs: float | None, workers: int,
          limit_name: str, cpu: float, limit_cpu: float | None = None) -> None:
    """One table row; core-hours from wall time x threads and (brackets) CPU time."""
    rate = px / secs
    core_h = LITHUANIA_PX / (rate / workers) / 3600
    cpu_h = LITHUANIA_PX / px * cpu / 3600
    if limit_secs is None or limit_cpu is None:
        print(f"| {stage} | {rate:,.0f} | - | - | {core_h:,.1f} ({cpu_h:,.1f}) | - |")
        return
    lim = px / limit_secs
    lim_h = LITHUANIA_PX / (lim / workers) / 3600
    lim_cpu_h = LITHUANIA_PX / px * limit_cpu / 3600
    print(f"| {stage} | {rate:,.0f} | {lim:,.0f} ({limit_name}) | {secs / limit_secs:.2f} | "
          f"{core_h:,.1f} ({cpu_h:,.1f}) | {lim_h:,.1f} ({lim_cpu_h:,.1f}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=2000.0, help="AOI edge in metres")
    ap.add_argument("--workers", type=int, default=2, help="threads for stages and limits")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--cache", type=Path, default=None, help="demo cache (default: the usual)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="paired runs of ingest and its limits (the median is reported)")
    ap.add_argument("--learned-px", type=int, default=20_000,
                    help="pixels the learned mowing detector is timed on")
    args = ap.parse_args()
    workers = args.workers
    source = open_demo_source(args.cache or default_cache())
    grid = TimeGrid.covering(START, END)
    filler = ModelFiller()
    load_s, _ = _timed(filler.preload)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        aoi = read_aoi(square_aoi(tmp / "aoi.geojson", args.size))
        geobox = make_geobox(aoi)
        px = int(geobox.shape[0] * geobox.shape[1])
        s2 = source.search_s2(aoi.geometry, grid.start, grid.end)
        # an AOI reaching outside the world would count pixels no scene covers
        try:
            check_demo_extent(source, aoi.geometry, s2)
        except InputError as exc:
            raise SystemExit(f"--size {args.size:.0f}: {exc}") from None
        s1 = source.search_s1(aoi.geometry, grid.start, grid.end)
        scenes = SceneLog()
        _timed(lambda: make_cube(s2, s1, aoi, geobox, grid, SceneLog(), chunk=args.chunk))
        build_s, cube = _timed(lambda: make_cube(s2, s1, aoi, geobox, grid, scenes,
                                                 chunk=args.chunk))
        cube = describe_cube(cube, geobox, grid, "demo", "bench", (scenes.used, scenes.skipped))
        store = tmp / "cube.zarr"
        reads = _asset_reads(scenes, {it.id: it for it in [*s2, *s1]})
        # a fresh process's first ingest grows its heap and GDAL's block cache and loads
        # codecs: a run pays that once per worker, not per chunk, so it stays out of the
        # pairs (printed apart); the limits that follow an ingest run warm too
        w0, wc0 = time.perf_counter(), time.process_time()
        write_chunked(cube, tmp / "warm.zarr", "ingest", "i", workers=workers)
        first = (time.perf_counter() - w0, time.process_time() - wc0)
        shutil.rmtree(tmp / "warm.zarr")
        pairs = []  # (ingest, decode, warp) as (wall, cpu) per repeat
        for rep in range(max(1, args.repeat)):
            POOL.clear()  # each ingest opens its datasets and decodes its blocks afresh
            target = store if rep == 0 else tmp / f"cube{rep}.zarr"
            ingest = _timed(lambda t=target: write_chunked(cube, t, "ingest", "i",
                                                           workers=workers))
            decode = _timed(lambda: _in_threads(
                [lambda r=r: _read_window(r[0], geobox, r[1], False) for r in reads], workers))
            sizes = decode[1]
            warped = _timed(lambda: _in_threads(
                [lambda r=r: _read_window(r[0], geobox, r[1], True) for r in reads], workers))
            pairs.append(((ingest[0], CPU[-3]), (decode[0], CPU[-2]), (warped[0], CPU[-1])))
            if target != store:
                shutil.rmtree(target)
        ratios = [i[0] / w[0] for i, _, w in pairs]
        median = sorted(range(len(pairs)), key=lambda k: ratios[k])[len(pairs) // 2]
        (ingest_s, c_ingest), (decode_s, c_decode), (warp_s, c_warp) = pairs[median]
        del CPU[-3 * len(pairs):]

        fill_s, _ = _timed(lambda: write_chunked(
            compute_filled(open_cube(store), filler), store, "fill", "f", new_store=False,
            workers=workers))
        done = open_cube(store)
        t = done.sizes["time"]
        ndvi = np.moveaxis(done["ndvi"].values, 0, -1).reshape(-1, t)
        inside = (done["aoi_mask"].values > 0).reshape(-1) & np.isfinite(ndvi).any(axis=1)
        s1v = {v: np.moveaxis(done[v].values, 0, -1).reshape(-1, t)[inside]
               for v in ("vv_asc", "vv_desc", "vh_asc", "vh_desc")}
        vv = np.stack([s1v["vv_asc"], s1v["vv_desc"]], axis=-1)
        vh = np.stack([s1v["vh_asc"], s1v["vh_desc"]], axis=-1)
        rows = ndvi[inside]
        from pipeline.fill import cube_doy

        doy = cube_doy(done["time"].values)
        # each thread's part interleaved over the AOI: contiguous halves put a forest or
        # a town (pixels without a season, which the filler and the learned detectors
        # take a cheaper path through) in one half and leave the other thread idle at the
        # end, where a run's many chunks through a pool even the load out
        parts = [np.arange(i, len(rows), workers) for i in range(workers)]
        kernel_s, _ = _timed(lambda: _in_threads(
            [lambda p=p: filler.fill(rows[p], vv[p], vh[p], doy=doy) for p in parts], workers))

        mow_s, _ = _timed(lambda: write_cut_days(done, tmp / "cuts.zarr"))
        filled = np.moveaxis(done["ndvi_filled"].values, 0, -1).reshape(-1, t)
        std = np.moveaxis(done["ndvi_std"].values, 0, -1).reshape(-1, t)
        days, dy = grid_axes(TimeGrid.of_starts(done["time"].values))
        params = default_params("zdrop", "filled")
        mparts = np.array_split(np.arange(len(filled)), -(-len(filled) // args.chunk**2))
        detect_s, _ = _timed(lambda: _in_threads(
            [lambda p=p: detect(filled[p], std[p], days, dy, "zdrop", params) for p in mparts],
            workers))
        # the learned detectors read the observations; they run
        # on a sample of the AOI's pixels, one part per thread
        learned = shipped_learned("learned")
        sample = np.flatnonzero(inside)[:: max(1, int(inside.sum()) // args.learned_px)]
        lparts = [sample[i::workers] for i in range(workers)]
        shipped_learned("learned-fast")
        nan_std = np.full((len(sample), t), np.nan)
        flat_share = float(flat_pixels(ndvi[sample]).mean())
        with threads_for(workers):  # torch's threads shared out, as `mowing` runs it
            learned_s, _ = _timed(lambda: _in_threads(
                [lambda p=p: detect_learned(ndvi[p], days, dy, learned) for p in lparts],
                workers))
            # the per-pixel default on the same sample, as `mowing` runs it per chunk:
            # pixels without a season (flat_pixels) skip the detector
            fast_s, _ = _timed(lambda: _in_threads(
                [lambda p=p: _detect_block(ndvi[p], nan_std[: len(p)], days, dy,
                                           "learned-fast", None) for p in lparts], workers))
        # export on the AOI and on its quarter: per-pixel cost and per-tile fixed cost
        # (QGIS project, STAC, quicklook, file opens) from the two sizes; a first export of
        # a small corner, untimed, imports what the products need (once per process)
        qy, qx = geobox.shape[0] // 2, geobox.shape[1] // 2
        corner = open_cube(store).isel(y=slice(0, 16), x=slice(0, 16))
        write_products(corner, geobox[:16, :16], grid, tmp / "out_warm", {"bench": True})
        export_s, _ = _timed(lambda: write_products(open_cube(store), geobox, grid,
                                                    tmp / "out", {"bench": True}))
        quarter = open_cube(store).isel(y=slice(0, qy), x=slice(0, qx))
        _timed(lambda: write_products(quarter, geobox[:qy, :qx], grid, tmp / "out_q",
                                      {"bench": True}))
        px_q = qy * qx

    values = sum(sizes)
    print(f"AOI {args.size:.0f} m square ({geobox.shape[0]} x {geobox.shape[1]} = {px:,} px, "
          f"{int(inside.sum()):,} filled), {t} dates, --chunk {args.chunk}, {workers} threads; "
          f"{len(reads)} asset reads, {values / 1e6:.1f} M values decoded")
    print(f"one-time: SF model load {load_s:.1f} s; lazy cube graph {build_s:.1f} s "
          "(scene checks cached)")
    print(f"ingest: {values / ingest_s / 1e6:.2f} M input values/s; decode only "
          f"{values / decode_s / 1e6:.2f} M/s, decode + warps {values / warp_s / 1e6:.2f} M/s")
    print(f"first ingest in this process (untimed in the pairs): {first[0]:.2f} s wall, "
          f"{first[1]:.2f} s CPU; the median pair's ingest {ingest_s:.2f} s, {c_ingest:.2f} s")
    print(f"ingest / decode + warps, {len(pairs)} paired runs (wall): "
          + ", ".join(f"{q:.2f}" for q in ratios) + f"; the table takes the median "
          f"({ratios[median]:.2f}); CPU time: "
          + ", ".join(f"{i[1] / w[1]:.2f}" for i, _, w in pairs))
    print("\n| stage | px/s | limit px/s | stage / limit time | Lithuania core-h | "
          "at the limit |")
    print("|---|---|---|---|---|---|")
    # CPU: load, warm build, build (ingest and its limits taken out above), fill, kernel,
    # mowing, detect, learned, learned-fast, export, export of the quarter
    c_fill, c_kernel, c_mow, c_detect, c_learned, c_fast, c_export, c_export_q = CPU[3:11]
    _line("ingest", px, ingest_s, warp_s, workers, "decode + warps", c_ingest, c_warp)
    _line("ingest vs decode only", px, ingest_s, decode_s, workers, "decode", c_ingest,
          c_decode)
    _line("fill", px, fill_s, kernel_s, workers, "SF kernel", c_fill, c_kernel)
    _line("mowing (zdrop)", px, mow_s, detect_s, workers, "detector", c_mow, c_detect)
    _line("mowing (learned, the per-parcel default; detector only)", len(sample), learned_s,
          None, workers, "", c_learned)
    _line(f"mowing (learned-fast, the per-pixel default; detector only, {flat_share:.0%} of "
          "the pixels without a season skip it)", len(sample), fast_s, None, workers, "",
          c_fast)
    _line("export", px, export_s, None, workers, "", c_export)
    # export = fixed + per_px * pixels, from the AOI and its quarter (CPU time)
    per_px = max(c_export - c_export_q, 0.0) / max(px - px_q, 1)
    fixed = max(c_export - per_px * px, 0.0)
    tiles = LITHUANIA_PX / (TILE_M / 10) ** 2
    export_h = (per_px * LITHUANIA_PX + fixed * tiles) / 3600
    print(f"\nexport CPU time: {c_export:.2f} s for {px:,} px, {c_export_q:.2f} s for its "
          f"quarter ({px_q:,} px): {per_px * 1e6:.2f} s per million px + {fixed:.2f} s per "
          f"product set (QGIS project, STAC, quicklook); Lithuania in {tiles:,.0f} tiles of "
          f"{TILE_M / 1000:.0f} km: {export_h:,.1f} core-hours")
    cpu_lin = (c_ingest + c_fill) * LITHUANIA_PX / px / 3600 + export_h
    total = ingest_s + fill_s + export_s
    wall_h = LITHUANIA_PX / (px / total / workers) / 3600
    print(f"\ningest + fill + export for Lithuania: {cpu_lin:,.1f} core-hours from the CPU "
          f"time (ingest and fill scaled by pixels, every stage being chunk-wise; export as "
          f"above); {wall_h:,.1f} at the wall-clock rate of this AOI ({px / total:,.0f} px/s "
          f"on {workers} threads, export's fixed cost included as if per pixel). On a "
          "shared machine the wall-clock figures count the other jobs' share too")


if __name__ == "__main__":
    main()
