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
    assert card["training"]["split"]["s1s2_plots"]["calib"]
    assert card["metrics"]["cross_domain"]["folds"]


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
    from pipeline.evaluate import run_evaluation

    # Renamed plots stand for another region: every plot is evaluated.
    _small_plot_folder(tmp_path / "d", n_plots=3, prefix="XX")
    result = run_evaluation(tmp_path / "d", tmp_path / "report", repeats=2)
    assert result["plots"].startswith("all plots")
    assert set(result["summary"]) == {"6d", "12-18d", "24-30d", "36-60d"}
    for name in ("metrics.json", "report.md", "samples.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    # The adapted variant (what fill-table does) is scored and reported; three plots
    # are too few to adapt on, which the report says.
    assert set(result["adapted"]["summary"]) == set(result["summary"])
    assert "SF adapted" in (tmp_path / "report" / "report.md").read_text()
    assert all("fewer than" in a["reason"] for a in result["adapted"]["adaptation"])


def test_plot_tables_use_the_pipeline_time_grid() -> None:
    from model.data import DEFAULT_EPOCH
    from pipeline.timegrid import EPOCH, STEP_DAYS

    assert DEFAULT_EPOCH == EPOCH and STEP_DAYS == 6


def _doy_model() -> SFModel:
    torch.manual_seed(0)
    net = SFNet(doy=True)
    with torch.no_grad():  # make the date matter visibly in an untrained network
        net.s1_conv.proj.weight[:, -2:] += 1.0
    return SFModel(net, {})


@pytest.mark.parametrize("t", [1, 29, 61])
def test_doy_input_shapes_and_none(t: int) -> None:
    ndvi, vv, vh = _inputs(5, t)
    ndvi[:, 0] = 0.5
    doy = (100.0 + 6 * np.arange(t)).astype(np.float32) % 365
    model = _doy_model()
    m_none, s_none = model.predict(ndvi, vv, vh)  # date unknown: still fills
    assert m_none.shape == s_none.shape == (5, t)
    assert np.isfinite(m_none).all() and (s_none > 0).all()
    m_1d, s_1d = model.predict(ndvi, vv, vh, doy=doy)
    m_2d, s_2d = model.predict(ndvi, vv, vh, doy=np.tile(doy, (5, 1)))
    np.testing.assert_array_equal(m_1d, m_2d)
    np.testing.assert_array_equal(s_1d, s_2d)
    # NaN dates are unknown dates.
    m_nan, _ = model.predict(ndvi, vv, vh, doy=np.full(t, np.nan, np.float32))
    np.testing.assert_array_equal(m_nan, m_none)
    with pytest.raises(ValueError, match="doy"):
        model.predict(ndvi, vv, vh, doy=np.zeros(t + 1, np.float32))


def test_doy_matters_only_to_networks_built_with_it() -> None:
    ndvi, vv, vh = _inputs()
    spring = np.full(ndvi.shape[1], 120.0, np.float32)
    autumn = np.full(ndvi.shape[1], 300.0, np.float32)
    with_doy = _doy_model()
    gaps = np.isnan(ndvi) & np.isfinite(ndvi).any(axis=1, keepdims=True)
    a = with_doy.predict(ndvi, vv, vh, doy=spring, edges="model")[0]
    b = with_doy.predict(ndvi, vv, vh, doy=autumn, edges="model")[0]
    assert np.abs(a - b)[gaps].max() > 1e-4
    legacy = _random_model()
    np.testing.assert_array_equal(legacy.predict(ndvi, vv, vh, doy=spring)[0],
                                  legacy.predict(ndvi, vv, vh)[0])
    assert "doy" not in legacy.net.config and with_doy.net.config["doy"] is True


def test_doy_features_are_a_unit_circle_or_zero() -> None:
    from model.sf import doy_features

    like = torch.zeros(2, 3)
    s, c = doy_features(torch.tensor([1.0, float("nan"), 183.0]), like)
    assert s.shape == c.shape == (2, 3)
    np.testing.assert_allclose((s**2 + c**2)[:, [0, 2]].numpy(), 1.0, atol=1e-6)
    assert (s[:, 1] == 0).all() and (c[:, 1] == 0).all()


def test_fill_block_passes_cube_dates_to_the_filler() -> None:
    from pipeline.fill import LinearFiller, cube_doy, fill_block

    seen: dict[str, object] = {}

    class Dated:
        name = "dated"

        def fill(self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray,
                 doy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
            seen["doy"] = doy
            return ndvi, ndvi

    times = np.array(["2023-01-01", "2023-12-29"], dtype="datetime64[ns]")
    doy = cube_doy(times)
    assert doy is not None
    np.testing.assert_array_equal(doy, [4.0, 1.0])  # bin centres: +3 days (2024-01-01)
    assert cube_doy(np.arange(2)) is None
    ndvi = np.full((3, 2), 0.5, np.float32)
    s1 = np.full((3, 2), np.nan, np.float32)
    fill_block(Dated(), ndvi, s1, s1, s1, s1, doy=doy)
    np.testing.assert_array_equal(np.asarray(seen["doy"]), doy)
    fill_block(Dated(), ndvi, s1, s1, s1, s1)
    assert seen["doy"] is None
    m, _ = fill_block(LinearFiller(), ndvi, s1, s1, s1, s1, doy=doy)
    np.testing.assert_array_equal(m, ndvi)
    assert LinearFiller().fill(ndvi, s1[..., None], s1[..., None])[0].shape == (3, 2)


def test_plot_series_doy_is_bin_centre() -> None:
    from model.data import bin_doy

    start = np.array(["2021-12-31", "2023-04-01"], dtype="datetime64[D]")
    doy = bin_doy(start, 3)
    np.testing.assert_array_equal(doy, [[3.0, 9.0, 15.0], [94.0, 100.0, 106.0]])


def test_demo_series_pool_and_batch_mix(tmp_path: Path) -> None:
    from model.train import Batches, Recipe, read_demo_series

    ndvi, vv, vh = _inputs(n=20, t=36)
    path = tmp_path / "demo.npz"
    np.savez(path, ndvi=ndvi, vv=vv, vh=vh, start=np.datetime64("2023-04-01", "D"))
    demo = read_demo_series(path, pad=6)
    assert demo.ndvi.shape == (20, 48) and demo.vv.shape == (20, 48, 2)
    assert np.isnan(demo.ndvi[:, :6]).all() and np.isnan(demo.ndvi[:, -6:]).all()
    np.testing.assert_array_equal(demo.ndvi[:, 6:42], ndvi)
    # bin centre of the first season date: 2023-04-04 = day 94
    assert demo.doy()[0, 6] == 94.0
    r = Recipe(batch=40, real_frac=0.9, demo_frac=0.25, min_len=24, max_len=48)
    b = Batches([], r, np.random.default_rng(0), demo)
    inp, vv_b, vh_b, target, w, doy = b.draw()
    assert inp.shape[0] == 40 and inp.shape == target.shape == w.shape == doy.shape
    assert vv_b.shape == vh_b.shape == (*inp.shape, 2)


def _small_plot_folder(root: Path, n_plots: int = 10, prefix: str = "") -> Path:
    """A slovak-grassland layout folder with the first ``n_plots`` real plots of 2022.

    ``prefix`` is put before every plot id (a model card then does not know them).
    """
    data = Path(__file__).resolve().parent / "data" / "slovak-grassland"  # shipped slice
    import pandas as pd

    for sensor in ("S1", "S2"):
        (root / "train" / sensor).mkdir(parents=True)
        src = sorted((data / "train" / sensor).glob("*2022.csv"))[0]
        df = pd.read_csv(src)
        keep = sorted(df["PLOTID"].unique())[:n_plots]
        df = df[df["PLOTID"].isin(keep)]
        df.assign(PLOTID=prefix + df["PLOTID"]).to_csv(
            root / "train" / sensor / f"plots_{sensor}.csv", index=False)
    return root


def test_training_weight_average_and_s2_only_switch(tmp_path: Path) -> None:
    """``ema`` ships the running average of the weights; ``s2_only=0`` uses no camera series."""
    from model.train import Recipe, train

    data = _small_plot_folder(tmp_path / "d")
    base = {"steps": 30, "batch": 16, "min_len": 24, "max_len": 30, "s2_only": 0}
    torch.manual_seed(0)
    init = SFNet(16, 8, 16, doy=True).state_dict()
    cards, states = {}, {}
    for name, ema in (("last", 0.0), ("avg", 0.999999)):
        out = tmp_path / name / "sf.safetensors"
        cards[name] = train(data, out, Recipe(ema=ema, **base))
        states[name] = load_model(out).net.state_dict()
    # an average that barely moves stays at the initial weights; the last iterate does not
    for k, v in init.items():
        assert torch.allclose(states["avg"][k], v, atol=1e-4), k
    assert max(float((states["last"][k] - v).abs().max()) for k, v in init.items()) > 1e-3
    assert cards["avg"]["training"]["recipe"]["ema"] == 0.999999
    assert cards["last"]["training"]["split"]["s2_only_plots"] == {"train": [], "calib": []}


@pytest.mark.parametrize("akima", [False, True])
def test_no_s1_features_equal_all_missing_s1(akima: bool) -> None:
    """``vv=vh=None`` (the fast path for a network that reads no Sentinel-1) gives the
    very channels an all-NaN Sentinel-1 input gives, bit for bit."""
    ndvi, vv, vh = _inputs(9, 36)
    doy = torch.arange(36, dtype=torch.float32) * 6 + 93
    nan = torch.full(vv.shape, float("nan"))
    ref = build_features(torch.from_numpy(ndvi), nan, nan, doy, akima=akima)
    fast = build_features(torch.from_numpy(ndvi), None, None, doy, akima=akima)
    assert torch.equal(fast, ref)
    # and a real Sentinel-1 input does not take that path
    assert not torch.equal(
        build_features(torch.from_numpy(ndvi), torch.from_numpy(vv), torch.from_numpy(vh),
                       doy, akima=akima), ref)


def test_rows_without_s1_fill_as_with_s1_withheld() -> None:
    """A network that reads Sentinel-1 fills rows that have none exactly as it fills
    them with the radar withheld, whether all rows of a batch lack it or only some."""
    model = _random_model()
    ndvi, vv, vh = _inputs(12, 36)
    vv[:6] = np.nan
    vh[:6] = np.nan
    mixed_m, mixed_s = model.predict(ndvi, vv, vh)
    alone_m, alone_s = model.predict(ndvi[:6], vv[:6], vh[:6])
    model.use_s1 = False
    off_m, off_s = model.predict(ndvi[:6], vv[:6], vh[:6])
    np.testing.assert_allclose(mixed_m[:6], off_m, atol=1e-6)
    np.testing.assert_array_equal(alone_m, off_m)
    np.testing.assert_array_equal(alone_s, off_s)
    np.testing.assert_allclose(mixed_s[:6], off_s, rtol=1e-6)
