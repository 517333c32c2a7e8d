"""Mowing detection benchmark: detectors tuned on the training plots, scored on held-out parcels.

    python benchmarks/bench_mowing.py DATA [--tolerance 12] [--markdown FILE]
        [--demo-out OUT --demo-archive ARCHIVE]

``DATA`` (also ``--data DATA``) is a folder of the slovak-grassland layout:

* ``DATA/train``: ``S2/*.csv`` (``PLOTID``, ``Date``, ``ndvi``, ``mask``) with
  ``mowing_events.gpkg`` (``PLOTID``, ``type`` k = mowing, n = not mown, ``date``);
* ``DATA/test``: ``SK_poly/*.csv`` (``plotID``, ``Date``, ``ndvi``, ``mask``) with
  ``SK_long.gpkg`` (camera events: ``plotID``, ``type`` k = mowing, p = grazing,
  ``date``, ``endDate``).

Protocol. Every detector parameter is chosen on ``DATA/train`` only; ``DATA/test``
is scored once, with the parameters chosen on train, as held-out data. Per
parcel-year, clear acquisitions (``mask == 1``, ndvi in [-1, 1]) are binned onto the
6-day grid from 1 March to 30 November. Series: "raw" (the binned observations
only), "linear" (linear interpolation) and "sf" (the SF model, from NDVI alone: the
test tables carry no Sentinel-1, so train is filled the same way). For each
(detector, series) a coordinate search over :data:`SEARCH` maximises F1 on train,
starting from a priori values (:data:`pipeline.mowing.detect.PRIOR`);
the test scores of both the tuned and the prior parameters are printed.

Train parcel-years that count: those with a mowing event (type k) in that year, and
every year of the plots marked not mown (type n); other plot-years carry no
reference and are left out. Test parcel-years: every series in ``SK_poly``; its cuts
are the type k events of that parcel and year (none = no cut). Grazing (type p) is
not a cut to be found; a detection that matches no cut but falls within a grazing
period (date..endDate widened by the tolerance) is left out of the counts rather
than called a false positive. Matching is one to one, closest pairs first, within
``--tolerance`` days.

With ``--demo-out`` (the ``--out`` of a demo run) and ``--demo-archive`` (the demo
archive with ``truth/parcels.geojson``), the same on the demo world with the
detectors' default parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
import time
import warnings
from inspect import signature
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

# Run as a script from anywhere: make the repository root importable first (the
# editable install otherwise resolves `model` as a namespace package here).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import baselines
from pipeline.mowing import MAX_EVENTS, METHODS, Score, match_events
from pipeline.mowing.detect import PRIOR, DetectParams, default_params
from pipeline.mowing.reference import (
    Split,
    _day,
    axes_rows,
    concat,
    domains,
    doy_rows,
    load_test,
    load_train,
    targets,
    year_grid,
)
from pipeline.mowing.score import detection_outcomes
from pipeline.mowing.series import detect_on_grid

#: Values tried per parameter by the coordinate search on train.
SEARCH: dict[str, list] = {
    "min_drop": [0.06, 0.08, 0.10, 0.12, 0.15, 0.18, 0.22],
    "z": [1.0, 1.5, 2.0, 2.5, 3.0, 4.0],
    "min_peak": [0.3, 0.4, 0.45, 0.5, 0.55, 0.6],
    "max_fall_days": [12.0, 18.0, 24.0, 30.0, 42.0],
    "min_gap_days": [18.0, 24.0, 30.0, 36.0],
    "spike": [0.1, 0.15, 0.2, 0.3, 1.0],
    "season": [(s, e) for s in (100, 115, 130, 145) for e in (260, 288, 305)],
    "regrow": [0.0, 0.2, 0.4],
    "date_offset": [-3.0, 0.0, 3.0, 6.0],
}
#: Parameters a method does not use are not searched.
UNUSED = {"drop": {"z"}, "zdrop": set()}


def load_sf(path: Path | None = None) -> Any:
    """The SF model (``path`` or the shipped weights), or None where none loads."""
    try:
        import model

        return model.load_model(path)
    except Exception as exc:  # the model may be missing or unfinished: say so, go on
        print(f"SF fill unavailable: {type(exc).__name__}: {exc}")
        return None


def series_kind(name: str) -> str:
    """Which shipped thresholds a series gets: ``observed`` for raw, else ``filled``."""
    return "observed" if name == "raw" else "filled"


def fill_all(ndvi: np.ndarray, doy: np.ndarray | None = None, sf: Any = None
             ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Raw, linear and (with a model ``sf``) SF series for ``(N, T)`` NDVI without S1.

    ``doy`` ``(N, T)`` is handed to the SF model where its ``predict`` takes dates.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "raw": (ndvi, None), "linear": (baselines.linear(ndvi), None)}
    if sf is not None:
        nan = np.full((*ndvi.shape, 2), np.nan, np.float32)
        kw: dict[str, Any] = {}
        if doy is not None and "doy" in signature(sf.predict).parameters:
            kw["doy"] = doy
        out["sf"] = sf.predict(ndvi, nan, nan, **kw)
    return out


def sf_saw_test(test: Split, sf: Any) -> str:
    """Whether the SF weights were trained or calibrated on any test series (their model
    card's split: every group of plots, with or without Sentinel-1)."""
    if sf is None:
        return "SF: no weights"
    split = sf.card.get("training", {}).get("split", {})
    seen = {p for group in split.values() if isinstance(group, dict)
            for part in ("train", "calib") for p in group.get(part, [])}
    parcels = {p for p, _ in test.keys}
    n = len(parcels & seen)
    if n == 0:
        return ("SF never saw a test parcel's series in training (self-supervised or "
                "otherwise): the test is held out for the filler too")
    return (f"SF was trained or calibrated (self-supervised, without mowing labels) on the "
            f"series of {n} of the {len(parcels)} test parcels: its rows are not held out "
            "for the filler")


def date_counts(split: Split, dates: np.ndarray, tolerance: float) -> np.ndarray:
    """``(N, 3)`` tp, fp, fn per parcel-year of detected ``dates`` ``(N, E)`` (days)."""
    out = np.zeros((len(split.keys), 3), np.int64)
    for i, k in enumerate(split.keys):
        m = match_events(dates[i], split.truth.get(k, []), tolerance, split.grazing.get(k, []))
        out[i] = (m.tp, m.fp, m.fn)
    return out


def total_score(split: Split, dates: np.ndarray, tolerance: float) -> Score:
    """Summed matching score of detected ``dates`` ``(N, E)`` over the split."""
    total = Score(0, 0, 0)
    for i, k in enumerate(split.keys):
        total = total + match_events(dates[i], split.truth.get(k, []), tolerance,
                                     split.grazing.get(k, []))
    return total


def rule_dates(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
               params: DetectParams) -> np.ndarray:
    """Cut dates ``(N, MAX_EVENTS)`` of a rule, each row on its year's grid."""
    out = np.full((len(split.keys), MAX_EVENTS), np.nan)
    for year in sorted({y for _, y in split.keys}):
        rows = [i for i, (_, y) in enumerate(split.keys) if y == year]
        grid = year_grid(year)
        s = None if std is None else std[rows, : grid.count]
        out[rows] = detect_on_grid(series[rows, : grid.count], s, grid, method, params)
    return out


def row_counts(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
               params: DetectParams, tolerance: float) -> np.ndarray:
    """``(N, 3)`` tp, fp, fn per parcel-year: detect per row on its year's grid, match."""
    return date_counts(split, rule_dates(split, series, std, method, params), tolerance)


def score_split(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
                params: DetectParams, tolerance: float) -> Score:
    """Summed matching scores over the parcel-years of ``split``."""
    return total_score(split, rule_dates(split, series, std, method, params), tolerance)


def _f1(c: np.ndarray) -> np.ndarray:
    """F1 of summed (tp, fp, fn) along the last axis."""
    den = 2 * c[..., 0] + c[..., 1] + c[..., 2]
    return np.where(den > 0, 2 * c[..., 0] / np.maximum(den, 1), 0.0)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0
                     ) -> tuple[float, float, float]:
    """F1(a) - F1(b) over parcel-years resampled with replacement: (2.5 %, 97.5 %, P(> 0))."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    d = _f1(a[idx].sum(axis=1)) - _f1(b[idx].sum(axis=1))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi), float((d > 0).mean())


def tune(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
         tolerance: float, rounds: int = 3) -> tuple[DetectParams, Score]:
    """Coordinate search over :data:`SEARCH` maximising F1 on ``split``.

    Starts from :data:`PRIOR`; a parameter changes only on a strictly better F1,
    so ties keep the prior value.
    """
    best = PRIOR
    best_s = score_split(split, series, std, method, best, tolerance)
    for _ in range(rounds):
        changed = False
        for name, values in SEARCH.items():
            if name in UNUSED[method]:
                continue
            for v in values:
                cand = best.with_(**{name: v})
                if cand == best:
                    continue
                s = score_split(split, series, std, method, cand, tolerance)
                if s.f1 > best_s.f1 + 1e-12:
                    best, best_s, changed = cand, s, True
        if not changed:
            break
    return best, best_s


def changed_fields(p: DetectParams) -> str:
    """The fields of ``p`` that differ from :data:`PRIOR`, as ``k=v`` text."""
    diff = [f"{k}={getattr(p, k)}" for k in SEARCH if getattr(p, k) != getattr(PRIOR, k)]
    return ", ".join(diff) or "(prior values)"


def _row(series: str, method: str, params: str, s: Score) -> dict:
    return {"series": series, "method": method, "params": params, "tp": s.tp, "fp": s.fp,
            "fn": s.fn, "precision": s.precision, "recall": s.recall, "f1": s.f1}


def bench_slovak(data: Path, tolerance: float, model_path: Path | None = None
                 ) -> tuple[list[dict], list[dict], list[str]]:
    """Tune on ``data/train``, score on ``data/test``: (train rows, test rows, notes).

    ``model_path``: SF weights to fill with (default: the shipped ones).

    Without ``data/train/mowing_events.gpkg`` nothing can be tuned: the test is scored
    with the detectors' shipped thresholds (:func:`~pipeline.mowing.detect.default_params`).
    """
    sf = load_sf(model_path)
    test = load_test(data / "test")
    te_series = fill_all(test.ndvi, doy_rows(test.keys, test.ndvi.shape[1]), sf)
    has_train = (data / "train" / "mowing_events.gpkg").is_file()
    train = load_train(data / "train") if has_train else None
    notes = [train.describe()] if train else ["train: none (no train/mowing_events.gpkg)"]
    notes.append(test.describe())
    notes.append(sf_saw_test(test, sf))
    for n in notes:
        print("  " + n)
    tr_series = (fill_all(train.ndvi, doy_rows(train.keys, train.ndvi.shape[1]), sf)
                 if train else {})
    tr_rows, te_rows = [], []
    held_counts: dict[tuple[str, str], np.ndarray] = {}
    for name in te_series:
        for method in METHODS:
            lit = score_split(test, *te_series[name], method, PRIOR, tolerance)
            te_rows.append(_row(name, method, "prior", lit))
            if train is None or name not in tr_series:
                p = default_params(method, series_kind(name))
                label = "shipped defaults"
            else:
                p, s = tune(train, *tr_series[name], method, tolerance)
                tr_rows.append(_row(name, method, changed_fields(p), s))
                label = "tuned on train"
            counts = row_counts(test, *te_series[name], method, p, tolerance)
            held_counts[(name, method)] = counts
            tp, fp, fn = (int(v) for v in counts.sum(axis=0))
            held = Score(tp, fp, fn)
            te_rows.append(_row(name, method, label, held))
            print(f"  {method:6s} {name:7s} test F1 {held.f1:.3f} ({label}; prior "
                  f"{lit.f1:.3f})  {changed_fields(p)}")
    for (name, method), counts in held_counts.items():
        if name == "raw" or ("raw", method) not in held_counts:
            continue
        lo, hi = paired_bootstrap(counts, held_counts[("raw", method)])[:2]
        d = float(_f1(counts.sum(axis=0)) - _f1(held_counts[("raw", method)].sum(axis=0)))
        notes.append(f"test F1 {method} {name} minus {method} raw: {d:+.3f} (95 % interval "
                     f"of a paired bootstrap over parcel-years {lo:+.3f} .. {hi:+.3f})")
        print("  " + notes[-1])
    return tr_rows, te_rows, notes


#: Edges of the reliability table's probability bins.
RELIABILITY_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def reliability(split: Split, dates: np.ndarray, probs: np.ndarray, tolerance: float
                ) -> list[dict]:
    """Share of detected events that match a reference cut, per probability bin."""
    hit, pr = [], []
    for i, k in enumerate(split.keys):
        ok = np.isfinite(dates[i])
        o = detection_outcomes(dates[i][ok], split.truth.get(k, []), tolerance,
                               split.grazing.get(k, []))
        keep = o >= 0
        hit.extend(o[keep].tolist())
        pr.extend(probs[i][ok][keep].tolist())
    h, q = np.asarray(hit, float), np.asarray(pr, float)
    rows = []
    edges = (0.0, *RELIABILITY_BINS) if (q < RELIABILITY_BINS[0]).any() else RELIABILITY_BINS
    for lo, hi in itertools.pairwise(edges):
        sel = (q >= lo) & (q < hi)
        if sel.any():
            rows.append({"bin": f"{lo:.1f}-{min(hi, 1.0):.1f}", "events": int(sel.sum()),
                         "mean_probability": float(q[sel].mean()),
                         "matched": float(h[sel].mean())})
    return rows


def fold_teacher(pool: Split, doy: np.ndarray, y: np.ndarray, w: np.ndarray, recipe: Any,
                 cache: Path | None = None) -> Any:
    """The teacher of a distilled ``recipe`` for one fold, trained on that fold's pool only.

    With ``cache`` (a folder), a teacher trained before on the identical pool (keys,
    series, targets) with the identical recipe is read from there instead of trained
    again, and a new one is stored there. None when the recipe does not distil.
    """
    from model.mowing import fit_detector, load_detector, teacher_recipe

    if recipe.distill <= 0:
        return None
    tr = teacher_recipe(recipe)
    if cache is None:
        return fit_detector(pool.ndvi, doy, y, w, tr)
    trains = {k: v for k, v in dataclasses.asdict(tr).items()  # what the teacher depends on
              if not k.startswith("teacher_") and k not in ("distill", "dilations", "transfer")}
    h = hashlib.sha256(json.dumps([trains, [list(k) for k in pool.keys]]).encode())
    for a in (pool.ndvi, y, w):
        h.update(np.ascontiguousarray(a).tobytes())
    path = cache / f"teacher-{h.hexdigest()[:16]}.safetensors"
    if path.is_file():
        return load_detector(path)
    det = fit_detector(pool.ndvi, doy, y, w, tr, {"pool": pool.name})
    det.save(path)
    return det


def transfer_set(data: Path, left: str, t: int, test: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(ndvi, doy)`` of the unlabelled plot-years of every domain but ``left`` (none of
    them a parcel-year of ``test``), on ``t`` bins."""
    from pipeline.mowing.reference import transfer_series

    keys, ndvi, doy = transfer_series(data, t, leave_out=left)
    assert not set(keys) & set(test.keys), "a transfer series in the left-out domain"
    return ndvi, doy


