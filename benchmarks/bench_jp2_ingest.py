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
once), and the process's peak resident memory:

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

``--real-size N`` instead writes ``N`` synthetic Sentinel-2 scenes in the layout of the
real products (B04 and B08 at 10 m, 2048 x 2048 pixels in 1024-pixel tiles; SCL at
20 m, one 1024-pixel tile; lossless, a smooth field plus noise) and ingests a
1000 x 1000-pixel run tile (10 km) that lies across four of the 10 m tiles, as run
tiles lie across a product's tiles: the default, the cache fixed at 64 MiB, and one
chunk over the tile (no GeoTIFF case).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import square_aoi

CASES: dict[str, dict[str, Any]] = {
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


REAL_CASES = {k: CASES[k] for k in ("default", "cache fixed at 64 MiB", "one chunk (reference)")}

#: The synthetic products' corner (UTM 34N) and the run tile's, 300 pixels inside it.
REAL_X0, REAL_Y0, REAL_INSET = 600000.0, 6100000.0, 3000.0


def _lonlat(points: list[tuple[float, float]]) -> list[list[float]]:
    from pyproj import Transformer

    t = Transformer.from_crs(32634, 4326, always_xy=True)
    return [list(t.transform(x, y)) for x, y in points]


def lonlat_bounds(x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
    """Lon/lat bounds of a UTM 34N box (its corners)."""
    pts = _lonlat([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts),
            max(p[1] for p in pts))


def utm_square(path: Path, x0: float, y0: float, size_m: float) -> Path:
    """A GeoJSON AOI: the UTM 34N square of ``size_m`` with lower left (x0, y0)."""
    ring = _lonlat([(x0, y0), (x0 + size_m, y0), (x0 + size_m, y0 + size_m),
                    (x0, y0 + size_m), (x0, y0)])
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    return path


def real_size_items(n: int, folder: Path) -> list:
    """``n`` synthetic Sentinel-2 items in the real products' raster layout."""
    import numpy as np
    import pystac
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box, mapping

    rng = np.random.default_rng(0)
    side = 2048
    y, x = np.mgrid[0:side, 0:side]
    bbox = lonlat_bounds(REAL_X0, REAL_Y0 - side * 10, REAL_X0 + side * 10, REAL_Y0)
    items = []
    for i in range(n):
        when = dt.datetime(2023, 5, 1, 10, tzinfo=dt.UTC) + dt.timedelta(days=5 * i)
        iid = f"S2A_MSIL2A_{when:%Y%m%dT%H%M%S}_N0509_R036_T34VFG_SYNTH"
        item = pystac.Item(iid, mapping(box(*bbox)), list(bbox), when,
                           {"platform": "sentinel-2a", "s2:processing_baseline": "05.09"},
                           collection="sentinel-2-l2a")
        field = 0.5 + 0.3 * np.sin((x + 37 * i) / 150) * np.cos(y / 170)
        red = (1000 + 600 * (1 - field) + rng.normal(0, 30, field.shape)).astype(np.uint16)
        nir = (1000 + 3000 * field + rng.normal(0, 60, field.shape)).astype(np.uint16)
        scl = np.where(rng.random((side // 2, side // 2)) < 0.1, 9, 4).astype(np.uint8)
        for key, data, res in (("B04_10m", red, 10), ("B08_10m", nir, 10), ("SCL_20m", scl, 20)):
            path = folder / f"{iid}_{key}.jp2"
            if not path.exists():
                tmp = folder / f"{iid}_{key}.part.jp2"
                with rasterio.open(tmp, "w", driver="JP2OpenJPEG", width=data.shape[1],
                                   height=data.shape[0], count=1, dtype=data.dtype,
                                   crs="EPSG:32634", transform=from_origin(REAL_X0, REAL_Y0,
                                                                           res, res),
                                   nodata=0, blockxsize=1024, blockysize=1024, quality=100,
                                   reversible=True) as dst:
                    dst.write(data, 1)
                tmp.rename(path)
            extra = {} if key == "SCL_20m" else {"raster:bands": [
                {"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": -0.1}]}
            item.add_asset(key, pystac.Asset(str(path), roles=["data"], extra_fields=extra))
        items.append(item)
    return items


def child(case: dict, size: float, repeat: int, folder: Path, real_size: int = 0) -> dict:
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
        if real_size:
            x0, y1 = REAL_X0 + REAL_INSET, REAL_Y0 - REAL_INSET
            aoi = read_aoi(utm_square(tmp / "aoi.geojson", x0, y1 - 10_000, 10_000))
            items = real_size_items(real_size, folder)
        else:
            aoi = read_aoi(square_aoi(tmp / "aoi.geojson", size))
            items = source.search_s2(aoi.geometry, grid.start, grid.end)
        geobox = make_geobox(aoi)
        assets = 3 * len(items) if real_size else 0
        for item in items if not real_size else []:
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"cpu": cpu, "wall": wall, "scenes": len(items), "jp2_assets": assets,
            "shape": list(geobox.shape), "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=4000, help="AOI edge, metres")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--folder", type=Path, default=Path("jp2-assets"),
                    help="where the JPEG2000 copies are kept")
    ap.add_argument("--real-size", type=int, default=0, metavar="N",
                    help="N synthetic scenes in the real products' layout instead of the demo")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # run one case in this process
    args = ap.parse_args()
    if args.case:
        print(json.dumps(child(CASES[args.case], args.size, args.repeat, args.folder,
                               args.real_size)))
        return
    cases = REAL_CASES if args.real_size else CASES
    args.folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, case in cases.items():
        env = dict(os.environ)
        env.pop("GDAL_CACHEMAX", None)
        if case["cache_mb"]:
            env["GDAL_CACHEMAX"] = str(case["cache_mb"])  # MiB, as GDAL reads it
        out = subprocess.run([sys.executable, __file__, "--case", name, "--size", str(args.size),
                              "--repeat", str(args.repeat), "--folder", str(args.folder),
                              "--real-size", str(args.real_size)],
                             env=env, check=True, capture_output=True, text=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        if name == "default":
            print(f"{results[name]['scenes']} Sentinel-2 scenes, "
                  f"{results[name]['jp2_assets']} assets as JPEG2000; grid "
                  f"{results[name]['shape'][0]} x {results[name]['shape'][1]} px")
    ref = statistics.median(results["one chunk (reference)"]["cpu"])
    print("| case | chunk | threads | block cache | CPU s (median) | wall s | CPU / reference "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, case in cases.items():
        cpu = statistics.median(results[name]["cpu"])
        wall = statistics.median(results[name]["wall"])
        cache = f"{case['cache_mb']} MiB" if case["cache_mb"] else "the pipeline's"
        print(f"| {name} | {case['chunk']} | {case['workers']} | {cache} | {cpu:.2f} | "
              f"{wall:.2f} | {cpu / ref:.2f} | {results[name]['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
