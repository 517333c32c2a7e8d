"""Mowing detection: detectors on known series, scoring, `mowing` and `mowing-table` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from shapely.geometry import Point, box

from pipeline.__main__ import main
from pipeline.mowing import DEFAULTS, METHODS, DetectParams, detect, match_events
from pipeline.mowing.detect import PRIOR, RAW_DEFAULTS, detect_series
from pipeline.mowing.series import bin_series, grid_axes, mowing_table, read_acquisitions
from pipeline.timegrid import TimeGrid

GRID = TimeGrid.covering("2023-04-01", "2023-10-31")
DAYS, DOY = grid_axes(GRID)


def _season(cut_bins: list[int], drop: float = 0.35) -> np.ndarray:
    """A grass season on the grid: green-up, plateau, cuts with 4-week regrowth."""
    t = np.arange(GRID.count, dtype=float)
    y = 0.3 + 0.5 / (1 + np.exp(-(t - 6) / 1.5))
    for b in cut_bins:
        after = t >= b
        y[after] -= drop * np.exp(-(t[after] - b) / 4.0)
    return y


def test_drop_detectors_find_cuts_on_a_clean_series() -> None:
    y = _season([12, 22])[None, :]
    for method in ("drop", "zdrop"):
        cuts = detect(y, None, DAYS, DOY, method)[0]
        found = cuts[np.isfinite(cuts)]
        assert len(found) == 2
        # dated between the last high and the first low bin, plus the offset
        off = DEFAULTS[method].date_offset
        assert np.allclose(found, [(DAYS[11] + DAYS[12]) / 2 + off,
                                   (DAYS[21] + DAYS[22]) / 2 + off])


def test_no_cut_on_smooth_season_or_a_single_cloud_spike() -> None:
    y = _season([])
    assert np.isnan(detect(y[None], None, DAYS, DOY, "drop")).all()
    spiky = y.copy()
    spiky[15] -= 0.3  # one hazy observation between two clear ones
    assert np.isnan(detect(spiky[None], None, DAYS, DOY, "drop")).all()


def test_zdrop_needs_a_larger_drop_where_the_fill_is_uncertain() -> None:
    y = _season([14], drop=0.2)[None, :]
    sure = np.full_like(y, 0.01)
    unsure = np.full_like(y, 0.12)
    p = DetectParams(z=2.5)
    assert np.isfinite(detect(y, sure, DAYS, DOY, "zdrop", p)).sum() == 1
    assert np.isfinite(detect(y, unsure, DAYS, DOY, "zdrop", p)).sum() == 0
    assert np.isfinite(detect(y, unsure, DAYS, DOY, "drop", p)).sum() == 1


def _one_by_one(ndvi: np.ndarray, std: np.ndarray | None, method: str, p: DetectParams,
                max_events: int) -> np.ndarray:
    """:func:`detect_series` row by row: the definition the batched detector must match."""
    sd = np.zeros_like(ndvi) if std is None else np.nan_to_num(std)
    out = np.full((len(ndvi), max_events), np.nan)
    for r, row in enumerate(ndvi):
        ok = np.isfinite(row)
        if ok.sum() >= 3:
            cuts = detect_series(DAYS[ok], row[ok], sd[r, ok], DOY[ok], method, p)[:max_events]
            out[r, :len(cuts)] = cuts
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_detector_equals_the_series_definition(seed: int) -> None:
    """Every row's cuts, bit for bit, on seasons with cuts, slow declines, spikes, ties
    (rounded NDVI), gaps and unknown std, for every threshold set and both detectors."""
    rng = np.random.default_rng(seed)
    n, t = 600, GRID.count
    cuts = [sorted(rng.choice(np.arange(4, t), rng.integers(0, 5), replace=False))
            for _ in range(n)]
    y = np.stack([_season(c, drop=rng.uniform(0.05, 0.45)) for c in cuts])
    y += rng.normal(0, 0.03, y.shape)
    y[rng.random(y.shape) < 0.05] -= 0.3  # residual clouds
    y[: n // 3] = np.round(y[: n // 3], 1)  # equal steps and equal values
    y[n // 2 :, 15:] -= np.linspace(0, 0.3, t - 15)  # slow declines
    y[rng.random(y.shape) < rng.uniform(0, 0.8, (n, 1))] = np.nan  # clouds
    std = np.abs(rng.normal(0, 0.06, y.shape))
    std[rng.random(y.shape) < 0.1] = np.nan
    for method in METHODS:
        for p in (DEFAULTS[method], RAW_DEFAULTS[method], PRIOR,
                  PRIOR.with_(regrow=0.5, regrow_days=30.0, max_fall_days=12.0)):
            for sd in (std, None):
                for most in (6, 2):
                    want = _one_by_one(y, sd, method, p, most)
                    got = detect(y, sd, DAYS, DOY, method, p, most)
                    assert np.array_equal(got, want, equal_nan=True), (method, p, most)
                    assert np.isfinite(want).sum() > n // 10  # the rows do have cuts


def test_default_thresholds_are_per_detector_and_used_when_none_given() -> None:
    assert set(DEFAULTS) == set(METHODS)
    y = _season([14], drop=0.2)[None, :]
    unsure = np.full_like(y, 0.12)
    for method, p in DEFAULTS.items():
        same = detect(y, unsure, DAYS, DOY, method, p)
        assert np.array_equal(detect(y, unsure, DAYS, DOY, method), same, equal_nan=True)


def test_raw_series_with_gaps_and_season_window() -> None:
    y = _season([14])
    raw = y.copy()
    raw[[3, 4, 9, 13, 15, 16, 20]] = np.nan
    cuts = detect(raw[None], None, DAYS, DOY, "drop")[0]
    mid = (DAYS[12] + DAYS[14]) / 2 + DEFAULTS["drop"].date_offset
    assert np.isfinite(cuts).sum() == 1 and abs(cuts[0] - mid) < 1e-9
    late = DetectParams(season=(1, 100))
    assert np.isnan(detect(y[None], None, DAYS, DOY, "drop", late)).all()


def test_match_events_one_to_one_with_tolerance_and_ignored_spans() -> None:
    s = match_events([100, 104, 170, 300], [101, 150], tolerance=12)
    assert (s.tp, s.fp, s.fn) == (1, 3, 1)
    s = match_events([100, 300], [101], tolerance=12, ignore=[(290, 295)])
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    assert s.f1 == 1.0


def _table(tmp_path: Path, with_s1: bool) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    y = _season([12, 22])
    for sid in ("a", "b"):
        for k, start in enumerate(GRID.starts):
            for off in (1, 4):  # two acquisitions per bin, some cloudy
                d = start + pd.Timedelta(days=off)
                v = "" if rng.random() < 0.3 else f"{y[k] + rng.normal(0, 0.01):.4f}"
                row = {"id": sid, "date": d.strftime("%Y-%m-%d"), "ndvi": v}
                if with_s1:
                    row |= {"vv": f"{-11 + rng.normal(0, 1):.2f}",
                            "vh": f"{-18 + rng.normal(0, 1):.2f}"}
                rows.append(row)
    path = tmp_path / ("in_s1.csv" if with_s1 else "in.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("with_s1", [False, True])
@pytest.mark.parametrize("method", ["linear", "sf", "raw"])
def test_mowing_table_end_to_end(tmp_path: Path, with_s1: bool, method: str) -> None:
    out = tmp_path / "out.csv"
    code = main(["mowing-table", "-q", "--input", str(_table(tmp_path, with_s1)), "--output",
                 str(out), "--method", method, "--detector", "drop"])
    assert code == 0
    ev = pd.read_csv(out)
    assert list(ev.columns) == ["id", "event_date"]
    truth = [GRID.starts[12], GRID.starts[22]]
    for sid in ("a", "b"):
        got = pd.to_datetime(ev.loc[ev["id"] == sid, "event_date"])
        assert len(got) == 2
        assert all(abs((g - t).days) <= 12 for g, t in zip(sorted(got), truth, strict=True))


def test_mowing_table_hands_bin_dates_to_the_filler(tmp_path: Path) -> None:
    """A filler that takes dates gets each 6-day bin's day of year (centre), as in a run."""
    from pipeline.fill import LinearFiller

    seen: list[np.ndarray] = []

    class Recording(LinearFiller):
        def fill(self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray,
                 doy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
            assert doy is not None
            seen.append(doy)
            return super().fill(ndvi, vv, vh)

    mowing_table(_table(tmp_path, False), tmp_path / "o.csv", Recording(), "drop")
    (grid, *_), = bin_series(read_acquisitions(_table(tmp_path, False)))
    want = (grid.starts + pd.Timedelta(days=3)).day_of_year.to_numpy()
    np.testing.assert_array_equal(seen[0], want)


def test_binning_averages_a_bin_and_reads_optional_s1(tmp_path: Path) -> None:
    df = read_acquisitions(_table(tmp_path, True))
    (grid, ids, ndvi, vv, _vh), = bin_series(df)
    assert ids == ["a", "b"] and ndvi.shape == (2, grid.count) and vv.shape == (2, grid.count, 2)
    assert np.isnan(vv[..., 1]).all() and np.isfinite(vv[..., 0]).all()


@pytest.mark.parametrize("detector", ["learned", "drop"])
def test_mowing_table_of_sentinel1_alone_runs_and_says_why_it_finds_no_cuts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, detector: str) -> None:
    src = pd.read_csv(_table(tmp_path, True), dtype=str).drop(columns="ndvi")
    src.to_csv(tmp_path / "s1.csv", index=False)
    out = tmp_path / "out.csv"
    with caplog.at_level("WARNING"):
        assert main(["mowing-table", "--input", str(tmp_path / "s1.csv"), "--output",
                     str(out), "--detector", detector]) == 0
    assert pd.read_csv(out).empty
    assert any("no ndvi column" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("content", "needle"),
    [("id,date\na,2023-05-01\n", "missing column(s) ndvi"),
     ("id,date,ndvi\na,yesterday,0.5\n", "use ISO dates"),
     ("id,date,ndvi\na,2023-05-01,5000\n", "outside [-1, 1]")],
)
def test_mowing_table_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        content: str, needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert main(["mowing-table", "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "--input" in err


@pytest.fixture(scope="module")
def parcels(demo_run: Path, demo_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo-world parcels overlapping the demo run, as GeoJSON (EPSG:4326)."""
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        frame = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(4326).iloc[0]
    gdf = gpd.read_file(demo_archive / "truth" / "parcels.geojson")
    gdf = gdf[gdf.intersects(frame)][["parcel_id", "landcover", "geometry"]]
    path = tmp_path_factory.mktemp("parcels") / "parcels.geojson"
    gdf.to_file(path, driver="GeoJSON")
    return path


def test_mowing_on_the_demo_cube_writes_rasters_and_parcel_events(
    demo_run: Path, parcels: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mow"
    assert main(["mowing", "-q", "--cube", str(demo_run), "--out", str(out), "--parcels",
                 str(parcels), "--detector", "drop"]) == 0
    with rasterio.open(out / "mowing_count.tif") as cnt, \
            rasterio.open(out / "mowing_dates.tif") as dts, \
            rasterio.open(demo_run / "ndvi_filled.tif") as ref:
        assert cnt.crs == ref.crs and cnt.transform == ref.transform
        count = cnt.read(1)
        dates = dts.read()
        assert dts.count >= 1 and dts.descriptions[0] == "cut 1"
    inside = count != 255
    assert inside.any()
    assert ((dates > 0).sum(axis=0)[inside] == count[inside]).all()
    valid = dates[dates > 0]
    assert ((valid // 10000 == 2023) & (valid % 10000 // 100 >= 4)).all()
    table = pd.read_csv(out / "mowing_parcels.csv")
    assert {"parcel_id", "n_pixels", "n_events", "event_dates"} <= set(table.columns)
    assert (table["n_pixels"] > 0).any()
    layer = gpd.read_file(out / "mowing_events.gpkg")
    assert len(layer) == int(table["n_events"].sum())
    assert {"parcel_id", "event_date", "pixel_share"} <= set(layer.columns)


def test_mowing_on_observed_series_of_the_demo_cube(
    demo_run: Path, parcels: Path, tmp_path: Path
) -> None:
    """``--series observed`` detects on the clear observations: other cuts, same products."""
    runs = {}
    for series in ("filled", "observed"):
        out = tmp_path / series
        assert main(["mowing", "-q", "--cube", str(demo_run), "--out", str(out), "--parcels",
                     str(parcels), "--series", series, "--detector", "drop"]) == 0
        with rasterio.open(out / "mowing_count.tif") as cnt:
            assert cnt.tags()["SERIES"] == series
            runs[series] = cnt.read(1)
        layer = gpd.read_file(out / "mowing_events.gpkg")
        assert set(layer["series"]) <= {series}


def test_series_choice_reads_observed_or_filled_variable() -> None:
    """``observed`` detects on ``ndvi`` (gaps kept), ``filled`` on ``ndvi_filled``."""
    from pipeline.mowing.raster import compute_mowing

    y = _season([12, 22])
    obs = np.where(np.arange(GRID.count) % 3 == 1, np.nan, y)  # a third of the bins cloudy
    shape = (GRID.count, 2, 2)
    cube = xr.Dataset(
        {"ndvi": (("time", "y", "x"), np.broadcast_to(obs[:, None, None], shape).copy()),
         "ndvi_filled": (("time", "y", "x"), np.full(shape, 0.7)),
         "ndvi_std": (("time", "y", "x"), np.full(shape, 0.02))},
        coords={"time": GRID.starts.values, "y": [1.0, 0.0], "x": [0.0, 1.0]},
    )
    observed = compute_mowing(cube, "drop", series="observed")["mowing_count"].values
    filled = compute_mowing(cube, "drop", series="filled")["mowing_count"].values
    assert (observed == 2).all() and (filled == 0).all()
    with pytest.raises(ValueError, match="series"):
        compute_mowing(cube, "drop", series="smoothed")


def test_mowing_bad_inputs_exit_2(demo_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"plotID": ["p"]}, geometry=[Point(23.7, 55.7)], crs=4326).to_file(points)
    elsewhere = tmp_path / "elsewhere.geojson"
    # metric coordinates of another CRS saved as if they were lon/lat: nowhere near the cube
    gpd.GeoDataFrame({"parcel_id": ["x"]}, geometry=[box(0, 0, 0.01, 0.01)],
                     crs=4326).to_file(elsewhere)
    nocrs = tmp_path / "nocrs.gpkg"
    gpd.GeoDataFrame({"parcel_id": ["x"]}, geometry=[box(0, 0, 1, 1)]).to_file(nocrs)
    unfilled = tmp_path / "unfilled.zarr"
    xr.Dataset({"ndvi": (("time", "y", "x"), np.zeros((2, 2, 2), np.float32))}).to_zarr(
        unfilled, zarr_format=3, consolidated=False)
    cases = [
        (["--cube", str(demo_run), "--parcels", str(points)], "no polygons"),
        (["--cube", str(demo_run), "--parcels", str(elsewhere)], "overlaps"),
        (["--cube", str(demo_run), "--parcels", str(nocrs)], "no CRS"),
        (["--cube", str(unfilled), "--detector", "drop"], "no ndvi_filled"),
        (["--cube", str(tmp_path / "nothing")], "no such cube"),
    ]
    for args, needle in cases:
        assert main(["mowing", "--out", str(tmp_path / "o"), *args]) == 2, needle
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert json.loads((demo_run / "run.json").read_text())  # the run itself untouched


def _layout(root: Path) -> Path:
    """A tiny folder of the slovak-grassland layout: 3 train plots, 3 camera parcels."""
    rng = np.random.default_rng(1)
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    t = np.arange(grid.count, dtype=float)

    def season(cut: int) -> np.ndarray:
        y = 0.3 + 0.5 / (1 + np.exp(-(t - 10) / 1.5))
        y[t >= cut] -= 0.35 * np.exp(-(t[t >= cut] - cut) / 4.0)
        return y

    def s2(plot_col: str, plots: dict[str, int]) -> pd.DataFrame:
        rows = []
        for pid, cut in plots.items():
            for k, start in enumerate(grid.starts):
                d = (start + pd.Timedelta(days=2)).strftime("%Y-%m-%d")
                clear = int(rng.random() > 0.3 or k in (cut - 1, cut))
                rows.append({plot_col: pid, "Date": d, "ndvi": season(cut)[k], "mask": clear})
        return pd.DataFrame(rows)

    def cut_date(cut: int) -> str:
        return str((grid.starts[cut] + pd.Timedelta(days=3)).date())

    train, test = {"P1": 16, "P2": 20, "P3": 24}, {"c1": 17, "c2": 21, "c3": 25}
    (root / "train" / "S2").mkdir(parents=True)
    (root / "test" / "SK_poly").mkdir(parents=True)
    s2("PLOTID", train).to_csv(root / "train" / "S2" / "ts_X_S2_2022.csv", index=False)
    s2("plotID", test).to_csv(root / "test" / "SK_poly" / "ts_cam_2022.csv", index=False)
    pt = [Point(19, 48)] * 3
    gpd.GeoDataFrame({"PLOTID": list(train), "type": "k",
                      "date": [cut_date(c) for c in train.values()]},
                     geometry=pt, crs=4326).to_file(root / "train" / "mowing_events.gpkg")
    gpd.GeoDataFrame({"plotID": list(test), "type": "k",
                      "date": [cut_date(c) for c in test.values()], "endDate": None},
                     geometry=pt, crs=4326).to_file(root / "test" / "SK_long.gpkg")
    return root


def test_benchmark_tunes_on_train_and_scores_test_of_any_folder(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mowing

    tr_rows, te_rows, notes = bench_mowing.bench_slovak(_layout(tmp_path), 12.0)
    assert notes[0].startswith("train: 3 parcel-years, 3 mowing events")
    assert notes[1].startswith("test: 3 parcel-years, 3 mowing events")
    assert {(r["series"], r["method"]) for r in tr_rows} == {
        (s, m) for s in ("raw", "linear", "sf") for m in METHODS}
    held = [r for r in te_rows if r["params"] == "tuned on train"]
    assert len(held) == len(tr_rows) and all(r["tp"] + r["fn"] == 3 for r in held)
    assert max(r["f1"] for r in held) == 1.0


def test_chunked_detection_equals_the_lazy_one_and_runs_once_per_pixel(tmp_path: Path,
                                                                      monkeypatch) -> None:
    """``write_cut_days`` (one pass, chunk by chunk) gives ``compute_mowing``'s products
    and hands every pixel of the AOI to the detector exactly once (and none outside)."""
    from pipeline.mowing import raster

    rng = np.random.default_rng(4)
    ny, nx = 7, 9
    base = np.stack([_season([int(b)]) for b in rng.integers(10, 26, ny * nx)], axis=-1)
    filled = (base + rng.normal(0, 0.01, base.shape)).reshape(GRID.count, ny, nx)
    mask = np.ones((ny, nx), np.uint8)
    mask[0, :4] = 0
    cube = xr.Dataset(
        {"ndvi_filled": (("time", "y", "x"), filled.astype(np.float32)),
         "ndvi_std": (("time", "y", "x"), np.full(filled.shape, 0.02, np.float32)),
         "aoi_mask": (("y", "x"), mask)},
        coords={"time": GRID.starts.values, "y": np.arange(ny, 0, -1.0), "x": np.arange(nx * 1.0)},
    ).chunk({"time": -1, "y": 3, "x": 4})
    want = raster.compute_mowing(cube, "drop").compute()
    seen: list[int] = []
    detect_block = raster._detect_block

    def counting(ndvi, *args):  # type: ignore[no-untyped-def]
        seen.append(int(np.prod(ndvi.shape[:-1])))
        return detect_block(ndvi, *args)

    monkeypatch.setattr(raster, "_detect_block", counting)
    got = raster.write_cut_days(cube, tmp_path / "cuts.zarr", "drop")
    assert sum(seen) == mask.sum() and len(seen) == 9  # 3 x 3 chunks, each pixel once
    assert (want["mowing_count"].values[mask > 0] > 0).any()
    # outside the AOI: count nodata, no cut days, no dates
    assert (got["mowing_count"].values[mask == 0] == 255).all()
    assert np.isnan(got["cut_days"].values[:, mask == 0]).all()
    assert (got["mowing_dates"].values[:, mask == 0] == 0).all()
    for name in ("mowing_count", "mowing_dates", "cut_days"):
        np.testing.assert_array_equal(got[name].values, want[name].values)


def test_field_mean_benchmark_reads_clear_dates_only_and_scores_every_detector(
        tmp_path: Path) -> None:
    """``benchmarks/mowing_jrc.py`` on a folder of its layout: nearly clear dates give the
    median NDVI, cloudier ones are empty; each detector is run through ``mowing-table``."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import mowing_jrc

    (tmp_path / "tsdir").mkdir()
    (tmp_path / "gtdir").mkdir()
    dates = pd.date_range("2020-01-04", "2020-12-29", freq="5D")
    day = dates.dayofyear.to_numpy()
    cut = pd.Timestamp("2020-06-15").dayofyear
    season = 0.3 + 0.55 / (1 + np.exp(-(day - 110) / 8.0)) - 0.4 / (1 + np.exp(-(day - 290) / 10))
    ndvi = season - np.where(day >= cut, 0.4 * np.exp(-(day - cut) / 20.0), 0.0)
    rng = np.random.default_rng(0)
    for pid in ("1", "2"):
        cloudy = rng.random(len(dates)) < 0.3
        cloudy[np.abs(day - 150) < 3] = True  # a cloud that the median would read as a cut
        p50 = np.where(np.abs(day - 150) < 3, 0.05, ndvi + rng.normal(0, 0.01, len(day)))
        clear = np.where(cloudy, 20, 100)  # of 100 pixels
        hist = {f"hist.{k}": 0 for k in range(12)}
        frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "band": "NDVI",
                              "count": 100, "P50": p50, **hist})
        frame["hist.4"] = clear
        frame["hist.9"] = 100 - clear
        frame.to_csv(tmp_path / "tsdir" / f"{pid}_s2_idx_ts.csv", index=False)
    pd.DataFrame({"ID": [1, 2], "area": 1.0, "Event_date": "15/06/2020",
                  "Event_type": "1"}).to_csv(tmp_path / "gtdir" / "FOIinfo.csv")

    table = mowing_jrc.field_table(tmp_path, 0.9)
    assert table["ndvi"].notna().sum() < len(table) and (table["ndvi"].dropna() > 0.2).all()
    assert mowing_jrc.main([str(tmp_path), "--markdown", str(tmp_path / "t.md")]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "2 parcels, 2 reference cuts" in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| ")][1:]
    assert [r[1].strip() for r in rows] == [label for label, _ in mowing_jrc.RUNS]
    assert all(int(r[5]) + int(r[7]) == 2 for r in rows)  # TP + FN: every reference cut
    assert int(rows[0][5]) == 2  # the default detector finds both cuts
