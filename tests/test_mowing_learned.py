"""The learned mowing detector: decoding, training on a synthetic season, the CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.mowing import default_detector_weights
from pipeline.__main__ import main
from pipeline.mowing import Score, match_events
from pipeline.mowing.learned import decode, detect_learned
from pipeline.mowing.series import grid_axes
from pipeline.timegrid import TimeGrid
from tests.conftest import refused
from tests.test_mowing import _layout, parcels  # noqa: F401  (fixture)


def test_decode_keeps_peaks_above_threshold_spaced_by_regrowth() -> None:
    days = np.arange(10) * 6.0
    p = np.zeros((2, 10))
    p[0, 2] = 0.9                      # a sharp cut
    p[0, 4] = 0.8                      # 12 days later: weaker, dropped (min gap 30 d)
    p[0, 8] = 0.3                      # below the threshold
    p[1, 5], p[1, 6] = 0.45, 0.45      # a cut on a bin boundary: evidence split in two
    dates, probs = decode(p, days, threshold=0.5, min_gap_days=30.0)
    assert dates[0, 0] == pytest.approx(12.0) and probs[0, 0] == pytest.approx(0.9)
    assert np.isnan(dates[0, 1])
    # the split cut is found once, between the two bins, with the combined probability
    assert np.isfinite(dates[1]).sum() == 1
    assert dates[1, 0] == pytest.approx(33.0)  # probability-weighted centre of the bins
    assert probs[1, 0] == pytest.approx(1 - 0.55 * 0.55)


def _greedy_decode(prob: np.ndarray, days: np.ndarray, threshold: float, gap: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Reference: the decoding rule written out row by row, peak by peak."""
    n, t = prob.shape
    dates, probs = np.full((n, 6), np.nan), np.full((n, 6), np.nan)
    for r in range(n):
        p = np.concatenate([[0.0], prob[r], [0.0]])
        d = np.concatenate([[np.nan], days, [np.nan]])
        cand = []
        for j in range(1, t + 1):
            mass = 1 - (1 - p[j]) * (1 - p[j - 1]) * (1 - p[j + 1])
            if p[j] > 0 and p[j] >= p[j - 1] and p[j] >= p[j + 1] and mass >= threshold:
                w = [(p[i], d[i]) for i in (j - 1, j, j + 1) if np.isfinite(d[i])]
                when = sum(a * b for a, b in w) / sum(a for a, _ in w)
                cand.append((-mass, j, when))
        kept: list[tuple[float, int, float]] = []
        for c in sorted(cand):
            if all(abs(c[2] - k[2]) >= gap for k in kept):
                kept.append(c)
        kept = sorted(kept, key=lambda c: c[2])[:6]
        dates[r, : len(kept)] = [c[2] for c in kept]
        probs[r, : len(kept)] = [-c[0] for c in kept]
    return dates, probs


def test_decode_matches_the_rule_row_by_row_with_ties_and_many_peaks() -> None:
    rng = np.random.default_rng(5)
    days = np.arange(30) * 6.0
    p = np.round(rng.random((300, 30)) ** 3, 1)  # rounded: many ties, many peaks
    p[rng.random(p.shape) < 0.3] = 0
    for threshold, gap in ((0.3, 30.0), (0.6, 12.0), (0.05, 45.0)):
        got = decode(p, days, threshold, gap)
        want = _greedy_decode(p, days, threshold, gap)
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12)
    assert np.isfinite(got[0]).sum() > len(p)  # rows with several events were decoded


