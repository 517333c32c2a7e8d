"""Cross-domain validation (model.cv), the Akima base and the fallback to it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model import SFModel, load_model
from model.cv import FoldOverlapError, check_disjoint, discover_domains, fold_data
from model.sf import SFNet, akima_fill
from model.train import Recipe
from pipeline import baselines


def _write_region(root: Path, region: str, n_plots: int, rng: np.random.Generator) -> None:
    """Plot tables of one region in the slovak-grassland layout (S2 every 5 d, S1 6 d)."""
    s2_rows, s1_rows = [], []
    for year in (2021, 2022):
        for p in range(n_plots):
            pid = f"{region}{p + 1}"
            for d in pd.date_range(f"{year}-01-03", f"{year}-12-28", freq="5D"):
                clear = rng.random() < 0.5
                ndvi = 0.3 + 0.5 * np.sin(np.pi * (d.day_of_year - 60) / 250) ** 2
                s2_rows.append({"PLOTID": pid, "Date": d.date().isoformat(),
                                "ndvi": round(float(ndvi + rng.normal(0, 0.02)), 4),
                                "mask": 1.0 if clear else 0.0})
            for d in pd.date_range(f"{year}-01-01", f"{year}-12-28", freq="6D"):
                s1_rows.append({"PLOTID": pid, "Date": d.date().isoformat(),
                                "VV": -11 + rng.normal(0, 1), "VH": -18 + rng.normal(0, 1)})
    (root / "train" / "S2").mkdir(parents=True, exist_ok=True)
    (root / "train" / "S1").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(s2_rows).to_csv(root / "train" / "S2" / f"ts_{region}_GMI_S2_{region}.csv",
                                 index=False)
    pd.DataFrame(s1_rows).to_csv(root / "train" / "S1" / f"ts_{region}_GMI_S1.csv",
                                 index=False)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(0)
    _write_region(root, "AA", 6, rng)
    _write_region(root, "BB", 5, rng)
    return root


def test_domains_come_from_file_names(tables: Path) -> None:
    domains = discover_domains(tables)
    assert [d.name for d in domains] == ["AA", "BB"]
    assert domains[0].plots == {f"AA{i}" for i in range(1, 7)}
    assert all(d.has_s1 for d in domains)


def test_cv_command_writes_its_table(tables: Path, tmp_path: Path) -> None:
    from model.__main__ import main

    out = tmp_path / "report"
    assert main(["cv", "--data", str(tables), "--out", str(out), "--steps", "3",
                 "--workers", "1", "--gap-seeds", "0", "1", "--repeats", "1",
                 "--set", "akima=1", "--adapt-steps", "2"]) == 0
    report = json.loads((out / "cv.json").read_text())
    assert [f["domain"] for f in report["folds"]] == ["AA", "BB"]
    fold = report["folds"][0]
    assert set(fold["seeds"]) == {"0", "1"}
    assert set(fold["seeds"]["0"]) == {"sf", "sf_no_s1", "sf_no_fallback", "sf_adapted"}
    # 6 plots x 2 years: each half has too few series, and the report says so.
    assert [a["fills_half"] for a in fold["adaptation"]] == [0, 1]
    assert all("fewer than" in a["reason"] for a in fold["adaptation"])
    assert set(fold["seeds"]["0"]["sf"]) == {"6d", "12-18d", "24-30d", "36-60d"}
    md = (out / "cv.md").read_text()
    assert "| AA | sf | 6d | 0 |" in md and "| BB | sf_no_s1 | 36-60d | 1 |" in md
    assert (out / "folds" / "AA.safetensors").exists()


def test_fold_keeps_test_plots_out_of_training(tables: Path) -> None:
    domains = discover_domains(tables)
    pools, calib, left = fold_data(domains, "AA", Recipe(steps=1))
    assert left.name == "AA"
    trained = set().union(*(set(p.plot.tolist()) for p in pools + calib))
    assert trained and not trained & left.plots


def test_overlap_is_refused(tables: Path) -> None:
    domains = discover_domains(tables)
    aa = domains[0].season
    check_disjoint([domains[1].year], aa)
    leaked = domains[1].year.take(np.arange(3))
    leaked = type(leaked)(np.array(["AA1", "BB1", "BB2"]), leaked.year, leaked.start,
                          leaked.ndvi, leaked.vv, leaked.vh)
    with pytest.raises(FoldOverlapError, match="AA1"):
        check_disjoint([domains[1].year, leaked], aa)


def test_akima_fill_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.uniform(-0.1, 0.12, (300, 36)), axis=1).astype(np.float32)
    y[rng.random(y.shape) < 0.55] = np.nan
    ref = baselines.akima(y)
    valid = np.isfinite(y)
    got, _ = akima_fill(torch.from_numpy(np.nan_to_num(y)), torch.from_numpy(valid))
    rows = valid.sum(axis=1) >= 3
    np.testing.assert_allclose(got.numpy()[rows], ref[rows], atol=2e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fallback_keeps_an_exact_classic_fill(seed: int) -> None:
    """Gaps in straight lines: Akima is exact there, so SF must stay on it."""
    torch.manual_seed(seed)
    sf = SFModel(SFNet(doy=True, akima=True), {})
    t = 36
    rng = np.random.default_rng(seed)
    slope = rng.uniform(-0.02, 0.02, (64, 1))
    line = (0.5 + slope * (np.arange(t)[None, :] - 18)).astype(np.float32)
    ndvi = line.copy()
    ndvi[rng.random(ndvi.shape) < 0.5] = np.nan
    ndvi[:, 0], ndvi[:, -1] = line[:, 0], line[:, -1]
    vv = np.full((64, t, 2), -11, np.float32)
    vh = np.full((64, t, 2), -18, np.float32)
    mean, _ = sf.predict(ndvi, vv, vh, doy=np.arange(t) * 6 + 93.0)
    assert np.abs(mean - line).max() < 0.005
    sf.fallback = False
    raw, _ = sf.predict(ndvi, vv, vh, doy=np.arange(t) * 6 + 93.0)
    assert np.abs(raw - line).max() > 0.005  # the untrained network alone is far off


def test_region_augmentation_keeps_shapes_and_masks() -> None:
    from model.train import region_augment

    rng = np.random.default_rng(0)
    nd = rng.uniform(0.2, 0.8, (50, 30)).astype(np.float32)
    nd[:, ::3] = np.nan
    vv = rng.normal(-11, 1, (50, 30, 2)).astype(np.float32)
    vh = vv - 7
    doy = np.tile(np.arange(30, dtype=np.float32) * 6 + 3, (50, 1))
    a, b, _, d = region_augment(nd, vv, vh, doy, rng)
    assert a.shape == nd.shape and b.shape == vv.shape and d.shape == doy.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(nd))
    assert np.nanmin(a) >= -1 and np.nanmax(a) <= 1
    assert d.min() >= 1 and d.max() <= 366.25
    assert np.isnan(b).any() and not np.isnan(vv).any()


def test_recipe_without_s1_trains_and_scores_without_radar(tables: Path,
                                                           tmp_path: Path) -> None:
    """``s1=0``: no batch carries Sentinel-1, and the fold card withholds it at inference."""
    from model.__main__ import main
    from model.train import Batches

    domains = discover_domains(tables)
    pools, _, _ = fold_data(domains, "AA", Recipe(steps=1))
    draw = Batches(pools, Recipe(s1=0, batch=32), np.random.default_rng(0)).draw()
    assert torch.isnan(draw[1]).all() and torch.isnan(draw[2]).all()
    with_s1 = Batches(pools, Recipe(batch=32), np.random.default_rng(0)).draw()
    assert torch.isfinite(with_s1[1]).any()

    out = tmp_path / "report"
    assert main(["cv", "--data", str(tables), "--out", str(out), "--steps", "3",
                 "--workers", "1", "--gap-seeds", "0", "--repeats", "1",
                 "--domains", "AA", "--set", "akima=1", "--set", "s1=0",
                 "--adapt-steps", "0"]) == 0
    fold = json.loads((out / "cv.json").read_text())["folds"][0]
    assert set(fold["seeds"]["0"]) == {"sf", "sf_no_fallback"}
    card = json.loads((out / "folds" / "AA.json").read_text())
    assert card["inference"]["s1"] is False
    assert load_model(out / "folds" / "AA.safetensors").use_s1 is False


def test_cross_fit_adapts_each_half_on_the_other_half_only() -> None:
    from model.cv import cross_fit
    from model.data import PlotSeries

    rng = np.random.default_rng(0)
    n_plots, t = 70, 36
    plot = np.repeat([f"P{i}" for i in range(n_plots)], 2)  # two years per plot
    nd = (0.5 + 0.3 * np.sin(np.arange(t) / 5)[None, :] + rng.normal(0, 0.02, (2 * n_plots, t)))
    nd[rng.random(nd.shape) < 0.3] = np.nan
    s1 = np.full((2 * n_plots, t, 2), np.nan, np.float32)
    season = PlotSeries(plot, np.tile([2021, 2022], n_plots),
                        np.full(2 * n_plots, np.datetime64("2021-04-01")),
                        nd.astype(np.float32), s1, s1.copy())
    (group, models), reports = cross_fit(season, load_model(), seed=0, steps=2)
    for p in set(plot.tolist()):  # both years of a plot on one side
        assert len(set(group[plot == p].tolist())) == 1
    assert sorted(np.bincount(group).tolist()) == [70, 70]
    for k, rep in enumerate(reports):  # half k is filled by a model tuned on the other
        assert rep["fills_half"] == k and rep["n_series"] == int((group != k).sum())
    assert all(m.use_s1 is False for m in models)
