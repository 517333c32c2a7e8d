"""Shared fixtures: the demo world (generated once per session) and a finished demo run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import Transformer

from pipeline.simulate import default_world
from pipeline.sources.demo import ensure_demo_archive

#: Test period inside the demo world's season (10 six-day bins).
START, END = "2023-04-01", "2023-05-30"


def lonlat_square(x0: float, y0: float, size: float) -> list[list[float]]:
    """Closed ring (lon, lat) of a square given in the demo world's UTM 34N."""
    t = Transformer.from_crs(32634, 4326, always_xy=True)
    pts = [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]
    return [list(t.transform(x, y)) for x, y in pts]


def write_aoi(path: Path, coords: list[list[float]]) -> Path:
    """A one-polygon GeoJSON FeatureCollection."""
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [coords]},
                    }
                ],
            }
        )
    )
    return path


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache folder holding the default demo world (generated once, about 15 s)."""
    cache = tmp_path_factory.mktemp("cache")
    ensure_demo_archive(cache, default_world())
    return cache


@pytest.fixture(scope="session")
def demo_archive(demo_cache: Path) -> Path:
    """The demo archive folder (``catalog.json`` and ``truth/``)."""
    return ensure_demo_archive(demo_cache, default_world()).parent


@pytest.fixture(scope="session")
def small_aoi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 500 m square AOI inside the demo world."""
    return write_aoi(
        tmp_path_factory.mktemp("aoi") / "aoi.geojson", lonlat_square(672200, 6181200, 500)
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path, small_aoi: Path) -> Path:
    """``--out`` folder of a finished demo run (linear fill) on the small AOI."""
    from pipeline.__main__ import main

    out = tmp_path_factory.mktemp("run") / "out"
    code = main(
        [
            "run",
            "-q",
            "--aoi",
            str(small_aoi),
            "--cache",
            str(demo_cache),
            "--out",
            str(out),
            "--start",
            START,
            "--end",
            END,
            "--method",
            "linear",
            "--scheduler",
            "threads",
        ]
    )
    assert code == 0
    return out


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; assert exit 2 with a one-line message, which is returned."""
    from pipeline.__main__ import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err
