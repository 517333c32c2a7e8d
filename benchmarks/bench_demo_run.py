"""Wall time and peak memory of the demo run, cold (archive generated) and warm.

    python benchmarks/bench_demo_run.py [--aoi examples/lithuania.geojson] [--method sf]
                                        [--compare N]

Runs the real CLI in a child process (so peak RSS is the run's own) and prints
seconds and MiB. The cold run generates the demo archive into a fresh cache.

``--compare N``: then N rounds of warm runs, paired in each round, with the
defaults, with ``--scheduler threads`` and on a LocalCluster sized as the run's
own would be (started here, its start timed apart and added), and the ratio of
the defaults to the best of the three (the target: within 1.2x).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(aoi: str, cache: Path, out: Path, method: str,
             extra: tuple[str, ...] = ()) -> tuple[float, float]:
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
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,  # the run's summary lines; errors still reach stderr
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the maximum over all waited-for children (KiB on Linux)
    return seconds, max(peak, before) / 1024


def compare(aoi: str, cache: Path, tmp: Path, method: str, rounds: int) -> None:
    """Warm runs with the defaults, threads and a LocalCluster, paired per round."""
    from distributed import LocalCluster

    from pipeline.cluster import ClusterSpec, local_cluster_kwargs

    times: dict[str, list[float]] = {"defaults": [], "threads": [], "LocalCluster": []}
    for r in range(rounds):
        times["defaults"].append(run_once(aoi, cache, tmp / f"d{r}", method)[0])
        times["threads"].append(
            run_once(aoi, cache, tmp / f"t{r}", method, ("--scheduler", "threads"))[0])
        t0 = time.perf_counter()
        with LocalCluster(**local_cluster_kwargs(ClusterSpec())) as cluster:
            start = time.perf_counter() - t0
            run_s = run_once(aoi, cache, tmp / f"c{r}", method,
                             ("--scheduler", cluster.scheduler_address))[0]
        times["LocalCluster"].append(start + run_s)
    print(f"warm runs, {rounds} rounds paired (LocalCluster: its start + the run):")
    for name, ts in times.items():
        print(f"  {name:12s}: " + " / ".join(f"{t:.1f}" for t in ts) + " s")
    ratios = [times["defaults"][r] / min(ts[r] for ts in times.values())
              for r in range(rounds)]
    print("  defaults / best of the three, per round: "
          + " / ".join(f"{q:.2f}" for q in ratios)
          + f"  (target <= 1.2 -> {'met' if max(ratios) <= 1.2 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--aoi", default="examples/lithuania.geojson")
    ap.add_argument("--method", default="sf", choices=["sf", "linear"])
    ap.add_argument("--compare", type=int, default=0, metavar="N",
                    help="rounds of paired warm runs: defaults, threads, LocalCluster")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cold_s, cold_mb = run_once(args.aoi, t / "cache", t / "out1", args.method)
        warm_s, warm_mb = run_once(args.aoi, t / "cache", t / "out2", args.method)
        print(f"demo run, full season, AOI {args.aoi}, method {args.method}")
        print(f"  cold (archive generated): {cold_s:7.1f} s  peak RSS {cold_mb:7.0f} MiB")
        print(f"  warm (archive cached)   : {warm_s:7.1f} s  peak RSS <= {warm_mb:7.0f} MiB")
        print(f"  target: < 180 s -> {'met' if cold_s < 180 else 'NOT met'}", flush=True)
        if args.compare:
            compare(args.aoi, t / "cache", t, args.method, args.compare)


if __name__ == "__main__":
    main()
