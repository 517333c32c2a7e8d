"""Segments from the season's NDVI: composites, Felzenszwalb zones, ``run --segments``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.cube import open_cube
from pipeline.segments import make_segments, seasonal_composites, segment_purity
from tests.conftest import END, START, refused


def _fields_cube(seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """Four rectangular fields with their own NDVI course, noise and 40 % clouds."""
    rng = np.random.default_rng(seed)
    h, w, t = 40, 48, 12
    truth = np.zeros((h, w), np.int32)
    truth[:20, :24], truth[:20, 24:], truth[20:, :30], truth[20:, 30:] = 1, 2, 3, 4
    course = {1: np.linspace(0.2, 0.8, t), 2: np.linspace(0.8, 0.3, t),
              3: 0.5 + 0.3 * np.sin(np.linspace(0, 3, t)), 4: np.full(t, 0.15)}
    ndvi = np.stack([np.vectorize(lambda f, d=d: course[f][d])(truth) for d in range(t)])
    ndvi = (ndvi + rng.normal(0, 0.02, ndvi.shape)).astype(np.float32)
    ndvi[rng.random(ndvi.shape) < 0.4] = np.nan
    cube = xr.Dataset({"ndvi": (("time", "y", "x"), ndvi),
                       "aoi_mask": (("y", "x"), np.ones((h, w), np.uint8))},
                      coords={"y": np.arange(h)[::-1] * 10.0, "x": np.arange(w) * 10.0})
    return cube.chunk({"time": -1, "y": 16, "x": 16}), truth


def test_composites_are_chunk_by_chunk_medians() -> None:
    cube, _ = _fields_cube()
    comp = seasonal_composites(cube, 3)
    whole = seasonal_composites(cube.compute(), 3)
    np.testing.assert_array_equal(comp, whole)
    with np.errstate(all="ignore"):
        ref = np.nanmedian(cube["ndvi"].values[:4], axis=0)
    ok = np.isfinite(ref)
    np.testing.assert_allclose(comp[0][ok], ref[ok])
    assert np.isfinite(comp).all()  # a pixel clear in no part of one third takes its season


def test_segments_follow_the_fields() -> None:
    cube, truth = _fields_cube()
    labels = make_segments(seasonal_composites(cube, 6), np.ones(truth.shape, bool))
    m = segment_purity(labels, truth)
    assert m["purity"] > 0.95 and m["segments"] >= 4
    side = round(np.sqrt(m["mean_pixels"]))  # squares of the same size are the floor
    rows, cols = np.indices(truth.shape)
    assert m["purity"] > segment_purity((rows // side) * 100 + cols // side + 1, truth)[
        "purity"] + 0.03
    assert labels.min() == 1 and labels.max() == np.unique(labels).size
    inside = np.ones(truth.shape, bool)
    inside[:, :5] = False
    cut = make_segments(seasonal_composites(cube, 6), inside)
    assert (cut[~inside] == 0).all() and (cut[inside] > 0).all()
    assert cut.max() == np.unique(cut[inside]).size


def test_purity_of_a_known_labelling() -> None:
    truth = np.array([[1, 1, 2, 2]] * 2)
    labels = np.array([[1, 1, 1, 2]] * 2)  # segment 1 spans both fields
    m = segment_purity(labels, truth)
    assert m["segments"] == 2 and m["mean_pixels"] == 4
    assert m["purity"] == pytest.approx((4 + 2) / 8)
    assert m["pure_share"] == 0.5


def test_run_with_segments_stores_zones_in_the_cube(
    demo_cache: Path, small_aoi: Path, tmp_path: Path
) -> None:
    from pipeline.__main__ import main

    out = tmp_path / "out"
    argv = ["run", "-q", "--aoi", str(small_aoi), "--cache", str(demo_cache), "--out",
            str(out), "--start", START, "--end", END, "--method", "linear", "--scheduler",
            "threads", "--segments"]
    assert main(argv) == 0
    cube = open_cube(out / "cube.zarr")
    zone, core = cube["zone"].values, cube["zone_core"].values
    inside = cube["aoi_mask"].values > 0
    assert (zone[inside] > 0).all() and (zone[~inside] == 0).all()
    assert ((core == 0) | (core == zone)).all()
    assert cube["zone"].attrs["zones"] == "segments"
    assert cube["zone"].attrs["n_zones"] == zone.max()
    record = json.loads((out / "run.json").read_text())
    assert "parcels.parquet" in record["products_left_out"]
    assert not (out / "parcels.csv").exists()
    assert main(argv) == 0  # a rerun resumes (segments included) and keeps the zones
    np.testing.assert_array_equal(open_cube(out / "cube.zarr")["zone"].values, zone)


def test_segments_and_parcels_together_are_refused(
    small_aoi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parcels = tmp_path / "p.geojson"
    parcels.write_text('{"type": "FeatureCollection", "features": []}')
    err = refused(["run", "--aoi", str(small_aoi), "--out", str(tmp_path / "o"), "--segments",
                   "--parcels", str(parcels)], capsys)
    assert "--segments and --parcels" in err