def bench_lodo(data: Path, tolerance: float, recipe: Any = None,
               model_path: Path | None = None, teacher_cache: Path | None = None
               ) -> tuple[list[dict], list[str], dict]:
    """Leave one domain out: rules tuned and the detector trained on the other domains.

    Returns the score rows (one per left-out domain, detector and series), notes, and
    the learned detector's reliability table per left-out domain. A distilled recipe's
    teacher is trained per fold on the same other domains (see :func:`fold_teacher`
    for ``teacher_cache``).
    """
    import torch

    from model.mowing import DetectorRecipe, fit_detector
    from pipeline.mowing.learned import decode

    recipe = recipe or DetectorRecipe()
    torch.set_num_threads(1)  # small networks: one thread per process trains fastest here
    doms = domains(data)
    if len(doms) < 2:
        raise SystemExit(f"{data}: fewer than two domains; nothing to leave out")
    sf = load_sf(model_path)
    rows: list[dict] = []
    notes: list[str] = [f"{name}: {d.describe().split(': ', 1)[1]}" for name, d in doms.items()]
    notes.append(f"learned detector recipe: {recipe}")
    rel: dict[str, list[dict]] = {}
    for left, test in doms.items():
        pool = concat([d for n, d in doms.items() if n != left], f"all but {left}")
        assert not set(pool.keys) & set(test.keys), "a parcel-year on both sides of a fold"
        t0 = time.perf_counter()
        notes.append(f"{left}: {sf_saw_test(test, sf)}")
        te_series = fill_all(test.ndvi, doy_rows(test.keys, test.ndvi.shape[1]), sf)
        tr_series = fill_all(pool.ndvi, doy_rows(pool.keys, pool.ndvi.shape[1]), sf)
        counts: dict[tuple[str, str], np.ndarray] = {}
        for name in te_series:
            for method in METHODS:
                p, _ = tune(pool, *tr_series[name], method, tolerance)
                dates = rule_dates(test, *te_series[name], method, p)
                counts[(method, name)] = date_counts(test, dates, tolerance)
                rows.append(_lodo_row(left, method, name, test, dates, tolerance))
        days, doy = axes_rows(pool.keys, pool.ndvi.shape[1])
        y, w = targets(pool, days)
        teacher = fold_teacher(pool, doy, y, w, recipe, teacher_cache)
        det = fit_detector(pool.ndvi, doy, y, w, recipe, teacher=teacher,
                           unlabelled=transfer_set(data, left, pool.ndvi.shape[1], test)
                           if recipe.transfer else None)
        days_t, doy_t = axes_rows(test.keys, test.ndvi.shape[1])
        prob = det.predict_proba(test.ndvi, doy_t)
        dates, probs = decode(prob, days_t, det.threshold, det.min_gap_days)
        counts[("learned", "raw")] = date_counts(test, dates, tolerance)
        rows.append(_lodo_row(left, "learned", "raw", test, dates, tolerance))
        rel[left] = reliability(test, dates, probs, tolerance)
        best = max((r for r in rows if r["domain"] == left and r["method"] != "learned"),
                   key=lambda r: r["f1"])
        lo, hi, pgt = paired_bootstrap(counts[("learned", "raw")],
                                       counts[(best["method"], best["series"])])
        d = rows[-1]["f1"] - best["f1"]
        notes.append(f"{left}: learned minus best rule ({best['method']} on {best['series']}, "
                     f"F1 {best['f1']:.3f}): {d:+.3f} (95 % paired bootstrap over "
                     f"parcel-years {lo:+.3f} .. {hi:+.3f}; P(> 0) {pgt:.2f}); fold "
                     f"{time.perf_counter() - t0:.0f} s")
        print("  " + notes[-1], flush=True)
    return rows, notes, rel


