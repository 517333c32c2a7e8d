"""SF network and inference API: shapes, masking, no pickle, missing S1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import SFModel, default_weights, load_model
from model.sf import N_FEATURES, SFNet, build_features

torch.set_num_threads(1)


def _inputs(n: int = 16, t: int = 36, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    season = 0.3 + 0.5 * np.sin(np.linspace(0, np.pi, t))[None, :]
    ndvi = (season + rng.normal(0, 0.03, (n, t))).astype(np.float32)
    ndvi[rng.random((n, t)) < 0.5] = np.nan
    vv = (rng.normal(-11, 1, (n, t, 2))).astype(np.float32)
    vh = (rng.normal(-18, 1, (n, t, 2))).astype(np.float32)
    vv[:, ::2] = np.nan
    vh[:, ::2] = np.nan
    return ndvi, vv, vh


@pytest.fixture(scope="module")
def sf() -> SFModel:
    return load_model()


def _random_model() -> SFModel:
    torch.manual_seed(0)
    return SFModel(SFNet(), {})


@pytest.mark.parametrize("t", [1, 2, 29, 36, 61])
def test_forward_shapes_any_length(t: int) -> None:
    ndvi, vv, vh = _inputs(5, t)
    ndvi[:, 0] = 0.5
    feats = build_features(torch.from_numpy(ndvi), torch.from_numpy(vv), torch.from_numpy(vh))
    assert feats.shape == (t, 5, N_FEATURES)
    mean, std = SFNet()(feats)
    assert mean.shape == std.shape == (5, t)
    assert torch.isfinite(mean).all() and (std > 0).all()


def test_gap_values_never_leak(sf: SFModel) -> None:
    ndvi, vv, vh = _inputs()
    gaps = np.isnan(ndvi)
    for model in (sf, _random_model()):
        ref_m, ref_s = model.predict(ndvi, vv, vh)
        for fill in (np.inf, -np.inf, np.float32(np.nan)):
            other = np.where(gaps, fill, ndvi).astype(np.float32)
            m, s = model.predict(other, vv, vh)
            np.testing.assert_array_equal(m, ref_m)
            np.testing.assert_array_equal(s, ref_s)
        # S1 gaps do not leak either.
        vv2 = np.where(np.isnan(vv), np.inf, vv).astype(np.float32)
        np.testing.assert_array_equal(model.predict(ndvi, vv2, vh)[0], ref_m)


def test_predict_conventions(sf: SFModel) -> None:
    ndvi, vv, vh = _inputs()
    ndvi[3] = np.nan
    mean, std = sf.predict(ndvi, vv, vh)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == ndvi.shape
    assert np.isnan(mean[3]).all() and np.isnan(std[3]).all()
    ok = np.isfinite(ndvi)
    np.testing.assert_array_equal(mean[ok], ndvi[ok])  # observed dates kept
    rows = np.arange(len(ndvi)) != 3
    assert np.isfinite(mean[rows]).all() and (std[rows] > 0).all()
    assert (np.abs(mean[rows]) <= 1).all()
    small = sf.predict(ndvi, vv, vh, batch_size=5)
    np.testing.assert_allclose(small[0], mean, atol=1e-6)


def test_missing_s1_and_orbit_direction(sf: SFModel) -> None:
    ndvi, vv, vh = _inputs()
    none = np.full_like(vv, np.nan)
    m0, s0 = sf.predict(ndvi, none, none)
    assert np.isfinite(m0).all() and np.isfinite(s0).all()
    # Only one direction present: the same series in either slot gives the same output.
    asc_only_vv, asc_only_vh = vv.copy(), vh.copy()
    asc_only_vv[..., 1] = np.nan
    asc_only_vh[..., 1] = np.nan
    m1, _ = sf.predict(ndvi, asc_only_vv, asc_only_vh)
    m2, _ = sf.predict(ndvi, asc_only_vv[..., ::-1].copy(), asc_only_vh[..., ::-1].copy())
    np.testing.assert_allclose(m1, m2, atol=1e-6)


def test_shipped_weights_load_without_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_weights()
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    assert "rnn.weight_hh_l0" in header
    assert path.stat().st_size < 2_000_000

    def _no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle-based torch.load used")

    monkeypatch.setattr(torch, "load", _no_pickle)
    sf = load_model(path)
    card = json.loads(Path(path).with_suffix(".json").read_text())
    assert sf.card == card
    assert card["architecture"]["parameters"] == sum(p.numel() for p in sf.net.parameters())
    assert card["calibration"]["std_scale"] > 0
    assert card["training"]["split"]["s1s2_plots"]["eval"]


def test_shipped_model_beats_linear_on_smooth_season(sf: SFModel) -> None:
    # A sanity check, not the benchmark: a long spring gap in a smooth season.
    t = np.arange(36)
    truth = (0.25 + 0.55 / (1 + np.exp(-(t - 10) / 2.5))).astype(np.float32)[None, :]
    ndvi = truth.copy()
    ndvi[0, 5:14] = np.nan
    none = np.full((1, 36, 2), np.nan, np.float32)
    mean, _ = sf.predict(ndvi, none, none)
    assert np.isfinite(mean).all()
    assert np.abs(mean - truth).max() < 0.25


def test_evaluate_writes_report_on_any_folder(tmp_path: Path) -> None:
    """The benchmark protocol runs on a small folder of the slovak-grassland layout."""
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slovak-grassland"
    if not data.is_dir():
        pytest.skip("shared data folder not present")
    import pandas as pd

    from pipeline.evaluate import run_evaluation

    for sensor in ("S1", "S2"):
        (tmp_path / "d" / "train" / sensor).mkdir(parents=True)
        src = sorted((data / "train" / sensor).glob("*2022.csv"))[0]
        df = pd.read_csv(src)
        df = df[df["PLOTID"].isin(["LR1", "LR2", "LR3"])]
        # Renamed plots stand for another region: every plot is evaluated.
        df.assign(PLOTID="XX" + df["PLOTID"]).to_csv(
            tmp_path / "d" / "train" / sensor / f"plots_{sensor}.csv", index=False
        )
    result = run_evaluation(tmp_path / "d", tmp_path / "report", repeats=2)
    assert result["plots"].startswith("all plots")
    assert set(result["summary"]) == {"6d", "12-18d", "24-30d", "36-60d"}
    for name in ("metrics.json", "report.md", "samples.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_plot_tables_use_the_pipeline_time_grid() -> None:
    from model.data import DEFAULT_EPOCH
    from pipeline.timegrid import EPOCH, STEP_DAYS

    assert DEFAULT_EPOCH == EPOCH and STEP_DAYS == 6
