"""The products in real QGIS (PyQGIS of the system Python, offscreen): the stack with its
style, the project as QGIS saves it, and the temporal controller stepping through every date."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rasterio

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_render.py")


def _pyqgis_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                           text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                           check=False)
    if probe.returncode:
        return ("PyQGIS absent: `/usr/bin/python3 -c 'import qgis.core'` fails (install with "
                "`apt-get install -y qgis python3-qgis`)")
    return None


_MISSING = _pyqgis_missing()


def _qgis(demo_run: Path, work: Path) -> dict:
    # GDAL_PAM_ENABLED=NO: no .aux.xml beside the products the other tests list
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(work),
           "GDAL_PAM_ENABLED": "NO"}
    work.chmod(0o700)
    proc = subprocess.run([SYSTEM_PYTHON, str(SCRIPT), str(demo_run), str(work), "5"],
                          capture_output=True, text=True, env=env, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def seen(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """What PyQGIS saw of the demo run's products, and the folder of its renders."""
    work = tmp_path_factory.mktemp("qgis")
    return _qgis(demo_run, work), work


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_stack_opens_with_its_default_style(demo_run: Path, seen: tuple[dict, Path]) -> None:
    res, work = seen
    png = work / "stack.png"
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        dates = list(src.descriptions)
        epsg = src.crs.to_epsg()
    assert res["valid"]
    assert res["crs"] == f"EPSG:{epsg}"
    assert res["band_count"] == len(dates)
    assert [n.split(": ", 1)[1] for n in res["band_names"]] == dates
    assert res["style_loaded"] and res["renderer"] == "singlebandpseudocolor"
    assert len(res["ramp"]) >= 5 and res["ramp"][0][0] == pytest.approx(-0.2)
    assert res["png_saved"] and png.stat().st_size > 1000
    # the rendered image is the styled map, not a blank or grey canvas
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(png)[..., :3]
    green = (img[..., 1] > img[..., 0] + 0.05) & (img[..., 1] > img[..., 2] + 0.05)
    assert green.mean() > 0.05 or len(np.unique(img.reshape(-1, 3), axis=0)) > 20


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_netcdf_opens_with_a_band_per_date(demo_run: Path, seen: tuple[dict, Path]) -> None:
    nc = seen[0]["nc"]
    assert nc["valid"] and nc["crs"] == "EPSG:32634"
    dates = [n.split(": ", 1)[1] for n in seen[0]["band_names"]]
    days = [int(n.split("time=")[1].split()[0]) for n in nc["band_names"]]
    assert [(dt.date(2015, 1, 1) + dt.timedelta(days=d)).isoformat() for d in days] == dates


def _summary(path: Path) -> dict:
    """The parts of a project file that carry its CRS, time range and per-date layers."""
    root = ET.parse(path).getroot()
    layers = {}
    for m in root.iter("maplayer"):
        t = m.find("temporal")
        assert t is not None
        layers[m.findtext("id")] = (
            (path.parent / m.findtext("datasource", "")).resolve(), t.get("enabled"), t.get("mode"),
            m.findtext("temporal/fixedRange/start"), m.findtext("temporal/fixedRange/end"),
            m.find("pipe/rasterrenderer").get("band"),  # type: ignore[union-attr]
        )
    ts = root.find("ProjectTimeSettings")
    assert ts is not None
    return {
        "crs": root.findtext("projectCrs/spatialrefsys/authid"),
        "projections": root.findtext("properties/SpatialRefSys/ProjectionsEnabled"),
        "time": (ts.get("timeStep"), ts.get("timeStepUnit"),
                 ts.findtext("TemporalRange/start"), ts.findtext("TemporalRange/end")),
        "layers": layers,
    }


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_project_is_what_qgis_itself_saves(demo_run: Path, seen: tuple[dict, Path]) -> None:
    res, work = seen
    assert res["project_read"] and res["project_resaved"]
    ours, theirs = _summary(demo_run / "products.qgs"), _summary(work / "resaved.qgs")
    assert ours == theirs
    assert ours["crs"] == "EPSG:32634" and ours["projections"] == "1"


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_temporal_controller_draws_each_date_in_its_frame(
    demo_run: Path, seen: tuple[dict, Path]
) -> None:
    res, work = seen
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        dates = list(src.descriptions)
    step = 6
    end = (dt.date.fromisoformat(dates[-1]) + dt.timedelta(days=step)).isoformat()
    assert res["project_crs"] == "EPSG:32634"
    assert res["time_range"] == [f"{dates[0]}T00:00:00Z", f"{end}T00:00:00Z"]
    assert res["project_layers"] == res["project_layers_valid"] > 0
    frames = res["frames"]
    assert [f["begin"][:10] for f in frames] == dates
    for i, (frame, day) in enumerate(zip(frames, dates, strict=True)):
        # exactly that date's layer of the checked group is drawn ...
        assert frame["drawn"] == [f"ndvi_filled {day}"], frame
        # ... and the rendered pixels have the colours of that date's band
        assert frame["match"][i] > 0.99, (day, frame["match"])
        for b, differs in enumerate(res["band_differs"][i]):
            if differs > 0.05:
                assert frame["match"][b] < 1 - differs / 2, (day, b, frame["match"])
    assert (work / "frame_05.png").stat().st_size > 1000
    if os.environ.get("S1S2_KEEP_QGIS_PNG"):
        shutil.copy(work / "frame_05.png", os.environ["S1S2_KEEP_QGIS_PNG"])
