"""Country-scale figures from the demo world: throughput per stage, 1 vs 2 workers,
peak memory for AOIs of 1x, 4x and 16x area (run and mowing), and a projection for
Lithuania.

    python benchmarks/bench_scale.py [--method sf|linear] [--cache DIR] [--parcels]

Each run is the real CLI in a child process on a LocalCluster; peak memory is
the largest summed RSS of the run's whole process tree (client, scheduler and
worker processes), sampled every 50 ms with psutil. With ``--parcels`` the memory
series also runs with ``--parcels`` (the demo world's own field boundaries,
``truth/parcels.geojson`` of the archive), so the parcel tables' and the field
context's memory is measured against the area too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from pyproj import Transformer

# Lower-left corner of the AOIs inside the demo world (UTM 34N), off the 10 km tile lattice
# (x 670000/680000, y 6180000) so every AOI up to 4 km is one tile: no slivers.
X0, Y0 = 671300.0, 6180100.0
LITHUANIA_KM2 = 65_300
SEASON_BINS = 36


def square_aoi(path: Path, size_m: float) -> Path:
    t = Transformer.from_crs(32634, 4326, always_xy=True)
    pts = [(X0, Y0), (X0 + size_m, Y0), (X0 + size_m, Y0 + size_m), (X0, Y0 + size_m), (X0, Y0)]
    ring = [list(t.transform(x, y)) for x, y in pts]
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    return path


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(
    aoi: Path, out: Path, cache: Path, method: str, workers: int, chunk: int = 256,
    parcels: Path | None = None,
) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        "-q",
        "--aoi",
        str(aoi),
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--start",
        "2023-04-01",
        "--end",
        "2023-10-31",
        "--method",
        method,
        "--workers",
        str(workers),
        "--chunk",
        str(chunk),
        *(["--parcels", str(parcels)] if parcels else []),
    ]
    wall, peak = timed_peak(cmd)
    rec = json.loads((out / "run.json").read_text())
    secs = {"ingest": 0.0, "fill": 0.0}
    pixels = 0
    for tile in rec["tiles"]:
        for k in secs:
            secs[k] += tile.get("seconds", {}).get(k, 0.0)
        pixels += tile.get("pixels", 0)
    return {"wall": wall, "peak_mib": peak / 2**20, "pixels": pixels, **secs}


def timed_peak(cmd: list[str]) -> tuple[float, int]:
    """(seconds, peak summed RSS in bytes of the process tree) of a child command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], tree_rss(ps))
            except psutil.Error:
                pass
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    if proc.wait() != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}")
    th.join()
    return time.perf_counter() - t0, peak[0]