def _lodo_row(domain: str, method: str, series: str, split: Split, dates: np.ndarray,
              tolerance: float) -> dict:
    s = total_score(split, dates, tolerance)
    s6 = total_score(split, dates, tolerance / 2)
    row = {"domain": domain, "method": method, "series": series, "tp": s.tp, "fp": s.fp,
           "fn": s.fn, "precision": s.precision, "recall": s.recall, "f1": s.f1,
           "f1_half": s6.f1, "date_error": s.date_error}
    print(f"  {domain:8s} {method:7s} {series:6s} F1 {s.f1:.3f} (P {s.precision:.3f} "
          f"R {s.recall:.3f}; ±{tolerance / 2:g} d {s6.f1:.3f}; date error "
          f"{s.date_error:.1f} d)", flush=True)
    return row


def lodo_markdown(rows: list[dict], notes: list[str], rel: dict, tolerance: float) -> str:
    """The cross-domain tables as Markdown."""
    half = tolerance / 2
    lines = ["### Leave one domain out", "",
             f"| left out | detector | series | P | R | F1 ±{tolerance:g} d | F1 ±{half:g} d | "
             "date error (d) | TP | FP | FN |", "|---" * 11 + "|"]
    for r in rows:
        lines.append(f"| {r['domain']} | {r['method']} | {r['series']} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['f1']:.3f} | {r['f1_half']:.3f} | "
                     f"{r['date_error']:.1f} | {r['tp']} | {r['fp']} | {r['fn']} |")
    lines += ["", *(f"* {n}" for n in notes), "", "### Reliability of the event probability "
              "(learned detector, left-out domains)", "",
              "| left out | probability | events | mean probability | matched share |",
              "|---|---|---|---|---|"]
    for dom, table in rel.items():
        for r in table:
            lines.append(f"| {dom} | {r['bin']} | {r['events']} | {r['mean_probability']:.2f} | "
                         f"{r['matched']:.2f} |")
    return "\n".join(lines) + "\n"


