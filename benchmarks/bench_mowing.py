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
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd

# Run as a script from anywhere: make the repository root importable first (the
# editable install otherwise resolves `model` as a namespace package here).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import baselines
from pipeline.mowing import METHODS, Score, match_events
from pipeline.mowing.detect import PRIOR, DetectParams, default_params
from pipeline.mowing.series import detect_on_grid, grid_axes
from pipeline.timegrid import EPOCH, TimeGrid

Spans = list[tuple[float, float]]
Key = tuple[str, int]

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


def _day(ts: pd.Series | pd.Timestamp) -> np.ndarray:
    return np.asarray((pd.to_datetime(ts) - pd.Timestamp(EPOCH)) / pd.Timedelta(days=1))


def load_tables(files: list[Path], plot_col: str) -> pd.DataFrame:
    """Clear acquisitions of S2 tables: columns plot, date, ndvi."""
    if not files:
        raise SystemExit("no S2 tables (*.csv) found")
    parts = [pd.read_csv(f, usecols=[plot_col, "Date", "ndvi", "mask"]) for f in files]
    d = pd.concat(parts, ignore_index=True)
    d = d[(d["mask"] == 1) & (d["ndvi"] >= -1) & (d["ndvi"] <= 1)]
    return pd.DataFrame({"plot": d[plot_col].astype(str), "date": pd.to_datetime(d["Date"]),
                         "ndvi": d["ndvi"].astype(float)})


def year_grid(year: int) -> TimeGrid:
    """The 6-day bins (epoch-anchored) covering 1 March .. 30 November of a year."""
    return TimeGrid.covering(f"{year}-03-01", f"{year}-11-30")


def bin_parcel_years(s2: pd.DataFrame) -> tuple[list[Key], np.ndarray]:
    """(plot, year) keys and their NDVI on a common-length 6-day grid (1 March .. 30 Nov).

    Each year is on its own grid; row ``i`` holds bins ``0..T-1`` of its year's grid
    (NaN beyond that year's bin count).
    """
    s2 = s2.assign(year=s2["date"].dt.year)
    keys = sorted({(p, int(y)) for p, y in zip(s2["plot"], s2["year"], strict=True)})
    grids = {y: year_grid(y) for _, y in keys}
    t = max(g.count for g in grids.values())
    ndvi = np.full((len(keys), t), np.nan, np.float32)
    row = {k: i for i, k in enumerate(keys)}
    for key, g in s2.groupby(["plot", "year"]):
        p, y = cast(tuple[str, int], key)
        b = grids[int(y)].bin_index(g["date"].to_numpy())
        ok = b >= 0
        m = pd.Series(g["ndvi"].to_numpy()[ok]).groupby(b[ok]).mean()
        ndvi[row[(str(p), int(y))], m.index.to_numpy()] = m.to_numpy()
    return keys, ndvi


@dataclass
class Split:
    """Parcel-years of one split: binned NDVI, reference cuts and grazing spans."""

    name: str
    keys: list[Key]
    ndvi: np.ndarray
    truth: dict[Key, list[float]]
    grazing: dict[Key, Spans] = field(default_factory=dict)

    def describe(self) -> str:
        n_ev = sum(len(self.truth.get(k, [])) for k in self.keys)
        return (f"{self.name}: {len(self.keys)} parcel-years, {n_ev} mowing events, "
                f"{np.isfinite(self.ndvi).mean():.0%} of 6-day bins observed")


def events_of(gdf: gpd.GeoDataFrame, plot_col: str) -> tuple[dict, dict]:
    """Cut dates (type k) and grazing spans (type p) per (plot, year), in days."""
    gdf = gdf.assign(year=pd.to_datetime(gdf["date"]).dt.year)
    truth: dict[Key, list[float]] = {}
    grazing: dict[Key, Spans] = {}
    for (p, y), g in gdf[gdf["type"] == "k"].groupby([plot_col, "year"]):
        truth[(str(p), int(y))] = sorted(_day(g["date"]).tolist())
    if "endDate" in gdf.columns:
        for (p, y), g in gdf[gdf["type"] == "p"].groupby([plot_col, "year"]):
            end = g["endDate"].fillna(g["date"])
            grazing[(str(p), int(y))] = list(zip(_day(g["date"]), _day(end), strict=True))
    return truth, grazing


