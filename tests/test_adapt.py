"""Test-time adaptation (model.adapt): it fits a regime the shipped weights do not know,
leaves the shipped model untouched, is deterministic, skips small tables, and reaches
fill-table, the CLI and the CV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model import load_model
from model.adapt import MIN_SERIES, adapt
from model.data import PlotSeries
from pipeline.__main__ import main as cli
from pipeline.filltable import fill_table


def _regime(n: int, seed: int = 0) -> PlotSeries:
    """Two green-ups a season with sharp cuts: unlike any training series' shape."""
    rng = np.random.default_rng(seed)
    t = 36
    j = np.arange(t)
    phase = rng.uniform(0, 0.3, (n, 1))
    nd = 0.2 + 0.6 * np.abs(np.sin(2 * np.pi * j / 18 + phase)) + rng.normal(0, 0.01, (n, t))
    nd = nd.astype(np.float32)
    nd[rng.random((n, t)) < 0.4] = np.nan
    s1 = np.full((n, t, 2), np.nan, np.float32)
    return PlotSeries(np.array([f"p{i}" for i in range(n)]), np.full(n, 2023),
                      np.full(n, np.datetime64("2023-04-01")), nd, s1, s1.copy())


def test_adaptation_fits_a_new_regime_and_leaves_the_shipped_model_alone() -> None:
    sf = load_model()
    before = {k: v.clone() for k, v in sf.net.state_dict().items()}
    series = _regime(60)
    model, report = adapt(sf, series, steps=120)
    assert report.kept and report.n_holdout == 12
    assert report.holdout_mae_adapted < 0.8 * report.holdout_mae_shipped
    assert 0.8 < report.coverage90_holdout < 1.0
    assert model is not sf and model.card["adaptation"]["kept"] is True
    assert all(torch.equal(before[k], v) for k, v in sf.net.state_dict().items())
    again, _ = adapt(sf, series, steps=120)
    a = model.predict(series.ndvi, series.vv, series.vh, doy=series.doy())
    b = again.predict(series.ndvi, series.vv, series.vh, doy=series.doy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_too_few_series_keep_the_shipped_model() -> None:
    sf = load_model()
    model, report = adapt(sf, _regime(MIN_SERIES - 1), steps=5)
    assert model is sf and not report.kept and "fewer than" in report.reason


def _table(n: int) -> pd.DataFrame:
    s = _regime(n, seed=1)
    dates = pd.date_range("2023-04-04", periods=s.ndvi.shape[1], freq="6D")
    return pd.DataFrame([{"id": s.plot[i], "date": d.strftime("%Y-%m-%d"),
                          "ndvi": "" if np.isnan(s.ndvi[i, k]) else f"{s.ndvi[i, k]:.4f}",
                          "vv": "", "vh": ""}
                         for i in range(n) for k, d in enumerate(dates)])


def test_fill_table_adapts_unless_told_not_to(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    _table(40).to_csv(src, index=False)
    report = fill_table(src, tmp_path / "a.csv", adapt_steps=60)
    assert report is not None and report.n_series == 40 and report.n_holdout == 8
    assert fill_table(src, tmp_path / "b.csv", adapt=False) is None
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    obs = a["ndvi_filled"].notna() & pd.read_csv(src)["ndvi"].notna()
    np.testing.assert_allclose(a.loc[obs, "ndvi_filled"], b.loc[obs, "ndvi_filled"])
    if report.kept:  # the fine-tuned network fills the gaps differently
        assert not np.allclose(a["ndvi_filled"], b["ndvi_filled"])


@pytest.mark.parametrize("flag", [[], ["--no-adapt"]])
def test_cli_says_what_adaptation_did(tmp_path: Path, flag: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    _table(5).to_csv(src, index=False)
    assert cli(["fill-table", "--input", str(src), "--output", str(tmp_path / "o.csv"),
                *flag]) == 0
    out = capsys.readouterr().out
    assert ("SF not adapted (5 series" in out) == (not flag)