def _season(rng: np.random.Generator, n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Grassland seasons with one cut each (bin index), clouds hiding 40 % of bins."""
    k = np.arange(t)
    cuts = rng.integers(14, t - 10, n)
    y = 0.3 + 0.5 / (1 + np.exp(-(k - 10) / 1.5))
    y = np.tile(y, (n, 1)) + rng.normal(0, 0.01, (n, t))
    after = k[None] >= cuts[:, None]
    y -= after * 0.35 * np.exp(-(k[None] - cuts[:, None]) / 4.0)
    y[rng.random((n, t)) < 0.4] = np.nan
    return y.astype(np.float32), cuts


def _labelled(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          np.ndarray]:
    """:func:`_season` on the 2022 grid as a training set: NDVI, ``(T,)`` and ``(n, T)``
    days of year, one-hot cut targets and unit weights."""
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    _, doy = grid_axes(grid)
    ndvi, cuts = _season(np.random.default_rng(seed), n, grid.count)
    target = np.zeros(ndvi.shape, np.float32)
    target[np.arange(len(cuts)), cuts] = 1
    return ndvi, doy, np.tile(doy, (n, 1)), target, np.ones_like(target)


def test_detector_learns_cuts_of_a_synthetic_season_and_round_trips(tmp_path: Path) -> None:
    from model.mowing import DetectorRecipe, fit_detector, load_detector

    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    days, _ = grid_axes(grid)
    ndvi, doy, doy_n, target, weight = _labelled(0, 96)
    det = fit_detector(ndvi, doy_n, target, weight,
                       DetectorRecipe(seeds=1, steps=250, batch=32, lr=1e-2))
    test, tcuts = _season(np.random.default_rng(1), 40, grid.count)
    found, probs = detect_learned(test, days, doy, det)
    score = Score(0, 0, 0)
    for i, c in enumerate(tcuts):
        score = score + match_events(found[i], [days[c]], 12.0)
    assert score.f1 >= 0.8, score
    assert np.all((probs[np.isfinite(probs)] >= 0.4) & (probs[np.isfinite(probs)] <= 1))
    det.save(tmp_path / "mowing.safetensors")
    again = load_detector(tmp_path / "mowing.safetensors")
    np.testing.assert_array_equal(again.predict_proba(test, doy), det.predict_proba(test, doy))
    assert again.card["recipe"]["steps"] == 250


def test_detector_without_calendar_reads_no_day_of_year(tmp_path: Path) -> None:
    import torch

    from model.mowing import DetectorRecipe, detector_features, fit_detector, load_detector

    ndvi, doy, doy_n, target, weight = _labelled(3, 16)
    x = detector_features(ndvi, doy, calendar=False)
    assert not x[:, 5:7].any() and torch.equal(x[:, [0, 1, 2, 3, 4, 7]],
                                               detector_features(ndvi, doy)[:, [0, 1, 2, 3, 4, 7]])
    det = fit_detector(ndvi, doy_n, target, weight,
                       DetectorRecipe(seeds=1, steps=3, batch=4, hidden=6))
    det.save(tmp_path / "d.safetensors")
    again = load_detector(tmp_path / "d.safetensors")
    assert again.card["recipe"]["calendar"] == 0 and not again.calendar
    # the same series a month later in the year: the same probabilities
    np.testing.assert_array_equal(again.predict_proba(ndvi, doy),
                                  again.predict_proba(ndvi, doy + 30))
    del again.card["recipe"]["calendar"]
    assert again.calendar  # a card from before the setting: its networks read the date
    # a network that reads the calendar does not give them
    with_cal = fit_detector(ndvi, doy_n, target, weight,
                            DetectorRecipe(seeds=1, steps=3, batch=4, hidden=6, calendar=1))
    assert with_cal.calendar
    assert not np.array_equal(with_cal.predict_proba(ndvi, doy),
                              with_cal.predict_proba(ndvi, doy + 30))


@pytest.mark.parametrize("recipe", [{"net": "conv", "hidden": 8, "dilations": (1, 3)},
                                    {"net": "gru", "hidden": 6}])
def test_load_builds_the_network_its_card_names(tmp_path: Path, recipe: dict) -> None:
    from model.mowing import DetectorRecipe, MowConvNet, MowNet, fit_detector, load_detector

    ndvi, doy, doy_n, target, weight = _labelled(2, 16)
    det = fit_detector(ndvi, doy_n, target, weight,
                       DetectorRecipe(seeds=2, steps=3, batch=4, **recipe))
    det.save(tmp_path / "d.safetensors")
    again = load_detector(tmp_path / "d.safetensors")
    cls = MowConvNet if recipe["net"] == "conv" else MowNet
    assert all(type(n) is cls for n in again.nets) and len(again.nets) == 2
    assert again.card["architecture"]["class"] == f"model.mowing.{cls.__name__}"
    np.testing.assert_array_equal(again.predict_proba(ndvi, doy), det.predict_proba(ndvi, doy))
    # without its card the weights' names tell the network apart
    (tmp_path / "d.json").unlink()
    if recipe["net"] == "gru":
        bare = load_detector(tmp_path / "d.safetensors")
        assert all(type(n) is MowNet for n in bare.nets)


def test_gru_weights_of_the_earlier_card_format_still_load(tmp_path: Path) -> None:
    import shutil

    from model.mowing import MowNet, load_detector

    # learned-fast as shipped from 2026-12-04 to 2026-12-08 (its networks read the day
    # of year; its card, as written then, has no ``directions`` nor ``calendar``), the
    # card cut back to the format from before the recipe's ``net``
    src = Path(__file__).parent / "data" / "mowing-fast-2026-12-04" / "mowing_fast.safetensors"
    shutil.copy(src, tmp_path / "d.safetensors")
    card = json.loads(src.with_suffix(".json").read_text())
    assert not {"directions", "calendar"} & set(card["recipe"])
    for key in ("net", "dilations"):
        card["recipe"].pop(key)
    (tmp_path / "d.json").write_text(json.dumps(card))
    det = load_detector(tmp_path / "d.safetensors")
    assert "net" not in det.card["recipe"] and det.calendar
    assert len(det.nets) == 1 and all(type(n) is MowNet and n.hidden == 16 for n in det.nets)
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    days, doy = grid_axes(grid)
    test, tcuts = _season(np.random.default_rng(1), 40, grid.count)
    found, _ = detect_learned(test, days, doy, det)
    score = Score(0, 0, 0)
    for i, c in enumerate(tcuts):
        score = score + match_events(found[i], [days[c]], 12.0)
    assert score.f1 >= 0.5, score  # trained weights, not a freshly initialised network


def test_shipped_fast_detector_is_one_narrow_gru_that_finds_the_ensembles_cuts() -> None:
    from model.mowing import MowNet, load_detector

    fast = load_detector(default_detector_weights("learned-fast"))
    assert len(fast.nets) == 1 and type(fast.nets[0]) is MowNet and fast.nets[0].hidden == 16
    assert fast.card["recipe"]["distill"] > 0 and not fast.calendar
    # its teacher was the shipped ensemble: the same recipe
    assert fast.card["teacher"]["recipe"] == load_detector().card["recipe"]
    assert fast.card["teacher"]["weights"].startswith("mowing.safetensors as shipped")
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    days, doy = grid_axes(grid)
    test, tcuts = _season(np.random.default_rng(2), 60, grid.count)
    mine, _ = detect_learned(test, days, doy, "learned-fast")
    theirs, _ = detect_learned(test, days, doy, "learned")
    truth, agree = Score(0, 0, 0), Score(0, 0, 0)
    for i, c in enumerate(tcuts):
        truth = truth + match_events(mine[i], [days[c]], 12.0)
        agree = agree + match_events(mine[i], theirs[i][np.isfinite(theirs[i])], 12.0)
    assert truth.f1 >= 0.5, truth
    assert agree.f1 >= 0.85, agree  # it finds what the shipped ensemble finds


def test_distilled_recipe_trains_its_teacher_first_or_takes_the_one_given(
        tmp_path: Path) -> None:
    from model.mowing import DetectorRecipe, MowConvNet, MowNet, fit_detector, teacher_recipe

    ndvi, doy, doy_n, target, weight = _labelled(4, 16)
    recipe = DetectorRecipe(seeds=1, steps=4, batch=4, net="conv", hidden=16, teacher_steps=3,
                            teacher_seeds=2, distill=0.7)
    det = fit_detector(ndvi, doy_n, target, weight, recipe)
    assert len(det.nets) == 1 and type(det.nets[0]) is MowConvNet
    assert det.card["teacher"]["recipe"]["net"] == "gru"
    assert det.card["teacher"]["recipe"]["seeds"] == 2
    teacher = fit_detector(ndvi, doy_n, target, weight,
                           dataclasses.replace(teacher_recipe(recipe), hidden=5))
    assert all(type(n) is MowNet for n in teacher.nets)
    given = fit_detector(ndvi, doy_n, target, weight, recipe, teacher=teacher)
    assert given.card["teacher"]["recipe"]["hidden"] == 5
    # the teacher's probabilities steer the member: another teacher, another member
    p1, p2 = det.predict_proba(ndvi, doy), given.predict_proba(ndvi, doy)
    assert not np.allclose(p1, p2)
    plain = fit_detector(ndvi, doy_n, target, weight,
                         dataclasses.replace(recipe, distill=0.0), teacher=teacher)
    assert "teacher" not in plain.card


def test_transfer_recipe_learns_the_teacher_on_unlabelled_series_too() -> None:
    from model.mowing import DetectorRecipe, fit_detector, teacher_recipe

    ndvi, doy, doy_n, target, weight = _labelled(5, 12)
    un, _, un_doy, _, _ = _labelled(6, 12)
    un_doy[:, -3:] = np.nan  # padding dates: no teacher term there
    recipe = DetectorRecipe(seeds=1, steps=6, batch=8, hidden=8, distill=0.5, transfer=1,
                            teacher_seeds=1, teacher_steps=3)
    with pytest.raises(ValueError, match="transfer"):
        fit_detector(ndvi, doy_n, target, weight, recipe)
    teacher = fit_detector(ndvi, doy_n, target, weight, teacher_recipe(recipe))
    with_un = fit_detector(ndvi, doy_n, target, weight, recipe, teacher=teacher,
                           unlabelled=(un, un_doy))
    without = fit_detector(ndvi, doy_n, target, weight,
                           dataclasses.replace(recipe, transfer=0), teacher=teacher)
    assert with_un.card["recipe"]["transfer"] == 1
    assert not np.allclose(with_un.predict_proba(ndvi, doy), without.predict_proba(ndvi, doy))


def test_unlabelled_plot_years_are_apart_from_the_labelled_domains(tmp_path: Path) -> None:
    from model.mowing import DetectorRecipe
    from pipeline.mowing.reference import domains, transfer_series, unlabelled_domains

    data = _layout(tmp_path)
    table = data / "train" / "S2" / "ts_X_S2_2022.csv"
    extra = pd.read_csv(table).query("PLOTID == 'P1'").assign(PLOTID="P9")  # no events
    pd.concat([pd.read_csv(table), extra]).to_csv(table, index=False)
    un = unlabelled_domains(data)
    assert list(un) == ["X"] and un["X"].keys == [("P9", 2022)] and not un["X"].truth
    assert ("P9", 2022) not in domains(data)["X"].keys
    keys, ndvi, doy = transfer_series(data, 40)
    assert keys == [("P9", 2022)] and ndvi.shape == doy.shape == (1, 40)
    assert transfer_series(data, 40, leave_out="X")[0] == []  # X's own series leave with it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mowing

    rows, _, _ = bench_mowing.bench_lodo(
        data, 12.0, DetectorRecipe(seeds=1, steps=3, batch=4, hidden=8, distill=0.5,
                                   transfer=1, teacher_seeds=1, teacher_steps=3))
    assert {r["domain"] for r in rows if r["method"] == "learned"} == {"X", "camera"}


def test_unknown_network_in_a_recipe_is_refused() -> None:
    from model.mowing import build_net

    with pytest.raises(ValueError, match="unknown net 'lstm'"):
        build_net({"net": "lstm"})


def test_lodo_trains_and_tunes_without_the_left_out_domain(tmp_path: Path) -> None:
    from model.mowing import DetectorRecipe

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mowing

    rows, notes, rel = bench_mowing.bench_lodo(
        _layout(tmp_path), 12.0, DetectorRecipe(seeds=1, steps=5, batch=4, net="conv",
                                                hidden=16, distill=0.5, teacher_steps=5),
        teacher_cache=tmp_path / "teachers")
    assert {r["domain"] for r in rows} == {"X", "camera"}
    for dom in ("X", "camera"):
        mine = {(r["method"], r["series"]) for r in rows if r["domain"] == dom}
        assert ("learned", "raw") in mine and ("drop", "raw") in mine
        assert all(r["tp"] + r["fn"] == 3 for r in rows if r["domain"] == dom)
    assert any(n.startswith("X: learned minus best rule") for n in notes)
    # each fold says whether the filler of its SF rows saw the left-out domain
    assert sum(n.startswith(("X: SF", "camera: SF")) for n in notes) == 2
    assert set(rel) == {"X", "camera"}
    # one teacher per fold, each trained without its left-out domain
    cached = sorted((tmp_path / "teachers").glob("*.safetensors"))
    assert len(cached) == 2
    pools = {json.loads(p.with_suffix(".json").read_text())["pool"] for p in cached}
    assert pools == {"all but X", "all but camera"}


def _table(path: Path) -> Path:
    grid = TimeGrid.covering("2022-03-01", "2022-11-30")
    ndvi, _ = _season(np.random.default_rng(3), 4, grid.count)
    rows = [{"id": f"s{i}", "date": (s + pd.Timedelta(days=2)).date().isoformat(),
             "ndvi": "" if np.isnan(v) else f"{v:.4f}"}
            for i in range(len(ndvi)) for s, v in zip(grid.starts, ndvi[i], strict=True)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_mowing_table_learned_reports_a_probability_per_cut(tmp_path: Path) -> None:
    inp = _table(tmp_path / "acq.csv")
    # the learned detector is the default
    assert main(["mowing-table", "--input", str(inp), "--output", str(tmp_path / "a.csv"),
                 "-q"]) == 0
    ev = pd.read_csv(tmp_path / "a.csv")
    assert list(ev.columns) == ["id", "event_date", "probability"]
    assert ev["probability"].between(0.4, 1.0).all()
    assert main(["mowing-table", "--input", str(inp), "--output", str(tmp_path / "b.csv"),
                 "--detector", "learned", "--min-probability", "0.9", "-q"]) == 0
    strict = pd.read_csv(tmp_path / "b.csv")
    assert len(strict) <= len(ev) and (strict["probability"] >= 0.9).all()
    assert main(["mowing-table", "--input", str(inp), "--output", str(tmp_path / "c.csv"),
                 "--detector", "learned-fast", "--min-probability", "0.5", "-q"]) == 0
    fast = pd.read_csv(tmp_path / "c.csv")
    assert list(fast.columns) == ["id", "event_date", "probability"]
    assert len(fast) and fast["probability"].between(0.5, 1.0).all()


@pytest.mark.parametrize("extra", [["--detector", "drop", "--min-probability", "0.7"],
                                   ["--detector", "learned", "--min-probability", "1.5"],
                                   ["--detector", "learned", "--min-probability", "x"]])
def test_min_probability_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    extra: list[str]) -> None:
    inp = _table(tmp_path / "acq.csv")
    refused(["mowing-table", "--input", str(inp), "--output", str(tmp_path / "o.csv"), *extra],
            capsys)
    assert not (tmp_path / "o.csv").exists()



def test_missing_detector_weights_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import model.mowing

    inp = _table(tmp_path / "acq.csv")
    monkeypatch.setitem(model.mowing.SHIPPED, "learned-fast", "gone.safetensors")
    err = refused(["mowing-table", "--input", str(inp), "--output", str(tmp_path / "o.csv"),
                   "--detector", "learned-fast"], capsys)
    assert "learned-fast" in err and "gone.safetensors" in err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("detector", ["learned", "learned-fast"])
def test_mowing_learned_on_the_demo_cube_reads_observations_and_rates_events(
    demo_run: Path, parcels: Path, tmp_path: Path,  # noqa: F811  (the imported fixture)
    detector: str,
) -> None:
    import geopandas as gpd
    import rasterio

    out = tmp_path / "mow"
    assert main(["mowing", "-q", "--cube", str(demo_run), "--out", str(out), "--parcels",
                 str(parcels), "--detector", detector]) == 0
    with rasterio.open(out / "mowing_count.tif") as cnt:
        assert cnt.tags()["METHOD"] == detector and cnt.tags()["SERIES"] == "observed"
        count = cnt.read(1)
    assert (count != 255).any()
    layer = gpd.read_file(out / "mowing_events.gpkg")
    assert set(layer["method"]) <= {detector}
    assert layer["probability"].between(0.4, 1.0).all()
    strict = tmp_path / "strict"
    assert main(["mowing", "-q", "--cube", str(demo_run), "--out", str(strict), "--parcels",
                 str(parcels), "--detector", detector, "--min-probability", "0.8"]) == 0
    with rasterio.open(strict / "mowing_count.tif") as cnt:
        fewer = cnt.read(1)
    inside = count != 255
    assert (fewer[inside] <= count[inside]).all()
    assert (gpd.read_file(strict / "mowing_events.gpkg")["probability"] >= 0.8).all()


@pytest.fixture(scope="module")
def season_run(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path, small_aoi: Path
               ) -> Path:
    """The small AOI's demo run over a whole season (linear fill): cuts and harvests
    happen from June on, after the end of ``demo_run``'s spring."""
    out = tmp_path_factory.mktemp("season") / "out"
    assert main(["run", "-q", "--aoi", str(small_aoi), "--cache", str(demo_cache), "--out",
                 str(out), "--start", "2023-04-01", "--end", "2023-10-31", "--method",
                 "linear", "--scheduler", "threads"]) == 0
    return out


def test_mowing_defaults_to_the_fast_detector_per_pixel_and_the_ensemble_per_parcel(
    season_run: Path, parcels: Path, tmp_path: Path,  # noqa: F811  (the imported fixture)
) -> None:
    import geopandas as gpd
    import rasterio

    from pipeline.mowing.detect import DEFAULT_DETECTOR, PIXEL_DETECTOR

    assert (PIXEL_DETECTOR, DEFAULT_DETECTOR) == ("learned-fast", "learned")
    out = tmp_path / "mow"
    assert main(["mowing", "-q", "--cube", str(season_run), "--out", str(out), "--parcels",
                 str(parcels)]) == 0
    with rasterio.open(out / "mowing_count.tif") as cnt:
        assert cnt.tags()["METHOD"] == "learned-fast"
        default_count = cnt.read(1)
    layer = gpd.read_file(out / "mowing_events.gpkg")
    assert len(layer) and set(layer["method"]) == {"learned"}
    # the same as naming each detector: the rasters of learned-fast, the events of learned
    fast, ens = tmp_path / "fast", tmp_path / "ens"
    for folder, name in ((fast, "learned-fast"), (ens, "learned")):
        assert main(["mowing", "-q", "--cube", str(season_run), "--out", str(folder),
                     "--parcels", str(parcels), "--detector", name]) == 0
    with rasterio.open(fast / "mowing_count.tif") as cnt:
        np.testing.assert_array_equal(cnt.read(1), default_count)
    ens_layer = gpd.read_file(ens / "mowing_events.gpkg")
    assert layer["event_date"].tolist() == ens_layer["event_date"].tolist()
    np.testing.assert_allclose(layer["probability"], ens_layer["probability"])


def test_mowing_checks_both_default_detectors_before_any_work(
    demo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import model.mowing

    out = tmp_path / "mow"
    # a rule with --min-probability: refused, as for mowing-table
    err = refused(["mowing", "--cube", str(demo_run), "--out", str(out), "--detector", "zdrop",
                   "--min-probability", "0.5"], capsys)
    assert "--min-probability" in err and not out.exists()
    # the per-pixel default's weights missing: named, though --detector was not given
    monkeypatch.setitem(model.mowing.SHIPPED, "learned-fast", "gone.safetensors")
    err = refused(["mowing", "--cube", str(demo_run), "--out", str(out)], capsys)
    assert "learned-fast" in err and "gone.safetensors" in err and not out.exists()


def test_recipe_settings_parse_by_field_type_and_name_a_bad_one() -> None:
    from model.mowing import DetectorRecipe, with_settings

    r = with_settings(DetectorRecipe(), ["net=gru", "hidden=32", "lr=0.003", "dilations=1,3"])
    assert (r.net, r.hidden, r.lr, r.dilations) == ("gru", 32, 0.003, (1, 3))
    with pytest.raises(ValueError, match="'widht=3'"):
        with_settings(DetectorRecipe(), ["widht=3"])
    with pytest.raises(ValueError, match="'x' is not a float"):
        with_settings(DetectorRecipe(), ["lr=x"])


def test_calendar_shift_moves_each_series_dates_together_and_keeps_padding() -> None:
    from model.mowing import DetectorRecipe, shifted, with_settings

    doy = np.tile(np.arange(100, 280, 6, dtype=np.float32), (500, 1))
    doy[:, -3:] = np.nan  # padding past a season's end
    rng = np.random.default_rng(0)
    assert shifted(doy, DetectorRecipe(), rng) is doy  # no shift: the rows as given
    moved = shifted(doy, with_settings(DetectorRecipe(), ["shift=20"]), rng)
    delta = moved - doy
    assert np.isnan(moved[:, -3:]).all()
    # one move per series, the same on each of its dates, within +-20 days and both ways
    assert np.allclose(delta[:, :-3], delta[:, :1], atol=1e-4)
    assert np.abs(delta[:, 0]).max() <= 20 and delta[:, 0].min() < -15 < 15 < delta[:, 0].max()


def test_implanted_cut_is_labelled_lowers_the_series_after_it_and_spares_the_rest() -> None:
    from model.mowing import implant_cuts

    rng = np.random.default_rng(1)
    n, t = 400, 46
    doy = np.tile(np.arange(63, 63 + 6 * t, 6, dtype=np.float32), (n, 1))
    doy[:, -2:] = np.nan  # padding
    ndvi = np.clip(0.8 + rng.normal(0, 0.02, (n, t)), -1, 1).astype(np.float32)
    ndvi[rng.random((n, t)) < 0.5] = np.nan  # clouds
    ndvi[:, -2:] = np.nan
    target = np.zeros((n, t), np.float32)
    target[:, 20] = 1.0  # a reference cut on day 183 in every row
    x, y = implant_cuts(ndvi, doy, target, rng)
    new = y - target
    assert (y[:, 20] == 1).all() and set(np.unique(new)) == {0.0, 1.0}
    assert (new.sum(axis=1) == 1).all()  # room in every row: one cut each
    day = doy[new > 0]
    assert ((day >= 120) & (day <= 275)).all() and (np.abs(day - 183) >= 30).all()
    assert (np.isnan(x) == np.isnan(ndvi)).all()  # the row's clouds and padding stay
    diff = np.nan_to_num(ndvi - x)
    j = np.argmax(new, axis=1)
    for i in range(n):
        assert (diff[i, : j[i]] == 0).all()  # nothing changes before the cut
        assert (diff[i] >= 0).all()  # after it the sward is lower, regrowing
    low = diff[np.arange(n), np.minimum(j + 1, t - 3)]
    assert (low <= 0.8 - 0.3 + 0.1).all() and np.median(low) > 0.05
    # a row whose season leaves no day 30 days from its cuts gets none
    full = np.zeros((1, t), np.float32)
    full[0, ::5] = 1.0
    x1, y1 = implant_cuts(ndvi[:1], doy[:1], full, rng)
    assert (y1 == full).all() and np.array_equal(np.isnan(x1), np.isnan(ndvi[:1]))


def test_training_draws_implanted_rows_only_when_the_recipe_asks() -> None:
    import torch

    from model.mowing import DetectorRecipe, fit_member

    ndvi, _, doy_n, target, weight = _labelled(5, 16)
    small = DetectorRecipe(seeds=1, steps=4, batch=8, hidden=6)

    def trained(implant: float) -> list[torch.Tensor]:
        net = fit_member(ndvi, doy_n, target, weight,
                         DetectorRecipe(**{**small.__dict__, "implant": implant}), seed=0)
        return [p.detach() for p in net.parameters()]

    off, off_again, on = trained(0.0), trained(0.0), trained(0.5)
    assert all(torch.equal(a, b) for a, b in zip(off, off_again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(off, on, strict=True))


@pytest.mark.parametrize(("members", "hidden", "block", "directions"),
                         [(3, 32, 0, "both"), (1, 16, 7, "both"), (2, 8, 64, "both"),
                          (1, 16, 0, "forward"), (2, 8, 33, "backward")])
def test_fused_ensemble_equals_its_members_run_one_by_one(members: int, hidden: int,
                                                          block: int, directions: str) -> None:
    """Same probabilities as the nn modules, padding dates and ragged blocks included,
    for GRUs that run both ways and one way only."""
    import torch

    from model.mowing import FusedGRUEnsemble, MowingDetector, MowNet, detector_features

    torch.manual_seed(members)
    nets = [MowNet(hidden, directions) for _ in range(members)]
    for n in nets:  # trained-like weights: larger than the initialisation's
        for p in n.parameters():
            p.data.mul_(3.0)
    det = MowingDetector(nets, {"recipe": {"pos_weight": 4.0}})
    rng = np.random.default_rng(0)
    t = 46
    ndvi = rng.uniform(0.1, 0.9, (150, t)).astype(np.float32)
    ndvi[rng.random(ndvi.shape) < 0.5] = np.nan
    doy = np.tile(np.arange(60, 60 + 6 * t, 6, dtype=np.float32), (150, 1))
    doy[:20, -9:] = np.nan  # seasons that end early (padding)
    x = detector_features(ndvi, doy)
    with torch.inference_mode():
        plain = torch.stack([torch.sigmoid(n(x) - det.prior_shift) for n in nets]).mean(0)
    fused = FusedGRUEnsemble(nets, det.prior_shift, block)(x)
    assert fused.shape == plain.shape == (150, t)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), atol=2e-6)
    assert 0.01 < float(plain.std())  # probabilities that vary, not a constant
    det.fused = False
    unfused = det.predict_proba(ndvi, doy)
    det.fused = True
    np.testing.assert_allclose(det.predict_proba(ndvi, doy), unfused, atol=2e-6)
    assert det._fused is not None and det._fused.members == members


def test_fused_ensemble_refuses_mixed_members() -> None:
    from model.mowing import FusedGRUEnsemble, MowConvNet, MowNet

    with pytest.raises(ValueError, match="MowNet members of one width"):
        FusedGRUEnsemble([MowNet(16), MowNet(32)])
    with pytest.raises(ValueError, match="MowNet members of one width"):
        FusedGRUEnsemble([MowNet(16), MowConvNet()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="MowNet members of one width and direction"):
        FusedGRUEnsemble([MowNet(16), MowNet(16, directions="forward")])
    with pytest.raises(ValueError, match="GRU directions 'up'"):
        MowNet(16, directions="up")


def test_per_pixel_detector_skips_pixels_without_a_season(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import pipeline.mowing.raster as raster

    rng = np.random.default_rng(5)
    t = 36
    days, doy = grid_axes(TimeGrid.covering("2023-04-01", "2023-10-31"))
    season = 0.3 + 0.5 * np.exp(-(((np.arange(t) * 6 - 100) / 50.0) ** 2))
    season = np.where(np.arange(t) >= 14, season - 0.3 * np.exp(-(np.arange(t) - 14) / 3.0),
                      season)  # a cut in bin 14
    flat = 0.8 + rng.normal(0, 0.01, (3, 4, t))  # a roof or a stand of conifers
    ndvi = np.concatenate([np.broadcast_to(season, (3, 4, t)), flat]).astype(np.float32)
    ndvi[..., 1::3] = np.nan  # a third of the bins cloudy
    seen: list[int] = []
    real = raster.detect_rows

    def spy(rows: np.ndarray, *args: object, **kw: object) -> tuple:
        seen.append(len(rows))
        return real(rows, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(raster, "detect_rows", spy)
    cuts = raster._detect_block(ndvi, np.full_like(ndvi, np.nan), days, doy, "learned-fast",
                                None)
    assert seen == [12]  # only the seasonal pixels reach the detector
    assert np.isnan(cuts[3:]).all()
    assert np.isfinite(cuts[:3]).any(axis=-1).all()  # the cut series are detected
    both, _ = real(ndvi.reshape(-1, t), None, days, doy, "learned-fast", None)
    np.testing.assert_array_equal(cuts[:3].reshape(-1, cuts.shape[-1]), both[:12])


def test_detector_features_channels_and_padding() -> None:
    """Each channel as CHANNELS says; dates past a row's season are zero on every one."""
    from model.mowing import CHANNELS, detector_features

    ndvi = np.array([[0.2, np.nan, np.nan, 0.5, np.inf, 0.6]], np.float32).repeat(2, axis=0)
    doy = np.tile(np.arange(100, 136, 6, dtype=np.float32), (2, 1))
    doy[1, -2:] = np.nan  # the second row's season ends two dates early
    x = detector_features(ndvi, doy).numpy()
    assert x.shape == (2, len(CHANNELS), 6)
    row = x[0]
    np.testing.assert_allclose(row[0], [0.2, 0, 0, 0.5, 0, 0.6])  # observed NDVI, 0 = none
    np.testing.assert_array_equal(row[1], [1, 0, 0, 1, 0, 1])  # clear mask (inf is not)
    np.testing.assert_allclose(row[2], [0.2, 0.3, 0.4, 0.5, 0.55, 0.6], atol=1e-6)  # linear
    np.testing.assert_allclose(row[3], [0, 0.2, 0.4, 0, 0.2, 0])  # steps since / 5
    np.testing.assert_allclose(row[4], [0, 0.4, 0.2, 0, 0.2, 0])  # steps to next / 5
    phase = 2 * np.pi * doy[0] / 365.25
    np.testing.assert_allclose(row[5], np.sin(phase), atol=1e-6)
    np.testing.assert_allclose(row[6], np.cos(phase), atol=1e-6)
    np.testing.assert_array_equal(row[7], 1)
    assert (x[1][:, -2:] == 0).all()  # padding: zero input everywhere
    np.testing.assert_allclose(x[1][:, :-2], row[:, :-2])


def test_detector_features_of_shared_dates_equal_per_row_dates() -> None:
    """Dates shared by every row, given as (T,) or broadcast to (N, T), give the same
    input bit for bit as the same dates written out row by row."""
    import torch

    from model.mowing import detector_features

    rng = np.random.default_rng(3)
    ndvi = rng.uniform(0.1, 0.9, (50, 36)).astype(np.float32)
    ndvi[rng.random(ndvi.shape) < 0.5] = np.nan
    doy = np.arange(90, 306, 6, dtype=np.float32)
    rows = np.tile(doy, (50, 1))
    want = detector_features(ndvi, rows)
    assert torch.equal(detector_features(ndvi, doy), want)
    assert torch.equal(detector_features(ndvi, np.broadcast_to(doy, ndvi.shape)), want)
    rows[::2, -3:] = np.nan  # padding in some rows: per-row dates, still row by row
    padded = detector_features(ndvi, rows)
    assert torch.equal(padded[1::2], want[1::2]) and (padded[::2, :, -3:] == 0).all()


def test_chunked_learned_detection_shares_the_cores_among_its_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``write_cut_days`` runs one chunk per core: a learned detector's torch gets the
    cores shared out among those threads (one each when there are as many threads as
    cores), and the process's setting is back as it was afterwards."""
    import os

    import torch
    import xarray as xr

    from pipeline.mowing import raster

    grid = TimeGrid.covering("2023-04-01", "2023-10-31")
    rng = np.random.default_rng(2)
    ndvi = rng.uniform(0.2, 0.8, (grid.count, 6, 6)).astype(np.float32)
    cube = xr.Dataset({"ndvi": (("time", "y", "x"), ndvi)},
                      coords={"time": grid.starts.values, "y": np.arange(6, 0, -1.0),
                              "x": np.arange(6.0)}).chunk({"time": -1, "y": 3, "x": 3})
    threads: list[int] = []
    detect_block = raster._detect_block

    def spy(*args, **kw):
        threads.append(torch.get_num_threads())
        return detect_block(*args, **kw)

    monkeypatch.setattr(raster, "_detect_block", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        raster.write_cut_days(cube, tmp_path / "cuts.zarr", "learned-fast", series="observed")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    workers = os.cpu_count() or 1
    assert threads == [max(1, (os.cpu_count() or 1) // workers)] * 4


def test_decode_reads_each_rows_own_days() -> None:
    """(N, T) days, padded with NaN past a row's season, decode each row as that row's
    (T,) days alone would."""
    rng = np.random.default_rng(8)
    p = np.round(rng.random((200, 30)) ** 3, 1)
    days = np.tile(np.arange(30) * 6.0, (200, 1)) + rng.integers(0, 400, (200, 1))
    ends = rng.integers(5, 31, 200)
    days[np.arange(30)[None] >= ends[:, None]] = np.nan
    p[np.isnan(days)] = 0
    dates, probs = decode(p, days, 0.3, 30.0)
    for r in range(200):
        d1, p1 = decode(p[r:r + 1, :ends[r]], days[r, :ends[r]], 0.3, 30.0)
        np.testing.assert_array_equal(dates[r], d1[0])
        np.testing.assert_array_equal(probs[r], p1[0])
    assert np.isfinite(dates).sum() > 200


def test_sf_saw_test_counts_every_group_of_the_sf_card_split() -> None:
    """Plots trained or calibrated on, with or without Sentinel-1, all count as seen."""
    from types import SimpleNamespace

    from pipeline.mowing.reference import Split

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mowing

    test = Split("t", [("A1", 2022), ("A2", 2022), ("B1", 2022), ("C1", 2023)],
                 np.zeros((4, 3)), {})
    split = {"s1s2_plots": {"train": ["A1"], "calib": ["A2"], "eval": ["C1"]},
             "s2_only_plots": {"train": ["B1"]}, "rule": "by plot id"}
    saw = bench_mowing.sf_saw_test(test, SimpleNamespace(card={"training": {"split": split}}))
    assert "3 of the 4 test parcels" in saw and "not held out" in saw
    none = bench_mowing.sf_saw_test(test, SimpleNamespace(card={}))
    assert none.startswith("SF never saw")
