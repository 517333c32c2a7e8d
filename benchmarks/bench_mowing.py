"""Mowing detection benchmark: each detector on raw and on gap-filled series, P/R/F1.

    python benchmarks/bench_mowing.py --data ../shared/data/slovak-grassland \
        [--demo-out OUT --demo-archive ARCHIVE] [--tolerance 12] [--markdown FILE]

``--data`` is a folder of the slovak-grassland layout:

* ``test/SK_poly/*.csv`` (S2 per parcel-year: ``plotID``, ``Date``, ``ndvi``, ``mask``)
  with ``test/SK_long.gpkg`` (camera events: ``plotID``, ``type`` k = mowing,
  p = grazing, ``date``, ``endDate``), and if present
* ``train/S2/*.csv`` (``PLOTID``, ``Date``, ``ndvi``, ``mask``) with
  ``train/mowing_events.gpkg`` (``PLOTID``, ``type``, ``date``).

Per parcel-year, clear acquisitions (``mask == 1``, ndvi not -9999) are binned
onto the 6-day grid from 1 March to 30 November. "raw" runs the detector on
the binned observations only; "linear" and "sf" on the series filled by
linear interpolation and by the SF model (S2 only here: these tables carry no
S1). Reference events are the mowing events (type k) of that parcel and year.
Grazing (type p) is not a cut to be found; a detection that matches no cut but
falls within a grazing period (date..endDate widened by the tolerance) is left
out of the counts rather than called a false positive. Matching is one to one,
closest pairs first, within ``--tolerance`` days.

With ``--demo-out`` (the ``--out`` of a demo run) and ``--demo-archive`` (the
demo archive with ``truth/parcels.geojson``), the same on the demo world: each
mown-grassland or pasture parcel's mean series over its pixels in the cube
(raw: mean of the clear pixels of a bin, kept where at least half the parcel
is clear; filled: the run's ``ndvi_filled``/``ndvi_std``, and a linear fill of
the raw parcel series), against the parcels' ``mowing_dates``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

# Run as a script from anywhere: make the repository root importable first (the
# editable install otherwise resolves `model` as a namespace package here).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import baselines
from pipeline.mowing import METHODS, Score, match_events
from pipeline.mowing.detect import DetectParams
from pipeline.mowing.series import detect_on_grid
from pipeline.timegrid import EPOCH, TimeGrid

Spans = list[tuple[float, float]]


def _day(ts: pd.Series | pd.Timestamp) -> np.ndarray:
    return np.asarray((pd.to_datetime(ts) - pd.Timestamp(EPOCH)) / pd.Timedelta(days=1))


def load_tables(files: list[Path], plot_col: str) -> pd.DataFrame:
    """Clear acquisitions of S2 tables: columns plot, date, ndvi."""
    parts = [pd.read_csv(f, usecols=[plot_col, "Date", "ndvi", "mask"]) for f in files]
    d = pd.concat(parts, ignore_index=True)
    d = d[(d["mask"] == 1) & (d["ndvi"] > -1) & (d["ndvi"] <= 1)]
    return pd.DataFrame({"plot": d[plot_col].astype(str), "date": pd.to_datetime(d["Date"]),
                         "ndvi": d["ndvi"].astype(float)})


def bin_parcel_years(s2: pd.DataFrame) -> tuple[list[tuple[str, int]], np.ndarray, TimeGrid]:
    """(plot, year) keys and their NDVI on a common-length 6-day grid (1 March .. 30 Nov).

    Each year is shifted onto its own grid; rows hold bins 0..T-1 of their year.
    """
    s2 = s2.assign(year=s2["date"].dt.year)
    keys = sorted({(p, int(y)) for p, y in zip(s2["plot"], s2["year"], strict=True)})
    grids = {y: TimeGrid.covering(f"{y}-03-01", f"{y}-11-30") for _, y in keys}
    t = max(g.count for g in grids.values())
    ndvi = np.full((len(keys), t), np.nan, np.float32)
    row = {k: i for i, k in enumerate(keys)}
    for (p, y), g in s2.groupby(["plot", "year"]):
        b = grids[int(y)].bin_index(g["date"].to_numpy())
        ok = b >= 0
        m = pd.Series(g["ndvi"].to_numpy()[ok]).groupby(b[ok]).mean()
        ndvi[row[(str(p), int(y))], m.index.to_numpy()] = m.to_numpy()
    return keys, ndvi, next(iter(grids.values()))


def score_rows(
    keys: list[tuple[str, int]],
    series: np.ndarray,
    std: np.ndarray | None,
    truth: dict[tuple[str, int], list[float]],
    grazing: dict[tuple[str, int], Spans],
    method: str,
    tolerance: float,
    params: DetectParams | None = None,
) -> Score:
    """Detect per row on its year's grid and sum the matching scores."""
    total = Score(0, 0, 0)
    years = sorted({y for _, y in keys})
    for year in years:
        rows = [i for i, (_, y) in enumerate(keys) if y == year]
        grid = TimeGrid.covering(f"{year}-03-01", f"{year}-11-30")
        s = None if std is None else std[rows, : grid.count]
        cuts = detect_on_grid(series[rows, : grid.count], s, grid, method, params)
        for i, c in zip(rows, cuts, strict=True):
            total = total + match_events(c, truth.get(keys[i], []), tolerance,
                                         grazing.get(keys[i], []))
    return total


