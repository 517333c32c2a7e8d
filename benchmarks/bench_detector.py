"""Learned mowing detector throughput per thread: the shipped weights against others.

    python benchmarks/bench_detector.py [--pixels 20000] [--repeat 5]
        [--weights W] [--compare W2] [--unfused] [--data DATA]

Times :func:`pipeline.mowing.learned.detect_learned` (the path ``mowing`` and
``mowing-table`` take per chunk: network input, the ensemble's probabilities and the
decoding of events) on ``--pixels`` grassland seasons in memory, one thread
(``torch.set_num_threads(1)``), for the shipped detector (or ``--weights``) and each
``--compare`` detector in the same run, their repeats interleaved so that other load
on the machine falls on both alike. A GRU ensemble runs fused
(:class:`model.mowing.FusedGRUEnsemble`); ``--unfused`` adds the first detector run
member by member through its ``nn`` modules (the path before fusion) to the same run.
The seasons are the labelled parcel-years of ``--data`` (a slovak-grassland layout
folder) repeated to ``--pixels``, or without it
synthetic seasons (green-up, one to three cuts with regrowth, 45 % of bins cloudy).

Per detector it prints the pixels per second per thread (median of the repeats, wall
and CPU time), the share of time in the network input, the network and the decoding,
and the Lithuania projection (6.5e8 pixels, one season) in core-hours against the
limit of 5 core-hours for mowing; then each detector's speed relative to the first
``--compare`` one.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

# Run as a script from anywhere: make the repository root importable first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.mowing.series import grid_axes
from pipeline.timegrid import TimeGrid

#: Pixels of Lithuania's grassland-and-crop season cube (the projection's area).
LITHUANIA_PX = 6.5e8
#: Core-hours the mowing stage may take for Lithuania.
LIMIT_CORE_HOURS = 5.0


def synthetic_seasons(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, T)`` NDVI (NaN = cloudy) of cut grassland on the 2022 grid, days, doy (all N, T)."""
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    days, doy = grid_axes(grid)
    rng = np.random.default_rng(seed)
    t = grid.count
    k = np.arange(t)[None]
    y = 0.25 + 0.55 / (1 + np.exp(-(k - 8) / 1.5)) + rng.normal(0, 0.02, (n, t))
    for c in range(3):
        cut = rng.integers(12 + 10 * c, 20 + 10 * c, (n, 1))
        on = rng.random((n, 1)) < (1.0, 0.7, 0.4)[c]
        y -= on * (k >= cut) * 0.35 * np.exp(-(k - cut).clip(0) / 4.0)
    y[rng.random((n, t)) < 0.45] = np.nan
    return y.astype(np.float32), np.tile(days, (n, 1)), np.tile(doy, (n, 1))


