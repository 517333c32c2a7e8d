"""Command line of the model package.

``python -m model train --data DIR [--out model/weights/sf.safetensors] [--seed 0] [--steps N]``
trains SF (recipe in :mod:`model.train`) and writes the weights plus model card.
``python -m model cv --data DIR --out REPORT [--steps N] [--workers 2] [--set F=V]``
trains the recipe once per left-out domain and scores that domain (:mod:`model.cv`).
``python -m model card-metrics --report REPORT/metrics.json [--card ...]`` copies an
evaluation summary (from ``python -m pipeline evaluate``) into the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch

from model import default_weights


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m model")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train SF with artificial gaps")
    tr.add_argument("--data", type=Path, required=True, help="slovak-grassland layout folder")
    tr.add_argument("--out", type=Path, default=default_weights())
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--steps", type=int, default=None)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--demo-series", type=Path, default=None,
                    help=".npz of demo-world pixel series (benchmarks/demo_series.py)")
    cv = sub.add_parser("cv", help="leave-one-domain-out training and scoring of the recipe")
    cv.add_argument("--data", type=Path, required=True, help="slovak-grassland layout folder")
    cv.add_argument("--out", type=Path, required=True, help="report folder (created)")
    cv.add_argument("--seed", type=int, default=0, help="training seed")
    cv.add_argument("--steps", type=int, default=None, help="training steps per fold")
    cv.add_argument("--workers", type=int, default=2, help="folds trained at once")
    cv.add_argument("--gap-seeds", type=int, nargs="+", default=[0, 1, 2])
    cv.add_argument("--repeats", type=int, default=10, help="windows per series and bucket")
    cv.add_argument("--domains", nargs="+", default=None, help="left-out domains (default all)")
    cv.add_argument("--reuse", action="store_true",
                    help="score the fold networks already in OUT/folds (no training)")
    cv.add_argument("--adapt-steps", type=int, default=None,
                    help="fine-tuning steps of the test-time adaptation variant sf_adapted "
                    "(default that of model.adapt; 0 = not scored)")
    for p in (tr, cv):
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a Recipe field (repeatable), e.g. --set real_frac=0.7")
    cm = sub.add_parser("card-metrics", help="copy evaluation metrics into the model card")
    cm.add_argument("--report", type=Path, default=None, help="metrics.json of evaluate")
    cm.add_argument("--cv", type=Path, default=None, help="cv.json of python -m model cv")
    cm.add_argument("--card", type=Path, default=default_weights().with_suffix(".json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from model.train import Recipe, train, write_card

    if args.command in ("train", "cv"):
        fields: dict[str, Any] = {"seed": args.seed}
        if args.steps is not None:
            fields["steps"] = args.steps
        types = {f.name: f.type for f in dataclasses.fields(Recipe)}
        for item in args.set:
            key, _, value = item.partition("=")
            if key not in types:
                parser.error(f"--set {item}: unknown field {key!r}; choose from {sorted(types)}")
            fields[key] = float(value) if types[key] in (float, "float") else int(value)
        if args.command == "cv" and args.workers < 1:
            parser.error("--workers must be at least 1")
        if args.command == "cv":
            from model.adapt import STEPS
            from model.cv import run_cv

            adapt_steps = STEPS if args.adapt_steps is None else args.adapt_steps
            if adapt_steps < 0:
                parser.error("--adapt-steps must be 0 or more")

            try:
                run_cv(args.data, args.out, Recipe(**fields), seeds=args.gap_seeds,
                       repeats=args.repeats, workers=args.workers, only=args.domains,
                       reuse=args.reuse, adapt_steps=adapt_steps)
            except (FileNotFoundError, ValueError) as exc:
                parser.error(str(exc))
            return 0
        torch.set_num_threads(args.threads)
        train(args.data, args.out, Recipe(**fields), demo_series=args.demo_series)
    else:
        if args.report is None and args.cv is None:
            parser.error("card-metrics needs --report and/or --cv")
        card = json.loads(args.card.read_text())
        metrics = card.setdefault("metrics", {})
        if args.report is not None:
            report = json.loads(args.report.read_text())
            keys = ("data", "plots", "n_plot_years", "seed", "repeats", "buckets_dates",
                    "summary")
            metrics["heldout_evaluation"] = {k: report[k] for k in keys if k in report}
        if args.cv is not None:
            from model.cv import fold_summary

            metrics["cross_domain"] = fold_summary(json.loads(args.cv.read_text()))
        write_card(args.card, card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
