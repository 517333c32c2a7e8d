"""The CLI end to end on a tiny demo world, and every bad input (exit 2, nothing written)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipeline.__main__ import main
from tests.conftest import END, START, lonlat_square
from tests.conftest import write_aoi as _aoi_file


@pytest.fixture()
def aoi(small_aoi: Path) -> Path:
    return small_aoi


def _run(args: list[str]) -> int:
    return main(["run", "-q", *args])


def test_run_end_to_end_writes_products(demo_cache, aoi, tmp_path, capsys):
    """The default path: LocalCluster workers and the shipped SF model (4 chunks for 2
    workers: enough for a LocalCluster rather than in-process threads)."""
    out = tmp_path / "out"
    args = ["--aoi", str(aoi), "--cache", str(demo_cache), "--out", str(out),
            "--start", START, "--end", END, "--chunk", "25", "--workers", "2"]
    assert _run(args) == 0
    printed = capsys.readouterr().out
    assert "six-day dates" in printed and "filled" in printed
    with rasterio.open(out / "ndvi_filled.tif") as src:
        assert src.crs.to_epsg() == 32634
        assert src.res == (10.0, 10.0)
        assert src.count == 10
        assert src.descriptions[0] == "2023-04-01"
        assert all(dt.date.fromisoformat(d) for d in src.descriptions)
        data = src.read(masked=True)
    assert not np.isnan(data.filled(0)).any()
    assert data.mask.mean() < 0.2  # bbox corners outside the rotated AOI only
    assert -1 <= data.min() and data.max() <= 1
    with rasterio.open(out / "ndvi_std.tif") as src:
        std = src.read(masked=True)
    assert std.min() > 0 and std.max() < 1
    record = json.loads((out / "run.json").read_text())
    assert record["fill_method"] == "sf" and len(record["model"]["sha256"]) == 64
    assert "under 0.1" in record["flat_pixels"]  # the run says how flat pixels were filled
    assert record["scenes"]["used"] and "versions" in record
    assert (out / "ndvi_filled.qml").exists() and (out / "observed.tif").exists()
    assert not list(out.glob(".staging-*"))

    # second run: everything already complete, products identical
    before = (out / "ndvi_filled.tif").read_bytes()
    assert _run(args) == 0
    assert "chunks already done" in capsys.readouterr().out
    with rasterio.open(out / "ndvi_filled.tif") as a, rasterio.MemoryFile(before) as mem:
        with mem.open() as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for opt in ("--aoi", "--out", "--start", "--end", "--source", "--cache", "--method"):
        assert opt in res.stdout


def _bad(args: list[str], capsys) -> str:
    code = _run(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_exit_2_and_write_nothing(demo_cache, aoi, tmp_path, capsys):
    out = tmp_path / "never"
    base = ["--cache", str(demo_cache), "--out", str(out), "--method", "linear",
            "--scheduler", "threads"]
    missing = tmp_path / "missing.geojson"
    assert "file not found" in _bad(["--aoi", str(missing), *base], capsys)
    bad_json = tmp_path / "bad.geojson"
    bad_json.write_text("{ nope")
    assert "not valid JSON" in _bad(["--aoi", str(bad_json), *base], capsys)
    point = tmp_path / "point.geojson"
    point.write_text(json.dumps({"type": "Point", "coordinates": [23.7, 55.7]}))
    assert "no Polygon" in _bad(["--aoi", str(point), *base], capsys)
    bowtie = _aoi_file(
        tmp_path / "bowtie.geojson",
        [[23.74, 55.74], [23.75, 55.75], [23.75, 55.74], [23.74, 55.75], [23.74, 55.74]],
    )
    assert "invalid geometry" in _bad(["--aoi", str(bowtie), *base], capsys)
    utm = _aoi_file(
        tmp_path / "utm.geojson",
        [[672000, 6181000], [673000, 6181000], [673000, 6182000], [672000, 6181000]],
    )
    assert "lon/lat range" in _bad(["--aoi", str(utm), *base], capsys)
    assert "exceeds the limit" in _bad(["--aoi", str(aoi), "--max-area-km2", "0.1", *base], capsys)
    assert "before --start" in _bad(
        ["--aoi", str(aoi), "--start", "2023-05-01", "--end", "2023-04-01", *base], capsys
    )
    assert "no Sentinel-2 scenes" in _bad(
        ["--aoi", str(aoi), "--start", "2022-05-01", "--end", "2022-06-01", *base], capsys
    )
    outside = _aoi_file(tmp_path / "far.geojson", lonlat_square(690000, 6190000, 300))
    assert "no Sentinel-2 scenes" in _bad(
        ["--aoi", str(outside), "--start", START, "--end", END, *base], capsys
    )
    partly = _aoi_file(tmp_path / "partly.geojson", lonlat_square(675500, 6181800, 500))
    assert "demo archive covers only" in _bad(
        ["--aoi", str(partly), "--start", START, "--end", END, *base], capsys
    )
    assert "is before" not in _bad(["--aoi", str(aoi), "--start", "2023-13-01", *base], capsys)
    assert not out.exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    err = _bad(
        [
            "--aoi",
            str(aoi),
            "--cache",
            str(demo_cache),
            "--out",
            str(blocker / "sub"),
            "--start",
            START,
            "--end",
            END,
        ],
        capsys,
    )
    assert "--out" in err


def test_run_config_file_and_its_errors(demo_cache, aoi, tmp_path, capsys):
    out = tmp_path / "cfg-out"
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'aoi = "{aoi}"\nout = "{out}"\nstart = "{START}"\nend = "{END}"\n'
        f'cache = "{demo_cache}"\nmethod = "linear"\nscheduler = "threads"\ntile-size = 10000\n'
    )
    assert main(["run", "-q", "--config", str(cfg)]) == 0
    assert (out / "ndvi_filled.tif").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('aoi = "x.geojson"\ncolour = "red"\n')
    assert "unknown option 'colour'" in _bad(["--config", str(bad)], capsys)
    bad.write_text('start = "yesterday"\n')
    assert "start" in _bad(["--config", str(bad)], capsys)
    bad.write_text("not = [toml")
    assert "not valid TOML" in _bad(["--config", str(bad)], capsys)
    assert "--aoi is required" in _bad(["--out", str(tmp_path / "o")], capsys)
