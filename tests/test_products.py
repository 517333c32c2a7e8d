"""Products of a finished demo run beyond the stacks: QGIS project, STAC catalog, quicklook."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pystac
import rasterio

from pipeline.quicklook import pick_samples


def _dates(run: Path) -> list[str]:
    with rasterio.open(run / "ndvi_filled.tif") as src:
        return list(src.descriptions)


def test_stacks_have_iso_dates_styles_and_nodata(demo_run: Path) -> None:
    dates = _dates(demo_run)
    for name in ("ndvi_filled", "observed", "ndvi_observed"):
        with rasterio.open(demo_run / f"{name}.tif") as src:
            assert list(src.descriptions) == dates
            assert src.nodata is not None and src.overviews(1) is not None
        qml = ET.parse(demo_run / f"{name}.qml").getroot()
        assert qml.find(".//rasterrenderer") is not None


def test_stac_collection_has_an_item_per_date_pointing_at_the_band(demo_run: Path) -> None:
    dates = _dates(demo_run)
    coll = pystac.Collection.from_file(str(demo_run / "stac" / "collection.json"))
    items = sorted(coll.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == dates
    for band, item in enumerate(items, start=1):
        assert item.datetime is not None and item.datetime.date().isoformat() == item.id
        assert item.properties["start_datetime"].startswith(item.id)
        asset = item.assets["ndvi_filled"]
        assert Path(asset.get_absolute_href() or "").resolve() == (
            demo_run / "ndvi_filled.tif").resolve()
        assert asset.extra_fields["s1s2:band"] == band
        assert item.properties["proj:code"] == "EPSG:32634"
    assert "ndvi_filled" in coll.assets and "ndvi_filled_qml" in coll.assets


def test_qgis_project_has_one_temporal_layer_per_date(demo_run: Path) -> None:
    dates = _dates(demo_run)
    root = ET.parse(demo_run / "products.qgs").getroot()
    layers = [m for m in root.iter("maplayer") if m.findtext("layername", "").startswith(
        "ndvi_filled ")]
    assert [m.findtext("layername").split()[-1] for m in layers] == dates  # type: ignore[union-attr]
    for k, m in enumerate(layers, start=1):
        assert m.findtext("datasource") == "./ndvi_filled.tif"
        assert m.find("temporal").get("enabled") == "1"  # type: ignore[union-attr]
        assert m.findtext("temporal/fixedRange/start", "").startswith(dates[k - 1])
        assert m.find("pipe/rasterrenderer").get("band") == str(k)  # type: ignore[union-attr]


def test_quicklook_png_and_run_record(demo_run: Path) -> None:
    png = demo_run / "quicklook.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    record = json.loads((demo_run / "run.json").read_text())
    assert record.get("quicklook_date") in _dates(demo_run)


def test_pick_samples_spreads_over_observed_shares() -> None:
    import numpy as np

    share = np.array([[np.nan, 0.1, 0.5], [0.9, 0.3, np.nan]])
    picks = pick_samples(share, 3)
    assert [share[p] for p in picks] == [0.1, 0.5, 0.9]
