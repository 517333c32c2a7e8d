"""Train the shipped learned mowing detector on every labelled domain of a data folder.

    python -m pipeline.mowing.train --data DIR [--out model/weights/mowing.safetensors]
        [--seeds N] [--steps N] [--recipe KEY=VALUE ...] [--teacher WEIGHTS]

The shipped fast detector (``--detector learned-fast``) is

    python -m pipeline.mowing.train --data DIR --out model/weights/mowing_fast.safetensors \\
        --recipe hidden=16 --recipe seeds=1 --recipe steps=3200 --recipe distill=0.5 \\
        --recipe transfer=1 [--teacher model/weights/mowing.safetensors]

whose teacher is the default recipe, the shipped ensemble (trained first when
``--teacher`` is not given: the same weights).

``DIR`` has the slovak-grassland layout (:mod:`pipeline.mowing.reference`). The
recipe is :class:`model.mowing.DetectorRecipe`, the one scored across domains by
``benchmarks/bench_mowing.py DIR --lodo``; the weights (safetensors) and the model
card (JSON: recipe, decoding, the parcel-years and events per domain) are written
atomically. ``--recipe`` changes a setting (``--recipe net=conv --recipe hidden=16``);
a distilled recipe (``distill`` > 0) trains its teacher first on the same domains,
or reads it from ``--teacher`` (weights trained on the same data, e.g. the shipped
GRU ensemble).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import torch

from pipeline.mowing.reference import axes_rows, concat, domains, targets, transfer_series


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, write; returns the exit code."""
    from model.mowing import (
        DetectorRecipe,
        default_detector_weights,
        fit_detector,
        load_detector,
        with_settings,
    )

    ap = argparse.ArgumentParser(prog="python -m pipeline.mowing.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="slovak-grassland layout folder")
    ap.add_argument("--out", type=Path, default=default_detector_weights())
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                    help="another recipe setting (repeatable; see model.mowing.DetectorRecipe)")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="teacher weights trained on the same data (default: train one)")
    args = ap.parse_args(argv)
    if args.teacher is not None and not args.teacher.is_file():
        ap.error(f"--teacher {args.teacher}: no such weights file")
    doms = domains(args.data)
    if not doms:
        ap.error(f"--data {args.data}: no labelled domain (train/mowing_events.gpkg or "
                 "test/SK_long.gpkg)")
    torch.set_num_threads(1)
    over = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps)) if v is not None}
    try:
        recipe = dataclasses.replace(with_settings(DetectorRecipe(), args.recipe), **over)
    except ValueError as exc:
        ap.error(str(exc))
    pool = concat(list(doms.values()), "all")
    unlabelled = None
    if recipe.transfer:  # the training domains' plot-years without reference events
        keys, un, un_doy = transfer_series(args.data, pool.ndvi.shape[1])
        if recipe.distill <= 0 or not keys:
            ap.error(f"--recipe transfer=1 needs distill > 0 and plot-years without "
                     f"events in {args.data}/train")
        unlabelled = (un, un_doy)
    days, doy = axes_rows(pool.keys, pool.ndvi.shape[1])
    y, w = targets(pool, days)
    t0 = time.perf_counter()
    teacher = load_detector(args.teacher) if args.teacher is not None else None
    card: dict[str, Any] = {
        "name": "learned mowing-event detector",
        "architecture": {"inputs": "binned clear NDVI, its mask, linear fill, steps to the "
                         "previous/next observation" + (", day of year" if recipe.calendar
                                                        else " (no day of year)"),
                         "outputs": "per 6-day bin: probability of a cut"},
        "training": {
            "data": str(args.data.name),
            "domains": {n: {"parcel_years": len(d.keys),
                            "events": sum(len(d.truth.get(k, [])) for k in d.keys)}
                        for n, d in doms.items()},
            "labels": "one positive per reference cut (its bin); grazing periods masked",
            "date": dt.date.today().isoformat(),
        },
        "validation": "leave one domain out: benchmarks/figures/mowing_lodo.md (the "
                      "ensemble), benchmarks/figures/mowing_fast.md (narrow, distilled)",
    }
    if unlabelled is not None:
        card["training"]["transfer_series"] = len(unlabelled[0])
    det = fit_detector(pool.ndvi, doy, y, w, recipe, card, teacher, unlabelled)
    det.card["training"]["seconds"] = round(time.perf_counter() - t0)
    if teacher is not None and "teacher" in det.card:
        det.card["teacher"]["weights"] = args.teacher.name
        det.card["teacher"]["training"] = teacher.card.get("training", {})
    det.save(args.out)
    print(f"trained {recipe.seeds} members on {len(pool.keys)} parcel-years "
          f"({', '.join(doms)}) in {det.card['training']['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