def load_train(folder: Path) -> Split:
    """``DATA/train``: labelled plot-years only (type k that year, or a plot marked n)."""
    keys, ndvi = bin_parcel_years(load_tables(sorted((folder / "S2").glob("*.csv")), "PLOTID"))
    gdf = gpd.read_file(folder / "mowing_events.gpkg")
    truth, _ = events_of(gdf, "PLOTID")
    unmown = set(gdf.loc[gdf["type"] == "n", "PLOTID"].astype(str))
    rows = [i for i, k in enumerate(keys) if k in truth or k[0] in unmown]
    return Split("train", [keys[i] for i in rows], ndvi[rows], truth)


def load_test(folder: Path) -> Split:
    """``DATA/test``: every camera parcel-year of ``SK_poly``."""
    keys, ndvi = bin_parcel_years(load_tables(sorted((folder / "SK_poly").glob("*.csv")),
                                              "plotID"))
    truth, grazing = events_of(gpd.read_file(folder / "SK_long.gpkg"), "plotID")
    return Split("test", keys, ndvi, truth, grazing)


def doy_rows(keys: list[Key], t: int) -> np.ndarray:
    """``(N, t)`` day of year of each row's 6-day bin centres (NaN past its year's bins)."""
    out = np.full((len(keys), t), np.nan, np.float32)
    for year in sorted({y for _, y in keys}):
        _, doy = grid_axes(year_grid(year))
        rows = [i for i, (_, y) in enumerate(keys) if y == year]
        out[np.ix_(rows, range(len(doy)))] = doy[:t]
    return out


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
    """Whether the SF weights were trained on any test series (their model card's split)."""
    if sf is None:
        return "SF: no weights"
    seen = set(sf.card.get("training", {}).get("split", {}).get("s2_only_plots", {})
               .get("train", []))
    parcels = {p for p, _ in test.keys}
    n = len(parcels & seen)
    if n == 0:
        return ("SF never saw a test parcel's series in training (self-supervised or "
                "otherwise): the test is held out for the filler too")
    return (f"SF was trained (self-supervised, without mowing labels) on the NDVI series of "
            f"{n} of the {len(parcels)} test parcels")


def row_counts(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
               params: DetectParams, tolerance: float) -> np.ndarray:
    """``(N, 3)`` tp, fp, fn per parcel-year: detect per row on its year's grid, match."""
    out = np.zeros((len(split.keys), 3), np.int64)
    for year in sorted({y for _, y in split.keys}):
        rows = [i for i, (_, y) in enumerate(split.keys) if y == year]
        grid = year_grid(year)
        s = None if std is None else std[rows, : grid.count]
        cuts = detect_on_grid(series[rows, : grid.count], s, grid, method, params)
        for i, c in zip(rows, cuts, strict=True):
            k = split.keys[i]
            m = match_events(c, split.truth.get(k, []), tolerance, split.grazing.get(k, []))
            out[i] = (m.tp, m.fp, m.fn)
    return out


def score_split(split: Split, series: np.ndarray, std: np.ndarray | None, method: str,
                params: DetectParams, tolerance: float) -> Score:
    """Summed matching scores over the parcel-years of ``split``."""
    tp, fp, fn = (int(v) for v in row_counts(split, series, std, method, params,
                                             tolerance).sum(axis=0))
    return Score(tp, fp, fn)


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
    args = ap.parse_args()
    data = args.data or args.data_opt
    if data is None:
        ap.error("pass the data folder (DATA or --data DATA)")
    t0 = time.perf_counter()
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