def fill_all(ndvi: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Raw, linear and (if its weights load) SF series for ``(N, T)`` NDVI without S1."""
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "raw": (ndvi, None), "linear": (baselines.linear(ndvi), None)}
    try:
        import model

        nan = np.full((*ndvi.shape, 2), np.nan, np.float32)
        m, s = model.load_model(None).predict(ndvi, nan, nan)
        out["sf"] = (m, s)
    except Exception as exc:  # the model may be missing or unfinished: say so, go on
        print(f"SF fill unavailable: {type(exc).__name__}: {exc}")
    return out


def events_of(gdf: gpd.GeoDataFrame, plot_col: str) -> tuple[dict, dict]:
    """Cut dates (type k) and grazing spans (type p) per (plot, year), in days."""
    gdf = gdf.assign(year=pd.to_datetime(gdf["date"]).dt.year)
    truth: dict[tuple[str, int], list[float]] = {}
    grazing: dict[tuple[str, int], Spans] = {}
    for (p, y), g in gdf[gdf["type"] == "k"].groupby([plot_col, "year"]):
        truth[(str(p), int(y))] = sorted(_day(g["date"]).tolist())
    if "endDate" in gdf.columns:
        for (p, y), g in gdf[gdf["type"] == "p"].groupby([plot_col, "year"]):
            end = g["endDate"].fillna(g["date"])
            grazing[(str(p), int(y))] = list(zip(_day(g["date"]), _day(end), strict=True))
    return truth, grazing


def bench_tables(files: list[Path], events: Path, plot_col: str, ev_col: str,
                 tolerance: float) -> list[dict]:
    s2 = load_tables(files, plot_col)
    keys, ndvi, _ = bin_parcel_years(s2)
    truth, grazing = events_of(gpd.read_file(events), ev_col)
    rows = []
    for name, (series, std) in fill_all(ndvi).items():
        for method in METHODS:
            s = score_rows(keys, series, std, truth, grazing, method, tolerance)
            rows.append({"series": name, "method": method, "tp": s.tp, "fp": s.fp, "fn": s.fn,
                         "precision": s.precision, "recall": s.recall, "f1": s.f1})
    n_ev = sum(len(truth.get(k, [])) for k in keys)
    print(f"  {len(keys)} parcel-years, {n_ev} mowing events, "
          f"{np.isfinite(ndvi).mean():.0%} of 6-day bins observed")
    return rows


def bench_demo(out: Path, archive: Path, tolerance: float) -> list[dict]:
    import rasterio.features
    from odc.geo.xr import ODCExtensionDs  # noqa: F401  (registers .odc)

    from pipeline.mowing.raster import cube_grid, open_filled_cube

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
            raw.append(np.where(clear >= 0.5, np.nanmean(raw_px[:, sel], axis=1), np.nan))
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
            cuts = detect_on_grid(y, s, grid, method)
            for k, c in zip(keys, cuts, strict=True):
                total = total + match_events(c, truth[k], tolerance)
            rows.append({"series": name, "method": method, "tp": total.tp, "fp": total.fp,
                         "fn": total.fn, "precision": total.precision, "recall": total.recall,
                         "f1": total.f1})
    n_ev = sum(len(v) for v in truth.values())
    print(f"  {len(keys)} grassland parcels (mown + pasture), {n_ev} cuts, "
          f"{np.isfinite(raw_a).mean():.0%} of parcel bins observed")
    return rows


def to_markdown(title: str, rows: list[dict]) -> str:
    lines = [f"### {title}", "", "| detector | series | P | R | F1 | TP | FP | FN |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["method"], r["series"])):
        lines.append(f"| {r['method']} | {r['series']} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['f1']:.3f} | {r['tp']} | {r['fp']} | {r['fn']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="slovak-grassland layout folder")
    ap.add_argument("--demo-out", type=Path, help="--out folder of a finished demo run")
    ap.add_argument("--demo-archive", type=Path, help="demo archive folder (with truth/)")
    ap.add_argument("--tolerance", type=float, default=12.0, help="match window, days")
    ap.add_argument("--markdown", type=Path, help="also write the tables here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    md = [f"Mowing detection, events matched within ±{args.tolerance:g} days.\n"]
    test = args.data / "test"
    if (test / "SK_long.gpkg").exists():
        print("camera parcels (test/SK_poly, test/SK_long.gpkg):")
        rows = bench_tables(sorted((test / "SK_poly").glob("*.csv")), test / "SK_long.gpkg",
                            "plotID", "plotID", args.tolerance)
        md.append(to_markdown("Slovak camera parcels (test)", rows))
    train = args.data / "train"
    if (train / "mowing_events.gpkg").exists():
        print("reference plots (train/S2, train/mowing_events.gpkg):")
        rows = bench_tables(sorted((train / "S2").glob("*.csv")), train / "mowing_events.gpkg",
                            "PLOTID", "PLOTID", args.tolerance)
        md.append(to_markdown("Slovak reference plots (train; SF was trained on these series)",
                              rows))
    if args.demo_out and args.demo_archive:
        print("demo world:")
        md.append(to_markdown("Demo world", bench_demo(args.demo_out, args.demo_archive,
                                                       args.tolerance)))
    text = "\n".join(md)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