def bench_demo(out: Path, archive: Path, tolerance: float) -> list[dict]:
    import rasterio.features
    from odc.geo.xr import ODCExtensionDs  # noqa: F401  (registers .odc)

    from pipeline.mowing.raster import MIN_CLEAR_SHARE, cube_grid, open_filled_cube

    cube = open_filled_cube(out)
    geobox = cube.odc.geobox
    grid = cube_grid(cube)
    parcels = gpd.read_file(archive / "truth" / "parcels.geojson").to_crs(geobox.crs)
    parcels = parcels[parcels["landcover"].isin(["grassland_mown", "pasture"])]
    labels = rasterio.features.rasterize(
        ((g, i + 1) for i, g in enumerate(parcels.geometry)), out_shape=geobox.shape,
        transform=geobox.affine, fill=0, dtype="int32")
    labels = np.where(cube["aoi_mask"].values > 0, labels, 0)
    raw_px = cube["ndvi"].values
    fil_px = cube["ndvi_filled"].values
    std_px = cube["ndvi_std"].values
    keys, raw, fil, std, truth = [], [], [], [], {}
    for i, (_, p) in enumerate(parcels.iterrows()):
        sel = labels == i + 1
        if sel.sum() < 10:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            clear = np.isfinite(raw_px[:, sel]).mean(axis=1)
            raw.append(np.where(clear >= MIN_CLEAR_SHARE, np.nanmean(raw_px[:, sel], axis=1),
                                np.nan))
            fil.append(np.nanmean(fil_px[:, sel], axis=1))
            std.append(np.sqrt(np.nanmean(std_px[:, sel] ** 2, axis=1)))
        key = (str(p["parcel_id"]), grid.start.year)
        keys.append(key)
        cuts = p["mowing_dates"]
        cuts = json.loads(cuts) if isinstance(cuts, str) else ([] if cuts is None else cuts)
        truth[key] = sorted(_day(pd.Series(pd.to_datetime(list(cuts)))).tolist())
    raw_a = np.asarray(raw, np.float32)
    series = {"raw": (raw_a, None), "linear": (baselines.linear(raw_a), None),
              f"{cube['ndvi_filled'].attrs.get('method', 'run')} (run)":
                  (np.asarray(fil, np.float32), np.asarray(std, np.float32))}
    rows = []
    for name, (y, s) in series.items():
        for method in METHODS:
            total = Score(0, 0, 0)
            cuts = detect_on_grid(y, s, grid, method, default_params(method, series_kind(name)))
            for k, c in zip(keys, cuts, strict=True):
                total = total + match_events(c, truth[k], tolerance)
            rows.append({"series": name, "method": method, "tp": total.tp, "fp": total.fp,
                         "fn": total.fn, "precision": total.precision, "recall": total.recall,
                         "f1": total.f1})
    n_ev = sum(len(v) for v in truth.values())
    print(f"  {len(keys)} grassland parcels (mown + pasture), {n_ev} cuts, "
          f"{np.isfinite(raw_a).mean():.0%} of parcel bins observed")
    return rows


