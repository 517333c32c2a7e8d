"""fill-table: round trip on a real plot series and one InputError per bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.filltable import fill_table

#: Ten real plots of 2022 in the slovak-grassland layout (see tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data" / "slovak-grassland"


def _table(n_ids: int = 3, t: int = 30, seed: int = 0, orbit: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_ids):
        start = pd.Timestamp("2023-04-03") + pd.Timedelta(days=int(rng.integers(0, 40)))
        for j in range(t):
            nd = 0.3 + 0.5 * np.sin(np.pi * j / t) + rng.normal(0, 0.02)
            rows.append({
                "id": f"p{k}",
                "date": (start + pd.Timedelta(days=6 * j)).strftime("%Y-%m-%d"),
                "ndvi": "" if rng.random() < 0.4 else f"{nd:.4f}",
                "vv": "" if j % 2 else f"{rng.normal(-11, 1):.3f}",
                "vh": "" if j % 2 else f"{rng.normal(-18, 1):.3f}",
                **({"orbit": "descending" if k % 2 else "ascending"} if orbit else {}),
            })
    return pd.DataFrame(rows)


def _run(tmp_path: Path, df: pd.DataFrame) -> pd.DataFrame:
    src, dst = tmp_path / "in.csv", tmp_path / "out" / "filled.csv"
    df.to_csv(src, index=False)
    fill_table(src, dst)
    assert [p.name for p in dst.parent.iterdir()] == ["filled.csv"]  # no temp files left
    return pd.read_csv(dst)


@pytest.mark.parametrize("orbit", [False, True])
def test_round_trip(tmp_path: Path, orbit: bool) -> None:
    df = _table(orbit=orbit)
    df.loc[df["id"] == "p2", "ndvi"] = ""  # a series without any observation
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # any row order
    out = _run(tmp_path, df)
    assert list(out.columns) == ["id", "date", "ndvi_filled", "ndvi_std"]
    assert len(out) == len(df)
    assert (out["id"] == df["id"]).all() and (out["date"] == df["date"]).all()
    has = out["id"] != "p2"
    assert out.loc[has, ["ndvi_filled", "ndvi_std"]].notna().all().all()
    assert out.loc[~has, ["ndvi_filled", "ndvi_std"]].isna().all().all()
    obs = df["ndvi"] != ""
    np.testing.assert_allclose(out.loc[obs, "ndvi_filled"], df.loc[obs, "ndvi"].astype(float),
                               atol=1e-4)


def test_real_plot_series(tmp_path: Path) -> None:
    from model.data import read_plot_series

    s = read_plot_series(DATA).take(np.arange(2))
    rows = []
    for i in range(2):
        for j in range(s.ndvi.shape[1]):
            date = s.start[i] + np.timedelta64(6 * j, "D")
            rows.append({"id": s.plot[i] + str(s.year[i]), "date": str(date),
                         "ndvi": s.ndvi[i, j], "vv": s.vv[i, j, 0], "vh": s.vh[i, j, 0]})
    out = _run(tmp_path, pd.DataFrame(rows))
    assert out["ndvi_filled"].between(-1, 1).all() and (out["ndvi_std"] > 0).all()


def test_table_without_radar_columns_is_sentinel2_only(tmp_path: Path) -> None:
    """No vv,vh columns: filled as the same table with every radar cell empty."""
    df = _table()
    (tmp_path / "s2").mkdir()
    (tmp_path / "empty").mkdir()
    s2 = _run(tmp_path / "s2", df.drop(columns=["vv", "vh"]))
    empty = _run(tmp_path / "empty", df.assign(vv="", vh=""))
    pd.testing.assert_frame_equal(s2, empty)
    assert s2["ndvi_filled"].notna().all()


BAD = {
    "missing column": lambda df: df.drop(columns="ndvi"),
    "bad date": lambda df: df.assign(date=df["date"].where(df.index != 4, "4th of May")),
    "not 6 days": lambda df: df[df.index != 5],
    "repeated date": lambda df: pd.concat([df, df.iloc[[2]]]),
    "ndvi range": lambda df: df.assign(ndvi=df["ndvi"].where(df.index != 3, "1.7")),
    "ndvi text": lambda df: df.assign(ndvi=df["ndvi"].where(df.index != 3, "cloud")),
    "vv linear": lambda df: df.assign(vv=df["vv"].where(df.index != 0, "120")),
    "orbit": lambda df: df.assign(orbit="sideways"),
    "empty id": lambda df: df.assign(id=df["id"].where(df.index != 1, "")),
    "no rows": lambda df: df.iloc[:0],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_input_error(tmp_path: Path, case: str) -> None:
    df = BAD[case](_table(n_ids=2, t=12))
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    with pytest.raises(InputError) as err:
        fill_table(src, tmp_path / "out.csv")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.csv").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        fill_table(tmp_path / "nope.csv", tmp_path / "out.csv")


def test_dates_reach_the_model_as_day_of_year(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from model import SFModel

    seen: list[np.ndarray] = []
    original = SFModel.predict

    def spy(self: SFModel, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        seen.append(np.asarray(kwargs["doy"]))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SFModel, "predict", spy)
    df = _table(n_ids=1, t=5)
    _run(tmp_path, df)
    want = pd.to_datetime(df["date"]).dt.day_of_year.to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(seen[0], want[None, :])
