"""Inference throughput of the shipped SF model vs vectorised linear interpolation.

Usage: ``python benchmarks/bench_model.py [--n 65536] [--t 36] [--repeats 3] [--weights PATH]
[--reference PATH]``

Prints pixel-seasons per second (a pixel-season = one series of ``t`` six-day dates)
with torch threads = 1 and 2, per core, and the ratio to ``pipeline.baselines.linear``
timed in the same run (numpy, one core). Inputs come from the per-pixel generator
``model.synth`` (about half the dates cloudy, S1 in one or both directions), with
each date's day of year passed as the pipeline does (``--no-doy``: dates unknown).
The reference weights (default: SF 1.2.0, kept beside the shipped ones) are timed in
the same run, and the shipped model's speed is printed as a share of theirs. Limits
(issue 11): at one thread the shipped model at least half as fast as 1.2.0 and at
least 20,000 pixel-seasons per second per core. Each SF line also gives the rate per
CPU-second the process used: on a machine shared with other jobs the wall-clock rate
falls with the load, the CPU-second rate much less (it shows what the core would do).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

# Run as a script from anywhere: make the repository root importable first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import load_model
from model.synth import generate
from pipeline.baselines import linear

#: Pixel-seasons per CPU-second of the last :func:`_best_rate` (all threads of the process).
CPU_RATE = [0.0]


def _best_rate(fn, n: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    best = best_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    CPU_RATE[0] = n / best_cpu
    return n / best


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=65536)
    p.add_argument("--t", type=int, default=36)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--reference", type=Path,
                   default=Path(__file__).resolve().parents[1] / "model" / "weights"
                   / "sf-1.2.0.safetensors", help="weights timed alongside (SF 1.2.0)")
    p.add_argument("--no-doy", action="store_true", help="do not pass the day of year")
    args = p.parse_args()
    data = generate(args.n, args.t, np.random.default_rng(0))
    sf = load_model(args.weights)
    n_params = sum(q.numel() for q in sf.net.parameters())
    doy = None if args.no_doy else data.doy
    print(f"SF {n_params} parameters, {args.n} pixel-seasons x {args.t} dates, "
          f"day of year {'unknown' if doy is None else 'given'}")
    lin = _best_rate(lambda: linear(data.ndvi), args.n, args.repeats)
    print(f"linear (numpy, 1 core): {lin:,.0f} pixel-seasons/s")
    ref = load_model(args.reference)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rate = _best_rate(lambda: sf.predict(data.ndvi, data.vv, data.vh, doy=doy), args.n,
                          args.repeats)
        per_core = rate / threads
        per_cpu_s = CPU_RATE[0]
        ref_rate = _best_rate(lambda: ref.predict(data.ndvi, data.vv, data.vh, doy=doy),
                              args.n, args.repeats)
        print(
            f"SF {sf.card.get('version')} torch threads={threads}: {rate:,.0f} pixel-seasons/s "
            f"total, {per_core:,.0f} per core (limit 20,000 per core), {per_cpu_s:,.0f} per "
            f"CPU-second; linear/SF per-core "
            f"ratio {lin / per_core:.1f}x; reference {ref.card.get('version')}: "
            f"{ref_rate:,.0f}/s, shipped/reference {rate / ref_rate:.2f} (limit 0.50)"
        )


if __name__ == "__main__":
    main()
