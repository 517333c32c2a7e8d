"""The pipeline's Sentinel-2 ingest on JPEG2000 assets, as Sentinel-2 is on EODATA.

    python benchmarks/bench_jp2_ingest.py [--size 4000] [--repeat 3] [--folder DIR]

``bench_jp2_chunks.py`` times the ingest's read pattern on bare files; this script
times the ingest itself (``make_cube`` and the Zarr write of the cube, Sentinel-2
only) on a square AOI of ``--size`` metres of the demo world, with the demo's
Sentinel-2 assets (B04, B08, SCL; GeoTIFF, 256-pixel blocks) converted losslessly to
JPEG2000 under ``--folder`` (kept for the next run). The demo's rasters are 480 x 480
pixels, so each JPEG2000 file is one tile, which GDAL decodes whole for any window
that touches it: a 256-pixel chunk of the 4 km AOI touches it as one of four, as a
chunk of a 10 km run tile touches a 1024-pixel tile of a real product as one of
sixteen.

Each case runs in its own process (GDAL's block cache is set once per process), after
an untimed ingest of the same AOI, ``--repeat`` times; the median CPU time is printed
with its ratio to the reference case, one chunk over the whole AOI (each tile decoded
once):

* the default: 256-pixel chunks, two threads, the pipeline's block cache (64 MiB plus
  the decoded tiles of the AOI, ``pipeline.handles.reserve_block_cache``) and one
  handle per JPEG2000 file and process (GDAL caches blocks per handle: through two
  handles, two threads reading a tile at the same time both decode it);
* the same with the cache fixed at 64 MiB (``GDAL_CACHEMAX=64``, no reservation): the
  demo AOI's decoded tiles (about 50 MiB) still fit;
* the same with the cache fixed at 8 MiB: the decoded tiles are then about six times
  the cache, as a real 10 km tile's (0.4-1.7 GiB: about 70 scenes x 3 assets x 1-4
  tiles of 1024 x 1024) are 6-26 times 64 MiB;
* the GeoTIFF originals, 256-pixel chunks, two threads (the demo archive as shipped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import square_aoi

CASES = {
    "default": dict(chunk=256, workers=2, cache_mb=None, jp2=True),
    "cache fixed at 64 MiB": dict(chunk=256, workers=2, cache_mb=64, jp2=True),
    "cache fixed at 8 MiB": dict(chunk=256, workers=2, cache_mb=8, jp2=True),
    "one chunk (reference)": dict(chunk=1024, workers=2, cache_mb=None, jp2=True),
    "GeoTIFF originals": dict(chunk=256, workers=2, cache_mb=None, jp2=False),
}


def convert(href: str, folder: Path, name: str) -> str:
    """A lossless JPEG2000 copy of a GeoTIFF asset (1024-pixel tiles at most)."""
    import rasterio

    out = folder / f"{name}.jp2"
    if not out.exists():
        tmp = folder / f"{name}.part.jp2"
        with rasterio.open(href) as src:
            profile = {k: v for k, v in src.profile.items()
                       if k not in ("compress", "tiled", "interleave", "predictor")}
            profile.update(driver="JP2OpenJPEG", blockxsize=min(1024, src.width),
                           blockysize=min(1024, src.height), quality=100, reversible=True)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(src.read())
        tmp.rename(out)
    return str(out)


def child(case: dict, size: float, repeat: int, folder: Path) -> dict:
    """Time one case in this process: CPU and wall seconds of each repeat."""
    from pipeline.aoi import make_geobox, read_aoi
    from pipeline.cube import write_chunked
    from pipeline.handles import POOL
    from pipeline.ingest import SceneLog, make_cube
    from pipeline.request import default_cache
    from pipeline.sources.demo import open_demo_source
    from pipeline.timegrid import TimeGrid

    source = open_demo_source(default_cache())
    grid = TimeGrid.covering(dt.date(2023, 4, 1), dt.date(2023, 10, 31))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        aoi = read_aoi(square_aoi(tmp / "aoi.geojson", size))
        geobox = make_geobox(aoi)
        items = source.search_s2(aoi.geometry, grid.start, grid.end)
        assets = 0
        for item in items:
            for key, asset in item.assets.items():
                if case["jp2"] and asset.href.endswith(".tif"):
                    asset.href = convert(asset.get_absolute_href(), folder, f"{item.id}_{key}")
                    assets += 1
        cube = make_cube(items, [], aoi, geobox, grid, SceneLog(), chunk=case["chunk"])
        write_chunked(cube, tmp / "warm.zarr", "ingest", "w", workers=case["workers"])
        cpu, wall = [], []
        for rep in range(repeat):
            POOL.clear()  # each ingest opens its datasets afresh
            t0, c0 = time.perf_counter(), time.process_time()
            write_chunked(cube, tmp / f"c{rep}.zarr", "ingest", "i", workers=case["workers"])
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            shutil.rmtree(tmp / f"c{rep}.zarr")
    return {"cpu": cpu, "wall": wall, "scenes": len(items), "jp2_assets": assets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=4000, help="AOI edge, metres")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--folder", type=Path, default=Path("jp2-assets"),
                    help="where the JPEG2000 copies are kept")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # run one case in this process
    args = ap.parse_args()
    if args.case:
        print(json.dumps(child(CASES[args.case], args.size, args.repeat, args.folder)))
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, case in CASES.items():
        env = dict(os.environ)
        env.pop("GDAL_CACHEMAX", None)
        if case["cache_mb"]:
            env["GDAL_CACHEMAX"] = str(case["cache_mb"])  # MiB, as GDAL reads it
        out = subprocess.run([sys.executable, __file__, "--case", name, "--size", str(args.size),
                              "--repeat", str(args.repeat), "--folder", str(args.folder)],
                             env=env, check=True, capture_output=True, text=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        if name == "default":
            print(f"{results[name]['scenes']} Sentinel-2 scenes, "
                  f"{results[name]['jp2_assets']} assets as JPEG2000; AOI {args.size:.0f} m")
    ref = statistics.median(results["one chunk (reference)"]["cpu"])
    print("| case | chunk | threads | block cache | CPU s (median) | wall s | CPU / reference |")
    print("|---|---|---|---|---|---|---|")
    for name, case in CASES.items():
        cpu = statistics.median(results[name]["cpu"])
        wall = statistics.median(results[name]["wall"])
        cache = f"{case['cache_mb']} MiB" if case["cache_mb"] else "the pipeline's"
        print(f"| {name} | {case['chunk']} | {case['workers']} | {cache} | {cpu:.2f} | "
              f"{wall:.2f} | {cpu / ref:.2f} |")


if __name__ == "__main__":
    main()
