"""The benchmark protocol: artificial gaps in real plot series, metrics by gap length.

``python -m pipeline evaluate --data DIR --out REPORT_DIR`` calls :func:`run_evaluation`.

Protocol:

1. Read ``DIR/train/S1/*.csv`` and ``DIR/train/S2/*.csv`` (any folder of the
   slovak-grassland layout) and build one 6-day series per plot and year, April to
   October, on the epoch-anchored grid of :mod:`pipeline.timegrid` (mean of clear
   observations per bin; S1 per orbit direction).
2. Plots: when DIR is the model's training folder (its plots are those of the model
   card's split) only the card's held-out evaluation plots are used, else all plots.
3. Gaps: for each bucket (6 d = 1 date; 12-18 d = 2-3; 24-30 d = 4-5; 36-60 d = 6-10
   dates) and each series, ``repeats`` windows of a random length in the bucket are
   placed at random where at least one clear observation lies before and after the
   window and one inside it; every clear observation inside the window is hidden and
   becomes a target. (Pre-existing cloudy bins next to a window make the real gap
   longer; buckets are by the hidden window.)
4. Every method fills the same inputs: SF (mean and std), linear, Akima, quadratic and
   Whittaker (lambda 10). Scores per bucket: MAE, RMSE, R² over hidden cells, and the
   share of hidden cells within SF's 90 % interval (mean +- 1.645 std).
5. Writes ``metrics.json``, ``report.md`` and ``samples.png`` into the output folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import baselines
from pipeline.errors import InputError
from pipeline.storage import atomic_write
from pipeline.timegrid import EPOCH, STEP_DAYS

if TYPE_CHECKING:
    from model import SFModel
    from model.data import PlotSeries

log = logging.getLogger(__name__)

#: Gap buckets: name -> (shortest, longest) hidden window in 6-day dates.
BUCKETS: dict[str, tuple[int, int]] = {
    "6d": (1, 1),
    "12-18d": (2, 3),
    "24-30d": (4, 5),
    "36-60d": (6, 10),
}
Z90 = 1.6448536


def make_gaps(
    ndvi: np.ndarray, lo: int, hi: int, repeats: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hide windows of ``lo..hi`` dates in copies of each series.

    Returns ``(rows, inputs, hidden)``: the source row of every copy, the ``(M, T)``
    inputs with the window's observations set to NaN and the boolean hidden cells.
    """
    n, t = ndvi.shape
    obs = np.isfinite(ndvi)
    cum = np.concatenate([np.zeros((n, 1), int), np.cumsum(obs, axis=1)], axis=1)
    rows_out, inp_out, hid_out = [], [], []
    for i in range(n):
        for _ in range(repeats):
            k = int(rng.integers(lo, hi + 1))
            starts = np.arange(0, t - k + 1)
            before = cum[i, starts]
            inside = cum[i, starts + k] - cum[i, starts]
            after = cum[i, t] - cum[i, starts + k]
            ok = starts[(before > 0) & (inside > 0) & (after > 0)]
            if not len(ok):
                continue
            s = int(rng.choice(ok))
            hidden = np.zeros(t, dtype=bool)
            hidden[s : s + k] = obs[i, s : s + k]
            rows_out.append(i)
            inp_out.append(np.where(hidden, np.nan, ndvi[i]))
            hid_out.append(hidden)
    if not rows_out:
        return np.zeros(0, int), np.zeros((0, t), np.float32), np.zeros((0, t), bool)
    return (np.array(rows_out), np.array(inp_out, dtype=np.float32), np.array(hid_out))


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    sst = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1 - np.sum(err**2) / sst) if sst > 0 else float("nan"),
        "n": int(truth.size),
    }


def _select_plots(plots: np.ndarray, card: dict[str, Any]) -> tuple[np.ndarray, str]:
    split = card.get("training", {}).get("split", {}).get("s1s2_plots", {})
    known = set(split.get("train", [])) | set(split.get("calib", [])) | set(split.get("eval", []))
    uniq = set(plots.tolist())
    if split and uniq & set(split.get("train", [])) and uniq <= known:
        return np.isin(plots, split["eval"]), "held-out plots of the model card"
    return np.ones(len(plots), dtype=bool), "all plots (folder not used in training)"


#: The classic fillers every evaluation scores beside SF.
CLASSIC: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": baselines.linear,
    "akima": baselines.akima,
    "quadratic": baselines.quadratic,
    "whittaker": baselines.whittaker,
}


