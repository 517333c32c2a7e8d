"""A rerun resumes only what the same inputs made: another period, AOI or filler is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rasterio

from pipeline.__main__ import main
from pipeline.storage import SIGNATURE_NAME
from tests.conftest import END, START, refused


def _args(aoi: Path, cache: Path, out: Path, end: str = END, method: str = "linear"
          ) -> list[str]:
    return ["run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
            "--start", START, "--end", end, "--method", method, "--scheduler", "threads"]


def _contents(out: Path) -> dict[str, str]:
    """Hash of every file under ``out`` except the lock (rewritten by each attempt)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".s1s2-gapfill.lock"}


def test_other_inputs_are_refused_and_the_same_resume(
    small_aoi: Path, demo_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(_args(small_aoi, demo_cache, out)) == 0
    capsys.readouterr()
    assert json.loads((out / SIGNATURE_NAME).read_text())["period"] == f"{START}..{END}"
    before = _contents(out)

    err = refused(_args(small_aoi, demo_cache, out, end="2023-06-30"), capsys)
    assert f"period {START}..{END} there, {START}..2023-06-30 now" in err
    assert "new --out" in err and "--overwrite" in err
    err = refused(_args(small_aoi, demo_cache, out, method="sf"), capsys)
    assert "filler linear there, sf weights " in err
    other = tmp_path / "other.geojson"
    data = json.loads(small_aoi.read_text())
    ring = data["features"][0]["geometry"]["coordinates"][0]
    data["features"][0]["geometry"]["coordinates"][0] = [[x + 0.001, y] for x, y in ring]
    other.write_text(json.dumps(data))
    assert "another AOI" in refused(_args(other, demo_cache, out), capsys)
    assert _contents(out) == before  # nothing touched

    assert main(_args(small_aoi, demo_cache, out)) == 0
    assert "resumed" in capsys.readouterr().out
    assert _contents(out)["ndvi_filled.tif"] == before["ndvi_filled.tif"]


def test_overwrite_replaces_a_run_of_other_inputs(
    small_aoi: Path, demo_cache: Path, demo_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(_args(small_aoi, demo_cache, out)) == 0
    assert main([*_args(small_aoi, demo_cache, out, end="2023-06-11"), "--overwrite"]) == 0
    with rasterio.open(demo_run / "ndvi_filled.tif") as short, \
            rasterio.open(out / "ndvi_filled.tif") as longer:
        assert longer.count == short.count + 2  # two more 6-day bins
    assert json.loads((out / SIGNATURE_NAME).read_text())["period"] == f"{START}..2023-06-11"


def test_a_zoned_tile_is_not_resumed_across_context_methods(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A tile with zones holds the field context in its fill: chunks filled by another
    context method are refilled, not kept; a tile without zones is not affected."""
    from odc.geo.geobox import GeoBox

    import pipeline.cube
    from pipeline.cube import TileSignatures
    from pipeline.timegrid import TimeGrid

    box = GeoBox.from_bbox((500000, 6000000, 500640, 6000640), "EPSG:32634", resolution=10)
    grid = TimeGrid.covering(START, END)
    zoned = TileSignatures.of(box, grid, ["a", "b"], "sf", zones="parcels abc")
    plain = TileSignatures.of(box, grid, ["a", "b"], "sf")
    monkeypatch.setattr(pipeline.cube, "CONTEXT_METHOD", "another context")
    assert TileSignatures.of(box, grid, ["a", "b"], "sf", zones="parcels abc").fill != zoned.fill
    assert TileSignatures.of(box, grid, ["a", "b"], "sf", zones="parcels abc").ingest == \
        zoned.ingest
    assert TileSignatures.of(box, grid, ["a", "b"], "sf") == plain
