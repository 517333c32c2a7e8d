"""Fill stage alone over a demo cube: seconds, pixel-seasons/s and peak memory, SF vs linear.

    python benchmarks/bench_fill.py --cube OUT/cube.zarr [--workers 2]

Runs :func:`pipeline.fill.compute_filled` over the cube's chunks with dask's
threaded scheduler (one torch thread per task) and computes the result into
memory-bounded chunks (``.sum()`` of each output, nothing written). Peak memory
is the process RSS above its level before the fill, sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import dask
import psutil

from pipeline.cube import open_cube
from pipeline.fill import LinearFiller, ModelFiller, compute_filled


def measure(cube_path: Path, filler: object, workers: int) -> tuple[float, float, int]:
    cube = open_cube(cube_path)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    filled = compute_filled(cube, filler)  # type: ignore[arg-type]
    with dask.config.set(scheduler="threads", num_workers=workers):
        dask.compute(filled["ndvi_filled"].sum(), filled["ndvi_std"].sum())
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    n = int(cube.sizes["y"] * cube.sizes["x"])
    return seconds, (peak[0] - base) / 2**20, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cube", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cube = open_cube(args.cube)
    print(f"cube {args.cube}: {cube.sizes['y']} x {cube.sizes['x']} px x {cube.sizes['time']} "
          f"dates, chunks {cube['ndvi'].chunks[1][0]} px, {args.workers} threads")
    rows = []
    for name, filler in (("linear", LinearFiller()), ("sf", ModelFiller())):
        measure(args.cube, filler, args.workers)  # warm-up: imports, weights
        s, mib, n = measure(args.cube, filler, args.workers)
        rows.append((name, s, n / s, mib))
        print(f"  {name:6s}: {s:6.2f} s  {n / s:10,.0f} pixel-seasons/s  "
              f"peak +{mib:6.0f} MiB over the process baseline")
    print(f"  SF / linear time ratio: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