def mowing(out: Path) -> dict[str, float]:
    """Wall time and peak memory of ``pipeline mowing`` on a run's cube."""
    wall, peak = timed_peak([sys.executable, "-m", "pipeline", "mowing", "-q", "--cube",
                             str(out), "--out", str(out / "mowing")])
    return {"wall": wall, "peak_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", default="sf", choices=["sf", "linear"])
    ap.add_argument("--cache", type=Path, default=None, help="demo cache (default: temporary)")
    ap.add_argument(
        "--memory-chunk",
        type=int,
        default=48,
        help="chunk edge for the memory series: small enough that even the 1x AOI has more "
        "full chunks than workers, so every worker is busy at every size (default: %(default)s)",
    )
    ap.add_argument("--parcels", action="store_true",
                    help="also run the memory series with the demo world's parcels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cache = args.cache or tmp / "cache"
        # warm the archive so no run below pays for its generation
        run(square_aoi(tmp / "warm.geojson", 300), tmp / "warm", cache, "linear", 2)
        results = {}
        mow: dict[int, dict[str, float]] = {}
        for factor, size in ((1, 1000), (4, 2000), (16, 4000)):
            aoi = square_aoi(tmp / f"aoi{factor}.geojson", size)
            results[factor] = run(
                aoi, tmp / f"out{factor}", cache, args.method, 2, args.memory_chunk
            )
            mow[factor] = mowing(tmp / f"out{factor}")
        with_parcels: dict[int, dict[str, float]] = {}
        if args.parcels:
            fields = next(Path(cache).glob("demo-*/truth/parcels.geojson"))
            for factor, size in ((1, 1000), (4, 2000), (16, 4000)):
                aoi = square_aoi(tmp / f"aoi{factor}.geojson", size)
                with_parcels[factor] = run(aoi, tmp / f"outp{factor}", cache, args.method, 2,
                                           args.memory_chunk, parcels=fields)
        big = square_aoi(tmp / "big.geojson", 4000)
        two = run(big, tmp / "big2", cache, args.method, 2)
        one = run(big, tmp / "big1", cache, args.method, 1)

    print(
        f"method {args.method}, season 2023-04-01..2023-10-31 ({SEASON_BINS} bins), "
        "LocalCluster on this machine; peak = summed RSS of client, scheduler and workers"
    )
    print(f"\nmemory series (--chunk {args.memory_chunk}, 2 workers):")
    print("| AOI | pixels | wall s | ingest px/s | fill px/s | end-to-end px/s | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for factor, r in results.items():
        print(
            f"| {factor}x | {r['pixels']:,.0f} | {r['wall']:.1f} | "
            f"{r['pixels'] / r['ingest']:,.0f} | {r['pixels'] / r['fill']:,.0f} | "
            f"{r['pixels'] / r['wall']:,.0f} | {r['peak_mib']:.0f} |"
        )
    print(f"peak memory 16x / 1x: {results[16]['peak_mib'] / results[1]['peak_mib']:.2f}")
    if with_parcels:
        print("\nthe same with --parcels (the demo world's fields, tables and context):")
        print("| AOI | pixels | wall s | peak MiB | peak vs without parcels |")
        print("|---|---|---|---|---|")
        for factor, r in with_parcels.items():
            print(f"| {factor}x | {r['pixels']:,.0f} | {r['wall']:.1f} | {r['peak_mib']:.0f} | "
                  f"{r['peak_mib'] / results[factor]['peak_mib']:.2f} |")
        print("peak memory with parcels 16x / 1x: "
              f"{with_parcels[16]['peak_mib'] / with_parcels[1]['peak_mib']:.2f}")
    print("\nmowing on those cubes (the default detectors: learned-fast per pixel):")
    print("| AOI | wall s | px/s | peak MiB |")
    print("|---|---|---|---|")
    for factor, m in mow.items():
        print(f"| {factor}x | {m['wall']:.1f} | {results[factor]['pixels'] / m['wall']:,.0f} | "
              f"{m['peak_mib']:.0f} |")
    print(f"mowing peak memory 16x / 1x: {mow[16]['peak_mib'] / mow[1]['peak_mib']:.2f}")
    print("\nthroughput on the 16x AOI (--chunk 256):")
    print("| workers | wall s | ingest px/s | fill px/s | end-to-end px/s | peak MiB |")
    print("|---|---|---|---|---|---|")
    for w, r in ((1, one), (2, two)):
        print(
            f"| {w} | {r['wall']:.1f} | {r['pixels'] / r['ingest']:,.0f} | "
            f"{r['pixels'] / r['fill']:,.0f} | {r['pixels'] / r['wall']:,.0f} | "
            f"{r['peak_mib']:.0f} |"
        )
    stage = (one["ingest"] + one["fill"]) / (two["ingest"] + two["fill"])
    print(
        f"scaling 1 -> 2 workers: wall {one['wall'] / two['wall']:.2f}x, ingest+fill {stage:.2f}x"
    )

    px_s = two["pixels"] / (two["ingest"] + two["fill"])  # steady state, 2 workers
    lt_px = LITHUANIA_KM2 * 1e4
    core_h = lt_px / (px_s / 2) / 3600
    print(
        f"\nprojection for Lithuania ({LITHUANIA_KM2:,} km2 = {lt_px:,.0f} pixels at 10 m), "
        "one season:"
    )
    print(
        f"  compute: {core_h:,.0f} core-hours at the measured {px_s / 2:,.0f} px/s per core "
        "(ingest+fill, archive on local disk; add the network time of reading EODATA)"
    )
    s2_bytes = lt_px * 43 * (2 * 2 + 0.25) * 0.6  # 43 acquisitions, B04+B08 uint16, SCL 20 m
    s1_bytes = lt_px * 72 * 2 * 4 * 0.9  # 72 scenes (2 orbits), VV+VH float32 gamma0 COGs
    cube_bytes = lt_px * SEASON_BINS * (4 + 1 + 4 * 4 + 4 + 4 + 1) * 0.5
    product_bytes = lt_px * SEASON_BINS * (4 + 4 + 4 + 1) * 0.5
    print(
        f"  input read: S2 ~{s2_bytes / 1e12:.1f} TB, S1 ~{s1_bytes / 1e12:.1f} TB "
        "(compressed, the AOI's share of each scene only)"
    )
    print(
        f"  written: cube ~{cube_bytes / 1e12:.2f} TB, GeoTIFF products "
        f"~{product_bytes / 1e12:.2f} TB (assuming 2:1 compression)"
    )


if __name__ == "__main__":
    main()