def to_markdown(title: str, rows: list[dict], with_params: bool = False) -> str:
    head = "| detector | series | parameters | P | R | F1 | TP | FP | FN |"
    lines = [f"### {title}", "", head if with_params else head.replace(" parameters |", ""),
             "|---" * (9 if with_params else 8) + "|"]
    for r in sorted(rows, key=lambda r: (r["method"], r["series"], r.get("params", ""))):
        par = f" {r['params']} |" if with_params else ""
        lines.append(f"| {r['method']} | {r['series']} |{par} {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['f1']:.3f} | {r['tp']} | {r['fp']} | {r['fn']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="?", help="slovak-grassland layout folder")
    ap.add_argument("--data", type=Path, dest="data_opt", help="same as DATA")
    ap.add_argument("--demo-out", type=Path, help="--out folder of a finished demo run")
    ap.add_argument("--demo-archive", type=Path, help="demo archive folder (with truth/)")
    ap.add_argument("--tolerance", type=float, default=12.0, help="match window, days")
    ap.add_argument("--markdown", type=Path, help="also write the tables here")
    ap.add_argument("--model", type=Path, help="SF weights (default: the shipped ones)")
    ap.add_argument("--lodo", action="store_true",
                    help="leave-one-domain-out validation of the rules and the learned detector")
    ap.add_argument("--seeds", type=int, default=None,
                    help="ensemble members of the learned detector (default: its recipe's)")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps per member (default: the recipe's)")
    ap.add_argument("--first-seed", type=int, default=None,
                    help="seed of the first ensemble member (another value: another ensemble, "
                    "for the spread over training seeds)")
    ap.add_argument("--distill", type=float, default=None,
                    help="weight of the teacher's probabilities (default: the recipe's)")
    ap.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                    help="another setting of the learned detector's recipe (repeatable; "
                    "e.g. net=gru, hidden=32, seeds=3, lr=0.003)")
    ap.add_argument("--teacher-cache", type=Path, default=None,
                    help="folder for the folds' teachers of a distilled recipe: one trained "
                    "before on the same pool with the same recipe is reused")
    args = ap.parse_args()
    data = args.data or args.data_opt
    if data is None:
        ap.error("pass the data folder (DATA or --data DATA)")
    t0 = time.perf_counter()
    if args.lodo:
        from model.mowing import DetectorRecipe, with_settings

        over = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps),
                                  ("first_seed", args.first_seed), ("distill", args.distill))
                if v is not None}
        try:
            recipe = dataclasses.replace(with_settings(DetectorRecipe(), args.recipe), **over)
        except ValueError as exc:
            ap.error(str(exc))
        if args.teacher_cache:
            args.teacher_cache.mkdir(parents=True, exist_ok=True)
        print(f"leave one domain out ({data}):")
        rows, notes, rel = bench_lodo(data, args.tolerance, recipe, args.model,
                                      args.teacher_cache)
        text = (f"Mowing detection across domains, produced by `benchmarks/bench_mowing.py "
                f"{data} --lodo`: for each left-out domain, rule thresholds are tuned (F1, "
                "coordinate search) and the learned detector trained on the other domains "
                "only; the left-out domain is scored once.\n\n"
                + lodo_markdown(rows, notes, rel, args.tolerance))
        print(text)
        print(f"({time.perf_counter() - t0:.0f} s)")
        if args.markdown:
            args.markdown.write_text(text, encoding="utf-8")
        return
    md = [f"Mowing detection, events matched within ±{args.tolerance:g} days, one to one. "
          f"Produced by `benchmarks/bench_mowing.py {data}`: every detector parameter is "
          "chosen on `train/` (coordinate search from a priori values, F1), then "
          "`test/` is scored once as held-out data.\n"]
    print(f"Slovak plots ({data}):")
    tr_rows, te_rows, notes = bench_slovak(data, args.tolerance, args.model)
    md.append("\n".join(f"* {n}" for n in notes) + "\n")
    md.append(to_markdown("Held-out test: Slovak camera parcels (test/)", te_rows, True))
    if tr_rows:
        md.append(to_markdown("Tuning: Slovak reference plots (train/; F1 of the chosen "
                              "parameters; SF saw these series in training)", tr_rows, True))
    if args.demo_out and args.demo_archive:
        print("demo world:")
        md.append(to_markdown("Demo world (default parameters)",
                              bench_demo(args.demo_out, args.demo_archive, args.tolerance)))
    text = "\n".join(md)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
