"""What ``fill-table`` gives on plot tables: SF adapted on the very table it fills.

Usage: ``python benchmarks/bench_fill_table.py DATA [--folds DIR] [--domains D ...]
[--seeds 0 1 2] [--steps N] [--threads 1]``

For each domain of DATA (``model.cv.discover_domains``: the region tags of the plot
tables and the Sentinel-2-only parcels), each gap seed and each gap bucket of the
``evaluate`` protocol, one table is built: every April-October series with one window
of the bucket hidden (the protocol's placement, one window per series, so no series is
in the table twice and no hidden value is visible anywhere in it). The table is then
filled the way ``fill-table`` fills it by default, SF adapted on that same table
(:mod:`model.adapt`), and with the weights as given, and both are scored against the
classic fillers on the hidden cells.

``--folds DIR`` (the ``folds`` folder of ``python -m model cv``) fills each domain with
the fold network trained without it, run the way the shipped network runs (its card's
``inference.s1``), so no domain is scored by a network that saw it; without it, the
shipped weights (in-sample on their own training domains). Prints per domain and
bucket SF against the best classic (mean over seeds, worst seed) and the 90 %
coverage, as shipped and adapted, and what each adaptation kept. This is the user's
protocol; ``python -m model cv`` (variant ``sf_adapted``) is the harder cross-fitted
one, where the adapted network never sees the filled series.
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
from model.adapt import STEPS, adapt
from model.cv import discover_domains
from model.data import PlotSeries
from pipeline.evaluate import BUCKETS, CLASSIC, Z90, make_gaps


def _score(table: PlotSeries, hidden: np.ndarray, truth: np.ndarray, model: object
           ) -> tuple[float, float]:
    mean, std = model.predict(table.ndvi, table.vv, table.vh,  # type: ignore[attr-defined]
                              doy=table.doy())
    err = np.abs(mean[hidden] - truth)
    return float(err.mean()), float(np.mean(err <= Z90 * std[hidden]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="slovak-grassland layout folder")
    ap.add_argument("--folds", type=Path, help="folds folder of python -m model cv")
    ap.add_argument("--domains", nargs="+", help="domains to score (default all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="gap seeds")
    ap.add_argument("--steps", type=int, default=STEPS, help="fine-tuning steps")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (one per process when several run at once)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shipped = load_model()
    domains = [d for d in discover_domains(args.data)
               if not args.domains or d.name in args.domains]
    print("| left out | gap | SF as given (mean, worst seed) | SF adapted on the table "
          "| coverage as given | coverage adapted | adapted network kept |")
    print("|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for d in domains:
        sf = shipped
        if args.folds is not None:
            sf = load_model(args.folds / f"{d.name}.safetensors")
            sf.use_s1 = shipped.use_s1
        # As in evaluate, one generator per seed draws the buckets in order.
        gaps = {}
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            gaps[seed] = {name: make_gaps(d.season.ndvi, lo, hi, 1, rng)
                          for name, (lo, hi) in BUCKETS.items()}
        for name in BUCKETS:
            vals = []
            for seed in args.seeds:
                r, inp, hidden = gaps[seed][name]
                base = d.season.take(r)
                table = PlotSeries(base.plot, base.year, base.start, inp, base.vv, base.vh)
                truth = base.ndvi[hidden]
                best = min(float(np.abs(fn(inp)[hidden] - truth).mean())
                           for fn in CLASSIC.values())
                mae_0, cov_0 = _score(table, hidden, truth, sf)
                adapted, rep = adapt(sf, table, seed=seed, steps=args.steps)
                mae_a, cov_a = _score(table, hidden, truth, adapted)
                vals.append((100 * (mae_0 / best - 1), 100 * (mae_a / best - 1), cov_0, cov_a,
                             rep.kept))
            v = np.array([x[:4] for x in vals])
            kept = sum(x[4] for x in vals)
            print(f"| {d.name} | {name} | {v[:, 0].mean():+.1f} % ({v[:, 0].max():+.1f}) "
                  f"| {v[:, 1].mean():+.1f} % ({v[:, 1].max():+.1f}) "
                  f"| {100 * v[:, 2].min():.1f}-{100 * v[:, 2].max():.1f} % "
                  f"| {100 * v[:, 3].min():.1f}-{100 * v[:, 3].max():.1f} % "
                  f"| {kept} of {len(vals)} |", flush=True)
    print(f"\n{len(domains)} domains, gap seeds {args.seeds}, {args.steps} steps; "
          f"{time.perf_counter() - t0:.0f} s; weights: "
          f"{'fold networks of ' + str(args.folds) if args.folds else 'shipped'}")


if __name__ == "__main__":
    main()
