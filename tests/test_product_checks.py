"""Products are published only after their checks; mowing refuses an unfinished or empty fill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.__main__ import main
from pipeline.checks import check_filled_tile
from pipeline.errors import ProductError
from tests import stacfixtures as fx
from tests.conftest import refused, write_aoi


def _run(catalog: Path, tmp: Path, out: Path) -> list[str]:
    w, s, e, n = fx.tile_lonlat_bounds(margin_m=-60)
    aoi = write_aoi(tmp / "aoi.geojson", [[w, s], [e, s], [e, n], [w, n], [w, s]])
    return ["run", "-q", "--aoi", str(aoi), "--out", str(out), "--cache", str(tmp / "cache"),
            "--start", "2023-04-01", "--end", "2023-04-30", "--method", "linear",
            "--scheduler", "threads", "--source", "stac", "--stac-url", str(catalog),
            "--eodata", "https"]


def test_a_run_whose_scenes_are_all_cloud_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "cat"
    cloudy = [fx.s2_item(root, dt.datetime(2023, 4, d, 9, 50, tzinfo=dt.UTC), 0.05, 0.15,
                         cloud_rows=40) for d in (2, 8, 14)]
    catalog = fx.write_catalog(root, cloudy, [])
    out = tmp_path / "out"
    assert main(_run(catalog, tmp_path, out)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no clear observation in the AOI" in err, err
    assert not list(out.glob("*.tif")) and not (out / "run.json").exists()
    # the cube is there (resumable), but mowing will not read a fill that never finished
    assert (out / "cube.zarr").is_dir()
    err = refused(["mowing", "--cube", str(out), "--out", str(tmp_path / "m")], capsys)
    assert "did not finish its fill" in err
    assert not (tmp_path / "m").exists()


def test_a_run_whose_scenes_are_all_unreadable_names_the_first_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No run.json is written for a failed run, so the message must not point to one."""
    root = tmp_path / "cat"
    items = [fx.s2_item(root, dt.datetime(2023, 4, d, 9, 50, tzinfo=dt.UTC), 0.05, 0.15, 0)
             for d in (2, 8)]
    for item in items:
        href = item.assets["B08_10m"].href
        data = Path(href).read_bytes()
        Path(href).write_bytes(data[: len(data) // 3])
    catalog = fx.write_catalog(root, items, [])
    out = tmp_path / "out"
    assert main(_run(catalog, tmp_path, out)) == 2  # no usable data: the input's fault
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "were unreadable (first, " in err and "B08_10m" in err, err
    assert "run.json" not in err and not (out / "run.json").exists()


def _tile(t: int = 4) -> xr.Dataset:
    obs = np.ones((t, 3, 3), np.uint8)
    obs[:, 0, 0] = 0  # a pixel never observed: its fill may be missing
    filled = np.full((t, 3, 3), 0.5, np.float32)
    filled[:, 0, 0] = np.nan
    mask = np.ones((3, 3), np.uint8)
    return xr.Dataset({"ndvi_filled": (("time", "y", "x"), filled),
                       "observed": (("time", "y", "x"), obs),
                       "aoi_mask": (("y", "x"), mask)})


def test_tile_checks_catch_what_would_be_a_wrong_product() -> None:
    check_filled_tile(_tile(), 4, "t")
    with pytest.raises(ProductError, match="4 dates in the cube, the run has 5"):
        check_filled_tile(_tile(), 5, "t")
    bad = _tile()
    bad["ndvi_filled"][1, 1, 1] = np.inf
    with pytest.raises(ProductError, match="1 infinite"):
        check_filled_tile(bad, 4, "t")
    bad = _tile()
    bad["ndvi_filled"][2, 2, 2] = np.nan
    with pytest.raises(ProductError, match="missing in 1 cells"):
        check_filled_tile(bad, 4, "t")
    bad = _tile()
    bad["observed"][:] = 0
    with pytest.raises(ProductError, match="no clear observation"):
        check_filled_tile(bad, 4, "t")
    outside = _tile()
    outside["aoi_mask"][1, 1] = 0
    outside["ndvi_filled"][:, 1, 1] = np.inf  # outside the AOI: not a product value
    check_filled_tile(outside, 4, "t")
    edge = _tile()
    edge["aoi_mask"][:] = 0  # a tile that only touches the AOI
    edge["observed"][:] = 0
    check_filled_tile(edge, 4, "t")
    with pytest.raises(ProductError, match="no ndvi_filled"):
        check_filled_tile(_tile().drop_vars("ndvi_filled"), 4, "t")


def test_mowing_refuses_an_empty_fill(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cube = _tile()
    cube["ndvi_filled"][:] = np.nan
    cube.to_zarr(tmp_path / "cube.zarr", zarr_format=3, consolidated=False)
    err = refused(["mowing", "--cube", str(tmp_path), "--out", str(tmp_path / "m"),
                   "--detector", "drop"], capsys)
    assert "ndvi_filled is empty" in err
