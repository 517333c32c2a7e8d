"""Wall time and peak memory of the demo run, cold (archive generated) and warm.

    python benchmarks/bench_demo_run.py [--aoi examples/lithuania.geojson] [--method sf]

Runs the real CLI in a child process (so peak RSS is the run's own) and prints
seconds and MiB. The cold run generates the demo archive into a fresh cache.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(aoi: str, cache: Path, out: Path, method: str) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one ``python -m pipeline run`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--aoi",
            aoi,
            "--source",
            "demo",
            "--start",
            "2023-04-01",
            "--end",
            "2023-10-31",
            "--cache",
            str(cache),
            "--out",
            str(out),
            "--method",
            method,
            "-q",
        ],
        check=True,
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the maximum over all waited-for children (KiB on Linux)
    return seconds, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--aoi", default="examples/lithuania.geojson")
    ap.add_argument("--method", default="sf", choices=["sf", "linear"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cold_s, cold_mb = run_once(args.aoi, t / "cache", t / "out1", args.method)
        warm_s, warm_mb = run_once(args.aoi, t / "cache", t / "out2", args.method)
    print(f"demo run, full season, AOI {args.aoi}, method {args.method}")
    print(f"  cold (archive generated): {cold_s:7.1f} s  peak RSS {cold_mb:7.0f} MiB")
    print(f"  warm (archive cached)   : {warm_s:7.1f} s  peak RSS <= {warm_mb:7.0f} MiB")
    print(f"  target: < 180 s -> {'met' if cold_s < 180 else 'NOT met'}")


if __name__ == "__main__":
    main()
