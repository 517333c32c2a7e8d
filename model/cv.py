"""Cross-domain validation of the SF recipe: leave one domain out, score it.

``python -m model cv --data DIR --out REPORT`` runs :func:`run_cv`.

Domains are read off the data folder, never from a list: every region tag of the
Sentinel-1+2 plot tables (``train/S2/ts_<REGION>_...csv`` with the Sentinel-1 tables
``train/S1/ts_<REGION>_...csv`` of the same tag) and the Sentinel-2-only parcel
folder ``test/SK_poly`` (scored on NDVI alone). For each left-out domain a network is
trained with the recipe on the other domains (their plots split 90 / 10 into
training and calibration; Sentinel-2-only domains only where the recipe's
``s2_only`` asks for them), then the left-out domain is scored with the ``evaluate``
protocol of :mod:`pipeline.evaluate` (same buckets, every classic baseline) at each
gap seed: SF with Sentinel-1, without it, without the fallback to the Akima fill, and
adapted to the domain as ``fill-table`` adapts it (:func:`cross_fit`: each half of the
domain's plots filled by the network adapted on the other half).
No plot may be in both the training and the test side of a fold: :func:`check_disjoint`
enforces it before any training starts.

Folds train in parallel worker processes (one torch thread each).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.data import PlotSeries, bin_series, read_s1_tables, read_s2_tables

log = logging.getLogger(__name__)

_REGION = re.compile(r"^ts_([A-Za-z]+)_")
#: Gap buckets of the evaluate protocol, in its order.
BUCKET_NAMES = ("6d", "12-18d", "24-30d", "36-60d")
#: Folder of the Sentinel-2-only parcels (relative to the data folder).
S2_ONLY_DIR = Path("test") / "SK_poly"


class FoldOverlapError(AssertionError):
    """A plot is on both the training and the test side of a fold."""


@dataclass(frozen=True)
class Domain:
    """One domain of the data folder.

    Attributes:
        name: region tag from the file names, or the Sentinel-2-only folder's name.
        has_s1: whether Sentinel-1 tables belong to it.
        year: full-year series (training windows).
        season: April-October series (scoring and calibration).
    """

    name: str
    has_s1: bool
    year: PlotSeries
    season: PlotSeries

    @property
    def plots(self) -> set[str]:
        """Plot ids of the domain."""
        return set(self.year.plot.tolist()) | set(self.season.plot.tolist())


def _region_files(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in sorted(folder.glob("*.csv")):
        m = _REGION.match(f.name)
        if m:
            out.setdefault(m.group(1), []).append(f)
    return out


def _domain(name: str, s2_files: list[Path], s1_files: list[Path]) -> Domain:
    s2, s1 = read_s2_tables(s2_files), read_s1_tables(s1_files)
    return Domain(name, bool(s1_files), bin_series(s2, s1, months=(1, 12)),
                  bin_series(s2, s1, months=(4, 10)))


def discover_domains(data_dir: Path) -> list[Domain]:
    """Every domain of a folder with the slovak-grassland layout (see module docstring)."""
    data_dir = Path(data_dir)
    s2 = _region_files(data_dir / "train" / "S2")
    s1 = _region_files(data_dir / "train" / "S1")
    domains = [_domain(r, s2[r], s1.get(r, [])) for r in sorted(s2)]
    s2_only = sorted((data_dir / S2_ONLY_DIR).glob("*.csv"))
    if s2_only:
        domains.append(_domain(S2_ONLY_DIR.name, s2_only, []))
    if not domains:
        raise FileNotFoundError(f"no plot tables (train/S2/ts_<REGION>_*.csv or "
                                f"{S2_ONLY_DIR}/*.csv) under {data_dir}")
    return domains


def check_disjoint(train: Sequence[PlotSeries], test: PlotSeries) -> None:
    """Raise :class:`FoldOverlapError` if any test plot is among the training plots."""
    seen = set().union(*(set(p.plot.tolist()) for p in train)) if train else set()
    common = seen & set(test.plot.tolist())
    if common:
        raise FoldOverlapError(f"{len(common)} plots on both sides of a fold, e.g. "
                               f"{sorted(common)[:3]}")


def _split(series: PlotSeries, seed: int, calib_frac: float) -> tuple[PlotSeries, ...]:
    """Training / calibration rows by plot; at least one calibration plot per domain."""
    from model.train import split_plots

    calib = split_plots(series.plot, seed, 0.0, calib_frac)["calib"]
    if not calib:
        plots = sorted(set(series.plot.tolist()))
        calib = plots[:1] if len(plots) > 1 else []
    is_cal = np.isin(series.plot, calib)
    return series.take(~is_cal), series.take(is_cal)


def fold_data(
    domains: Sequence[Domain], test: str, recipe: Any
) -> tuple[list[PlotSeries], list[PlotSeries], Domain]:
    """Training pools, calibration sets and the left-out domain of one fold."""
    out = [d for d in domains if d.name == test]
    if not out:
        raise ValueError(f"unknown domain {test!r}; have {[d.name for d in domains]}")
    pools, calib = [], []
    for d in domains:
        if d.name == test or (not d.has_s1 and not recipe.s2_only):
            continue
        tr, _ = _split(d.year, recipe.seed, recipe.calib_frac)
        _, ca = _split(d.season, recipe.seed, recipe.calib_frac)
        pools.append(tr)
        calib.append(ca)
    check_disjoint(pools + calib, out[0].season)
    check_disjoint(pools + calib, out[0].year)
    return pools, calib, out[0]


def _run_fold(
    data_dir: str, test: str, recipe_fields: dict[str, Any], seeds: list[int], repeats: int,
    weights_dir: str, reuse: bool = False, adapt_steps: int = 0,
) -> dict[str, Any]:
    import torch

    from model import SFModel, __version__
    from model.train import Recipe, calibrate, fit
    from pipeline.evaluate import score_buckets

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{test}] %(message)s")
    recipe = Recipe(**recipe_fields)
    domains = discover_domains(Path(data_dir))
    pools, calib, left = fold_data(domains, test, recipe)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    path = Path(weights_dir) / f"{test}.safetensors"
    if reuse and path.exists():
        # Scoring-only rerun: the fold's network as trained, calibrated anew.
        from model import load_model

        net = load_model(path).net
        seconds = float(json.loads(path.with_suffix(".json").read_text())["training"]
                        .get("seconds", 0.0))
        calibration = calibrate(net, calib, recipe.seed, use_s1=bool(recipe.s1))
    else:
        net, calibration, seconds = fit(pools, calib, recipe, rng)
    card = {"version": __version__, "calibration": calibration,
            "architecture": {"config": net.config},
            "training": {"recipe": recipe_fields, "cv_left_out": test, "seconds": seconds,
                         "domains": sorted({d.name for d in domains} - {test})}}
    if not recipe.s1:
        card["inference"] = {"s1": False}
    _save(net, card, path)
    sf = SFModel(net, card)
    variants: dict[str, dict[str, Any]] = {"sf": {}}
    if left.has_s1 and recipe.s1:
        variants["sf_no_s1"] = {"use_s1": False}
    results: dict[str, Any] = {}
    ratios: dict[str, list[np.ndarray]] = {}
    for seed in seeds:
        per: dict[str, Any] = {}
        for name, kw in variants.items():
            summary, samples = score_buckets(left.season, sf, seed=seed, repeats=repeats, **kw)
            per[name] = summary
            if name == "sf":
                for b, (rows, _, hidden, preds, std) in samples.items():
                    truth = left.season.ndvi[rows][hidden]
                    err = np.abs(preds["sf"][hidden] - truth)
                    ratios.setdefault(b, []).append(err / std[hidden])
        if sf.fallback:
            sf.fallback = False
            per["sf_no_fallback"], _ = score_buckets(left.season, sf, seed=seed,
                                                     repeats=repeats)
            sf.fallback = True
        results[str(seed)] = per
    adaptation: list[dict[str, Any]] = []
    if adapt_steps > 0:
        route, adaptation = cross_fit(left.season, sf, recipe.seed, adapt_steps)
        for seed in seeds:
            results[str(seed)]["sf_adapted"], _ = score_buckets(
                left.season, sf, seed=seed, repeats=repeats, route=route)
    return {"domain": test, "has_s1": left.has_s1, "n_plot_years": len(left.season.plot),
            "train_plot_years": [len(p.plot) for p in pools], "train_seconds": seconds,
            "calibration": calibration, "seeds": results, "adaptation": adaptation,
            "ratios": {b: np.concatenate(v) for b, v in ratios.items()}}


def cross_fit(
    season: PlotSeries, sf: Any, seed: int, steps: int, use_s1: bool | None = False
) -> tuple[tuple[np.ndarray, list[Any]], list[dict[str, Any]]]:
    """Test-time adaptation scored without leaking: two halves of the domain's plots.

    The plots of the left-out domain are split in two (seeded, by plot id, so no
    plot-year of a plot is on both sides); each half is filled by the fold's network
    adapted (:func:`model.adapt.adapt`, Sentinel-1 withheld as SF ships) on the other
    half's series alone. A user's run adapts on the very series it fills, so this is
    the harder case: the network never saw the filled series' own clear dates.
    ``use_s1``: whether the adapted networks read Sentinel-1 (``None``: as ``sf`` does).

    Returns the ``route`` of :func:`pipeline.evaluate.score_buckets` and the two
    adaptation reports.
    """
    from model import SFModel
    from model.adapt import adapt

    plots = np.array(sorted(set(season.plot.tolist())))
    half = set(plots[np.random.default_rng(seed).permutation(len(plots))[: len(plots) // 2]])
    group = np.isin(season.plot, list(half)).astype(int)
    base = SFModel(sf.net, sf.card)
    base.use_s1 = sf.use_s1 if use_s1 is None else use_s1
    models, reports = [], []
    for k in (0, 1):
        model_k, rep = adapt(base, season.take(group != k), seed=seed + k, steps=steps)
        models.append(model_k)
        reports.append({"fills_half": k, **rep.as_dict()})
    return (group, models), reports


def shift_factors(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """How much wider SF's std must be on a domain it never saw, and whether it transfers.

    For each fold, the factor that puts 90 % of the left-out domain's hidden errors
    inside the interval (pooled over seeds and buckets); each fold's coverage with the
    mean of the *other* folds' factors tells whether widening the std by such a factor
    would carry over to a new domain, per bucket (a report, not applied).
    """
    from model.train import Z90

    need = {f["domain"]: float(np.quantile(np.concatenate(list(f["ratios"].values())), 0.9)
                               / Z90) for f in folds}
    transfer: dict[str, dict[str, float]] = {}
    for f in folds:
        others = [v for k, v in need.items() if k != f["domain"]] or [need[f["domain"]]]
        fac = float(np.mean(others))
        transfer[f["domain"]] = {b: float(np.mean(r <= Z90 * fac))
                                 for b, r in f["ratios"].items()}
    return {"per_fold": need, "mean": float(np.mean(list(need.values()))),
            "coverage90_with_other_folds_factor": transfer}


def _save(net: Any, card: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    from model.train import write_card

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(path)
    write_card(path.with_suffix(".json"), card)


def run_cv(
    data_dir: Path,
    out_dir: Path,
    recipe: Any = None,
    seeds: Sequence[int] = (0, 1, 2),
    repeats: int = 10,
    workers: int = 2,
    only: Sequence[str] | None = None,
    reuse: bool = False,
    adapt_steps: int = 0,
) -> dict[str, Any]:
    """Leave-one-domain-out training and scoring; writes ``cv.json`` and ``cv.md``.

    Args:
        data_dir: folder with the slovak-grassland layout.
        out_dir: report folder (created); fold weights go to ``out_dir/folds``.
        recipe: :class:`model.train.Recipe` (default recipe if ``None``).
        seeds: gap-placement seeds of the ``evaluate`` protocol.
        repeats: windows per series and bucket.
        workers: folds trained at once (processes).
        only: left-out domains to run (default: every domain).
        reuse: score fold networks already in ``out_dir/folds`` instead of training
            them again (calibration and scoring are redone).
        adapt_steps: > 0 also scores variant ``sf_adapted``: test-time adaptation
            (:func:`cross_fit`) with this many fine-tuning steps.
    """
    from model.train import Recipe, write_text

    recipe = recipe or Recipe()
    domains = discover_domains(Path(data_dir))
    names = [d.name for d in domains]
    tests = list(only) if only else names
    for t in tests:
        fold_data(domains, t, recipe)  # fails fast on unknown names and overlaps
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = dataclasses.asdict(recipe)
    t0 = time.perf_counter()
    args = [(str(data_dir), t, fields, list(seeds), repeats, str(out_dir / "folds"), reuse,
             adapt_steps) for t in tests]
    if workers <= 1 or len(args) == 1:
        folds = [_run_fold(*a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(args)),
                                 mp_context=mp.get_context("spawn")) as ex:
            folds = list(ex.map(_run_fold, *zip(*args, strict=True)))
    factors = shift_factors(folds)
    for f in folds:
        f.pop("ratios")
    report = {"data": str(data_dir), "domains": names, "recipe": fields,
              "std_shift_factor": factors,
              "seeds": list(seeds), "repeats": repeats, "adapt_steps": adapt_steps,
              "wall_seconds":
              round(time.perf_counter() - t0, 1), "workers": workers, "folds": folds}
    write_text(out_dir / "cv.json", json.dumps(report, indent=2) + "\n")
    write_text(out_dir / "cv.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The fold table: one row per domain, variant, bucket and seed, then seed means."""
    lines = ["# SF cross-domain validation (leave one domain out)", "",
             f"Data `{report['data']}`, domains {', '.join(report['domains'])}; "
             f"recipe steps {report['recipe']['steps']}, seeds {report['seeds']}, "
             f"{report['repeats']} windows per series and bucket; "
             f"{report['wall_seconds']:.0f} s wall with {report['workers']} workers.", "",
             "| left out | variant | gap | seed | SF MAE | best classic | classic MAE "
             "| SF vs classic | SF R² | classic R² | 90 % coverage |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    means: list[str] = []
    for fold in report["folds"]:
        per_seed = fold["seeds"]
        variants = list(next(iter(per_seed.values())))
        for v in variants:
            buckets = list(next(iter(per_seed.values()))[v])
            for b in buckets:
                red = []
                for seed, per in per_seed.items():
                    r = per[v][b]
                    c = r["best_classic"]
                    red.append(-100 * r["sf_mae_reduction_vs_best_classic"])
                    lines.append(
                        f"| {fold['domain']} | {v} | {b} | {seed} | {r['sf']['mae']:.4f} | {c} "
                        f"| {r[c]['mae']:.4f} | {red[-1]:+.1f} % | {r['sf']['r2']:.3f} "
                        f"| {r[c]['r2']:.3f} | {100 * r['sf']['coverage90']:.1f} % |")
                cov = [100 * per[v][b]["sf"]["coverage90"] for per in per_seed.values()]
                means.append(f"| {fold['domain']} | {v} | {b} | {np.mean(red):+.1f} % "
                             f"| {min(red):+.1f} / {max(red):+.1f} % "
                             f"| {min(cov):.1f}-{max(cov):.1f} % |")
    fac = report.get("std_shift_factor")
    if fac:
        lines += ["", "Std widening a left-out domain needs for 90 % coverage: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in fac["per_fold"].items())
                  + f" (mean {fac['mean']:.2f}). Coverage of each left-out domain with the "
                  "mean factor of the other folds:", "",
                  "| left out | " + " | ".join(BUCKET_NAMES) + " |",
                  "|---" * (len(BUCKET_NAMES) + 1) + "|"]
        for d, cov in fac["coverage90_with_other_folds_factor"].items():
            lines.append(f"| {d} | " + " | ".join(f"{100 * cov[b]:.1f} %" for b in BUCKET_NAMES
                                                   if b in cov) + " |")
    lines += ["", "Averaged over the seeds:", "",
              "| left out | variant | gap | SF vs best classic (mean) | best / worst seed "
              "| 90 % coverage range |", "|---|---|---|---|---|---|", *means]
    return "\n".join(lines) + "\n"


def fold_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Compact fold table for the model card: per domain, variant and bucket, per seed."""
    out: dict[str, Any] = {"data": report["data"], "seeds": report["seeds"],
                           "repeats": report["repeats"], "steps": report["recipe"]["steps"],
                           "std_shift_factor": report.get("std_shift_factor"), "folds": {}}
    for fold in report["folds"]:
        table: dict[str, Any] = {}
        for seed, per in fold["seeds"].items():
            for variant, buckets in per.items():
                for b, r in buckets.items():
                    c = r["best_classic"]
                    row = table.setdefault(variant, {}).setdefault(b, [])
                    row.append({"seed": int(seed), "sf_mae": round(r["sf"]["mae"], 5),
                                "best_classic": c, "classic_mae": round(r[c]["mae"], 5),
                                "reduction": round(r["sf_mae_reduction_vs_best_classic"], 4),
                                "coverage90": round(r["sf"]["coverage90"], 4)})
        out["folds"][fold["domain"]] = {"n_plot_years": fold["n_plot_years"], "table": table,
                                        "adaptation": fold.get("adaptation", [])}
    return out
