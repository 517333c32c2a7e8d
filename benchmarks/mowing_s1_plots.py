"""Mowing detection on plot series with Sentinel-1: does the fused fill help?

    python benchmarks/mowing_s1_plots.py DATA [--part eval] [--tolerance 12]

The camera parcels of ``bench_mowing.py`` carry Sentinel-2 only, so there the
filler cannot use radar. This script scores the same detectors (shipped
thresholds: :func:`pipeline.mowing.detect.default_params`) on the
``DATA/train`` plots that have Sentinel-1 and reference cuts
(``train/mowing_events.gpkg``), restricted to one part of the SF model card's
plot split (``--part eval``: plots SF never trained on; ``train``/``calib``
also work). Series per plot-year, March to November on the 6-day grid: raw
observations, linear fill, SF from NDVI alone, SF with Sentinel-1.

Caveat, printed with the figures: the shipped thresholds were tuned on all
labelled ``train/`` plot-years, these included, so the scores are in-sample
for the detector; the comparison between series is what counts, and the
sample is small (the paired bootstrap interval says how small).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mowing import _f1, paired_bootstrap

from model import load_model
from model.data import read_plot_series
from pipeline import baselines
from pipeline.mowing.detect import METHODS, default_params, detect
from pipeline.mowing.score import match_events
from pipeline.timegrid import EPOCH


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="slovak-grassland layout folder")
    ap.add_argument("--part", default="eval", choices=("train", "calib", "eval"))
    ap.add_argument("--tolerance", type=float, default=12.0, help="match window, days")
    ap.add_argument("--model", type=Path, help="SF weights (default: the shipped ones)")
    args = ap.parse_args()
    sf = load_model(args.model)
    plots = set(sf.card["training"]["split"]["s1s2_plots"][args.part])
    s = read_plot_series(args.data, months=(3, 11), epoch=EPOCH)
    ev = gpd.read_file(args.data / "train" / "mowing_events.gpkg")
    ev["yr"] = pd.to_datetime(ev["date"]).dt.year
    cuts: dict[tuple[str, int], list[float]] = {}
    for (p, y), grp in ev[ev["type"] == "k"].groupby(["PLOTID", "yr"]):
        d = (pd.to_datetime(grp["date"]) - pd.Timestamp(EPOCH)).dt.days.astype(float)
        cuts[(str(p), int(y))] = sorted(d.tolist())
    unmown = set(ev.loc[ev["type"] == "n", "PLOTID"].astype(str))
    keep = np.array([p in plots and ((p, int(y)) in cuts or p in unmown)
                     for p, y in zip(s.plot, s.year, strict=True)])
    s = s.take(keep)
    doy = s.doy()
    t = s.ndvi.shape[1]
    first = (s.start - np.datetime64(str(EPOCH), "D")).astype(int)
    days = (first[:, None] + 3 + 6 * np.arange(t)[None, :]).astype(float)  # bin centres
    no_s1 = np.full_like(s.vv, np.nan)
    m0, s0 = sf.predict(s.ndvi, no_s1, no_s1, doy=doy)
    m1, s1 = sf.predict(s.ndvi, s.vv, s.vh, doy=doy)
    series = {"raw": (s.ndvi, None, "observed"),
              "linear": (baselines.linear(s.ndvi), None, "filled"),
              "sf, S2 only": (m0, s0, "filled"), "sf, S1+S2": (m1, s1, "filled")}
    truth = [cuts.get((p, int(y)), []) for p, y in zip(s.plot, s.year, strict=True)]
    print(f"{args.part} plots of the SF card with reference: {len(s.plot)} plot-years, "
          f"{sum(map(len, truth))} cuts, ±{args.tolerance:g} days; thresholds tuned on all "
          "train/ plot-years (in-sample for the detector)")
    counts = {}
    for name, (y, sd, kind) in series.items():
        for method in METHODS:
            c = np.zeros((len(s.plot), 3), np.int64)
            p = default_params(method, kind)
            for i in range(len(s.plot)):
                got = detect(y[i : i + 1], None if sd is None else sd[i : i + 1], days[i],
                             doy[i], method, p)[0]
                m = match_events(got, truth[i], args.tolerance)
                c[i] = (m.tp, m.fp, m.fn)
            counts[(name, method)] = c
            tp, fp, fn = (int(v) for v in c.sum(axis=0))
            print(f"  {method:6s} {name:12s} P {tp / max(tp + fp, 1):.3f} "
                  f"R {tp / max(tp + fn, 1):.3f} F1 {_f1(c.sum(axis=0)):.3f}  "
                  f"(tp {tp}, fp {fp}, fn {fn})")
    for method in METHODS:
        for name in ("sf, S1+S2", "sf, S2 only", "linear"):
            a, b = counts[(name, method)], counts[("raw", method)]
            lo, hi, _ = paired_bootstrap(a, b)
            print(f"  {method} {name} minus raw: {_f1(a.sum(axis=0)) - _f1(b.sum(axis=0)):+.3f} "
                  f"(95 % paired bootstrap {lo:+.3f} .. {hi:+.3f})")


if __name__ == "__main__":
    main()