def score_buckets(
    series: PlotSeries,
    sf: SFModel,
    seed: int = 0,
    repeats: int = 10,
    use_s1: bool = True,
    route: tuple[np.ndarray, list[SFModel]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hide windows per gap bucket (protocol steps 3-4) and score SF and the classics.

    Args:
        series: season series to score (April-October).
        sf: the model.
        seed: seed of the gap placement (the same placement for every method).
        repeats: windows per series and bucket.
        use_s1: ``False`` scores SF with Sentinel-1 withheld (NDVI and dates only).
        route: ``(group, models)``: the copies of series ``i`` are filled by
            ``models[group[i]]`` instead of ``sf`` (cross-fitting: each group's model
            never saw its series). The gap placement is the same as without it.

    Returns:
        ``(summary, samples)``: per bucket the scores of every method (MAE, RMSE, R²,
        n; SF also its 90 % coverage), the best classic and SF's MAE reduction against
        it; and the filled windows behind them (for plots).
    """
    rng = np.random.default_rng(seed)
    doy = series.doy(STEP_DAYS)
    summary: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    for name, (lo, hi) in BUCKETS.items():
        rows, inp, hidden = make_gaps(series.ndvi, lo, hi, repeats, rng)
        truth = series.ndvi[rows][hidden]
        res: dict[str, Any] = {}
        vv, vh = series.vv[rows], series.vh[rows]
        if not use_s1:
            vv, vh = np.full_like(vv, np.nan), np.full_like(vh, np.nan)
        if route is None:
            mean, std = sf.predict(inp, vv, vh, doy=doy[rows])
        else:
            mean = np.full(inp.shape, np.nan, np.float32)
            std = np.full(inp.shape, np.nan, np.float32)
            for k, model_k in enumerate(route[1]):
                sel = route[0][rows] == k
                if sel.any():
                    mean[sel], std[sel] = model_k.predict(inp[sel], vv[sel], vh[sel],
                                                          doy=doy[rows][sel])
        res["sf"] = _scores(mean[hidden], truth)
        res["sf"]["coverage90"] = float(
            np.mean(np.abs(mean[hidden] - truth) <= Z90 * std[hidden])
        )
        preds = {"sf": mean}
        for mname, fn in CLASSIC.items():
            preds[mname] = fn(inp)
            res[mname] = _scores(preds[mname][hidden], truth)
        classic = min(CLASSIC, key=lambda m: res[m]["mae"])
        res["best_classic"] = classic
        res["sf_mae_reduction_vs_best_classic"] = 1 - res["sf"]["mae"] / res[classic]["mae"]
        summary[name] = res
        samples[name] = (rows, inp, hidden, preds, std)
        log.info("%s: SF MAE %.4f, best classic %s %.4f", name, res["sf"]["mae"], classic,
                 res[classic]["mae"])
    return summary, samples


def run_evaluation(
    data_dir: Path,
    out_dir: Path,
    model_path: Path | None = None,
    seed: int = 0,
    repeats: int = 10,
    adapt_steps: int | None = None,
) -> dict[str, Any]:
    """Score SF against the classic fillers on artificial gaps; write the report.

    Args:
        data_dir: folder with ``train/S1`` and ``train/S2`` plot tables.
        out_dir: report folder (created).
        model_path: SF weights; ``None`` = shipped weights.
        seed: seed of the gap placement.
        repeats: windows per series and bucket.
        adapt_steps: fine-tuning steps of the adapted SF (``fill-table``'s default,
            :mod:`model.adapt`), scored cross-fitted by plot halves (``model.cv.
            cross_fit``); ``None`` = that default, 0 = not scored.

    Returns:
        The metrics dictionary written to ``metrics.json``.
    """
    from model import load_model
    from model.adapt import STEPS
    from model.data import read_plot_series

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sf = load_model(model_path)
    try:
        series = read_plot_series(Path(data_dir), months=(4, 10), epoch=EPOCH)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"--data {data_dir}: {exc}; expected train/S2/*.csv and "
                         "train/S1/*.csv plot tables") from exc
    if len(series.plot) == 0:
        raise InputError(f"--data {data_dir}: no clear Sentinel-2 observations found")
    keep, why = _select_plots(series.plot, sf.card)
    series = series.take(keep)
    if len(series.plot) == 0:
        raise InputError(f"--data {data_dir}: every plot there was used to train the model; "
                         "pass a folder with other plots")
    log.info("evaluating on %d plot-years (%s)", len(series.plot), why)
    summary, samples = score_buckets(series, sf, seed=seed, repeats=repeats)
    adapted: dict[str, Any] = {}
    steps = STEPS if adapt_steps is None else adapt_steps
    if steps > 0:
        from model.cv import cross_fit

        route, reports = cross_fit(series, sf, seed, steps, use_s1=None)
        adapted_summary, _ = score_buckets(series, sf, seed=seed, repeats=repeats, route=route)
        adapted = {"summary": adapted_summary, "adaptation": reports}
    result = {
        "summary": summary,
        **({"adapted": adapted} if adapted else {}),
        "data": str(data_dir),
        "plots": why,
        "n_plot_years": len(series.plot),
        "plot_ids": sorted(set(series.plot.tolist())),
        "seed": seed,
        "repeats": repeats,
        "buckets_dates": BUCKETS,
        "model_version": sf.card.get("version"),
        "step_days": STEP_DAYS,
    }
    _write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    _write_text(out_dir / "report.md", _markdown(result))
    _plot_samples(out_dir / "samples.png", series.ndvi, samples, series.start)
    return result


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def _markdown(result: dict[str, Any]) -> str:
    names = ["sf", "linear", "akima", "quadratic", "whittaker"]
    lines = [
        "# SF gap-filling evaluation",
        "",
        f"Data: `{result['data']}`, {result['plots']}, {result['n_plot_years']} plot-years, "
        f"seed {result['seed']}, {result['repeats']} windows per series and bucket.",
        "",
        "| gap | hidden obs | " + " | ".join(f"{m} MAE" for m in names)
        + " | SF RMSE | best classic RMSE | SF R² | best classic R² | SF vs best classic MAE"
        " | SF 90% coverage |",
        "|---" * (len(names) + 8) + "|",
    ]
    for b, r in result["summary"].items():
        best = r["best_classic"]
        lines.append(
            f"| {b} | {r['sf']['n']} | "
            + " | ".join(f"{r[m]['mae']:.4f}" for m in names)
            + f" | {r['sf']['rmse']:.4f} | {r[best]['rmse']:.4f} ({best})"
            f" | {r['sf']['r2']:.3f} | {r[best]['r2']:.3f}"
            f" | {-100 * r['sf_mae_reduction_vs_best_classic']:+.1f}%"
            f" | {100 * r['sf']['coverage90']:.1f}% |"
        )
    adapted = result.get("adapted")
    if adapted:
        lines += ["", "SF adapted as `fill-table` adapts it (model/adapt.py), scored without "
                  "leaking: each half of the plots filled by the network adapted on the other "
                  "half; the gaps are the same as above.", "",
                  "| gap | SF adapted MAE | SF adapted vs best classic MAE | 90% coverage |",
                  "|---|---|---|---|"]
        for b, r in adapted["summary"].items():
            lines.append(f"| {b} | {r['sf']['mae']:.4f} "
                         f"| {-100 * r['sf_mae_reduction_vs_best_classic']:+.1f}% "
                         f"| {100 * r['sf']['coverage90']:.1f}% |")
        lines += [""] + [f"- half {a['fills_half']}: {a['reason']}" for a in
                         adapted["adaptation"]]
    return "\n".join(lines) + "\n"


def _plot_samples(
    path: Path, ndvi: np.ndarray, samples: dict[str, Any], starts: np.ndarray
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, axes = plt.subplots(len(names), 2, figsize=(13, 3.0 * len(names)), squeeze=False)
    colours = {"linear": "tab:orange", "akima": "tab:green", "quadratic": "tab:purple",
               "whittaker": "tab:brown"}
    for r, name in enumerate(names):
        rows, inp, hidden, preds, std = samples[name]
        for c in range(2):
            ax = axes[r, c]
            if len(rows) <= c:
                ax.set_axis_off()
                continue
            j = (c * 7919) % len(rows)
            t = np.arange(ndvi.shape[1]) * STEP_DAYS
            m, s = preds["sf"][j], std[j]
            ax.fill_between(t, m - Z90 * s, m + Z90 * s, color="tab:blue", alpha=0.2,
                            label="SF 90% interval")
            for mname, col in colours.items():
                ax.plot(t, preds[mname][j], color=col, lw=1, label=mname)
            ax.plot(t, m, color="tab:blue", lw=2, label="SF")
            ax.plot(t, inp[j], "ko", ms=4, label="observed")
            hid = hidden[j]
            ax.plot(t[hid], ndvi[rows[j]][hid], "rx", ms=8, mew=2, label="hidden truth")
            ax.set_title(f"{name} gap, series starting {starts[rows[j]]}", fontsize=9)
            ax.set_ylim(-0.1, 1.0)
            ax.set_xlabel("days since season start")
            ax.set_ylabel("NDVI")
    axes[0, 0].legend(fontsize=7, ncol=4, loc="lower center")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
