"""Decode cost of the ingest's chunk reads on 1024-tiled JPEG2000, as Sentinel-2 on EODATA.

    python benchmarks/bench_jp2_chunks.py [--tiles 40] [--chunk 256] [--cache-mb 64]

Sentinel-2 L2A bands in the EODATA archive (CreoDIAS, CDSE) are JPEG2000 files tiled
1024 x 1024 (``gdalinfo``: ``Block=1024x1024``); the demo archive's GeoTIFFs are
tiled 256 x 256, so the demo runs of ``bench_limits.py`` cannot show what follows. The
ingest reads one chunk's window of every scene's assets, chunk after chunk, and GDAL
decodes a whole tile for any window that touches it. This script writes ``--tiles``
lossless 1024 x 1024 JPEG2000 tiles (uint16, a smooth field plus noise, as
reflectance levels; one tile per file, standing for one asset of one scene), then
times, at one thread and ``--cache-mb`` of GDAL block cache (the pipeline's 64 MiB):

* the limit: every tile read once, whole;
* the ingest's pattern: for each ``--chunk`` x ``--chunk`` window of the tile, in
  row-major order, that window of every file (as each chunk reads every scene).

It prints both and their ratio. With more decoded tiles than the cache holds (a
season has about 70 scenes x 3 assets, 2 MiB each decoded), every chunk decodes its
tiles again: the ratio approaches ``(1024 / chunk) ** 2``, 16 for 256-pixel chunks. The ingest
now reserves block cache for such tiles and reads each JPEG2000 file through one
handle per process (``pipeline.warp.large_blocks``); ``bench_jp2_ingest.py`` times
the ingest itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

TILE = 1024


def write_tiles(folder: Path, n: int) -> list[Path]:
    """``n`` lossless JPEG2000 files of one 1024 x 1024 tile each."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:TILE, 0:TILE]
    paths = []
    for i in range(n):
        field = 3000 + 800 * np.sin((x + 37 * i) / 150) * np.cos(y / 170)
        data = (field + rng.normal(0, 60, (TILE, TILE))).astype(np.uint16)
        path = folder / f"tile{i:03d}.jp2"
        with rasterio.open(path, "w", driver="JP2OpenJPEG", width=TILE, height=TILE, count=1,
                           dtype="uint16", crs="EPSG:32634",
                           transform=from_origin(500000, 6000000, 10, 10),
                           blockxsize=TILE, blockysize=TILE, quality=100,
                           reversible=True) as dst:
            dst.write(data, 1)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=40, help="files (assets x scenes) to read")
    ap.add_argument("--chunk", type=int, default=256, help="chunk edge in pixels")
    ap.add_argument("--cache-mb", type=int, default=64, help="GDAL block cache, MiB")
    args = ap.parse_args()
    if not 0 < args.chunk <= TILE or TILE % args.chunk:
        ap.error(f"--chunk {args.chunk}: must divide {TILE}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_tiles(Path(tmp), args.tiles)
        print(f"wrote {len(paths)} JPEG2000 tiles of {TILE} x {TILE} in "
              f"{time.perf_counter() - t0:.0f} s; decoded they take "
              f"{len(paths) * TILE * TILE * 2 / 2**20:.0f} MiB against a "
              f"{args.cache_mb} MiB cache")
        with rasterio.Env(GDAL_CACHEMAX=args.cache_mb * 2**20, GDAL_NUM_THREADS=1):
            handles = [rasterio.open(p) for p in paths]
            t0 = time.perf_counter()
            for h in handles:
                h.read(1)
            once = time.perf_counter() - t0
            for h in handles:  # empty the cache of the first pass
                h.close()
            handles = [rasterio.open(p) for p in paths]
            n = TILE // args.chunk
            t0 = time.perf_counter()
            for cy in range(n):
                for cx in range(n):
                    for h in handles:
                        h.read(1, window=Window(cx * args.chunk, cy * args.chunk,
                                                args.chunk, args.chunk))
            chunked = time.perf_counter() - t0
            for h in handles:
                h.close()
    print(f"limit, every tile read once: {once:.2f} s")
    print(f"chunk by chunk ({n * n} chunks of {args.chunk}): {chunked:.2f} s")
    print(f"chunked / once: {chunked / once:.1f}x (1x: the cache kept every tile; {n * n}x: "
          "every chunk decoded its tiles again)")


if __name__ == "__main__":
    main()