def data_seasons(data: Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labelled parcel-years of ``data``, repeated to ``n`` rows, with their axes."""
    from pipeline.mowing.reference import axes_rows, concat, domains

    doms = domains(data)
    if not doms:
        raise SystemExit(f"--data {data}: no labelled domain")
    pool = concat(list(doms.values()), "all")
    days, doy = axes_rows(pool.keys, pool.ndvi.shape[1])
    idx = np.arange(n) % len(pool.keys)
    return pool.ndvi[idx], days[idx], doy[idx]


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def parts(det: Any, ndvi: np.ndarray, days: np.ndarray, doy: np.ndarray) -> dict[str, float]:
    """CPU seconds of the network input, the network and the decoding, one pass."""
    import torch

    from model.mowing import detector_features
    from pipeline.mowing.learned import decode

    out = {"input": 0.0, "network": 0.0, "decode": 0.0}
    rows = 4096
    probs = []
    with torch.inference_mode():
        for i in range(0, len(ndvi), rows):
            c0 = time.process_time()
            x = detector_features(ndvi[i:i + rows], doy[i:i + rows], det.calendar)
            c1 = time.process_time()
            probs.append(det.network(x).numpy())
            out["input"] += c1 - c0
            out["network"] += time.process_time() - c1
    c0 = time.process_time()
    decode(np.concatenate(probs), days, det.threshold, det.min_gap_days)
    out["decode"] = time.process_time() - c0
    return out


def describe(det: Any) -> str:
    """Network class, width and members of a detector, from its card."""
    arch = det.card.get("architecture", {})
    recipe = det.card.get("recipe", {})
    name = str(arch.get("class", type(det.nets[0]).__name__)).rsplit(".", 1)[-1]
    return f"{len(det.nets)} x {name} (width {recipe.get('hidden', '?')})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pixels", type=int, default=20000, help="seasons per timed pass")
    ap.add_argument("--repeat", type=int, default=5, help="timed passes per detector")
    ap.add_argument("--weights", type=Path, help="detector weights (default: the shipped ones)")
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="other detector weights to time in the same run (repeatable)")
    ap.add_argument("--unfused", action="store_true", help="also time the first detector "
                    "member by member (its nn modules, no fusion)")
    ap.add_argument("--data", type=Path, help="slovak-grassland layout folder: its "
                    "parcel-years instead of synthetic seasons")
    args = ap.parse_args()
    if args.pixels < 1 or args.repeat < 1:
        ap.error("--pixels and --repeat must be at least 1")
    for p in [args.weights, *args.compare]:
        if p is not None and not p.is_file():
            ap.error(f"no detector weights at {p}")
    import torch

    from model.mowing import default_detector_weights, load_detector
    from pipeline.mowing.learned import detect_learned

    torch.set_num_threads(1)
    paths = [args.weights or default_detector_weights(), *args.compare]
    dets = [load_detector(p) for p in paths]
    labels = [str(p) for p in paths]
    if args.unfused:
        plain = load_detector(paths[0])
        plain.fused = False
        dets.insert(1, plain)
        labels.insert(1, f"{paths[0]} (members one by one, unfused)")
    if args.data:
        ndvi, days, doy = data_seasons(args.data, args.pixels)
        source = f"{args.data.name} parcel-years repeated"
    else:
        ndvi, days, doy = synthetic_seasons(args.pixels)
        source = "synthetic seasons"
    print(f"{args.pixels} px ({source}, {ndvi.shape[1]} bins, "
          f"{np.isfinite(ndvi).mean():.0%} observed), one thread, {args.repeat} passes each")
    for det in dets:  # warm-up (first calls allocate and pick kernels)
        detect_learned(ndvi[:2048], days[:2048], doy[:2048], det)
    wall: list[list[float]] = [[] for _ in dets]
    cpu: list[list[float]] = [[] for _ in dets]
    for _ in range(args.repeat):
        for i, det in enumerate(dets):
            w, c = _timed(functools.partial(detect_learned, ndvi, days, doy, det))
            wall[i].append(w)
            cpu[i].append(c)
    rate = []
    for i, (p, det) in enumerate(zip(labels, dets, strict=True)):
        px_wall = args.pixels / float(np.median(wall[i]))
        px_cpu = args.pixels / float(np.median(cpu[i]))
        rate.append(px_cpu)
        share = parts(det, ndvi, days, doy)
        tot = sum(share.values())
        hours = LITHUANIA_PX / px_cpu / 3600
        print(f"{p}: {describe(det)}")
        print(f"  {px_wall:9,.0f} px/s per thread (wall), {px_cpu:9,.0f} (CPU); input "
              f"{share['input'] / tot:.0%}, network {share['network'] / tot:.0%}, "
              f"decode {share['decode'] / tot:.0%}")
        print(f"  Lithuania ({LITHUANIA_PX:.1e} px): {hours:.1f} core-hours "
              f"(limit {LIMIT_CORE_HOURS:g}: {'within' if hours <= LIMIT_CORE_HOURS else 'over'})")
    if len(dets) > 1:
        for p, r in zip(labels, rate, strict=True):
            print(f"{p}: {r / rate[1]:.1f}x the speed of {labels[1]} (CPU time)")


if __name__ == "__main__":
    main()
