"""The products in real QGIS (PyQGIS of the system Python, offscreen): CRS, bands, style, render."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_products_open_styled_and_dated_in_qgis(demo_run: Path, tmp_path: Path) -> None:
    png = tmp_path / "qgis_render.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.run([SYSTEM_PYTHON, str(SCRIPT), str(demo_run), str(png), "5"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
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
    # the project puts each date on the temporal controller
    assert res["project_read"] and res["project_layers"] == res["project_layers_valid"] > 0
    filled = [r for r in res["temporal_layers"] if r[0].startswith("ndvi_filled ")]
    assert [r[1][:10] for r in filled] == dates
    assert [r[3] for r in filled] == list(range(1, len(dates) + 1))
    assert all(any(n.startswith(p) for n in res["drawn_on_probe"]) for p in ("ndvi_filled",))
    assert len([n for n in res["drawn_on_probe"] if n.startswith("ndvi_filled ")]) == 1
    if os.environ.get("S1S2_KEEP_QGIS_PNG"):
        shutil.copy(png, os.environ["S1S2_KEEP_QGIS_PNG"])
