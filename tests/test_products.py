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


def test_stac_collection_has_an_item_per_date_with_that_date_only(demo_run: Path) -> None:
    dates = _dates(demo_run)
    coll = pystac.Collection.from_file(str(demo_run / "stac" / "collection.json"))
    assert coll.license == "other" and coll.get_single_link("license") is not None
    items = sorted(coll.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == dates
    for item in items:
        assert item.datetime is not None and item.datetime.date().isoformat() == item.id
        assert item.properties["start_datetime"].startswith(item.id)
        assert item.properties["proj:code"] == "EPSG:32634"
        asset = item.assets["ndvi_filled"]
        with rasterio.open(asset.get_absolute_href() or "") as src:
            assert src.count == 1 and src.descriptions == (item.id,)
        assert asset.extra_fields["raster:bands"] == [
            {"data_type": "float32", "nodata": -9999.0, "scale": 1.0, "offset": 0.0, "unit": "1"}]
        assert item.assets["observed"].extra_fields["raster:bands"][0]["nodata"] == 255
    assert "ndvi_filled" in coll.assets and "ndvi_filled_qml" in coll.assets


def _plain_items(run: Path) -> list[dict]:
    """The item JSON as written (what a static server or a STAC API hands out), hrefs
    made absolute; pystac would migrate the projection fields on reading."""
    items = []
    for p in sorted((run / "stac").glob("*/*.json")):
        d = json.loads(p.read_text())
        for a in d["assets"].values():
            a["href"] = str((p.parent / a["href"]).resolve())
        items.append(d)
    return items


def test_odc_stac_and_stackstac_read_every_date_exactly(demo_run: Path) -> None:
    import numpy as np
    import odc.stac
    import stackstac

    coll = pystac.Collection.from_file(str(demo_run / "stac" / "collection.json"))
    items = sorted(coll.get_items(), key=lambda i: i.id)
    stacks = {"ndvi_filled": "ndvi_filled.tif", "observed": "observed.tif",
              "ndvi_observed": "ndvi_observed.tif"}
    odc_ds = odc.stac.load(items, bands=list(stacks), groupby="id", chunks={})
    plain = _plain_items(demo_run)
    assert [d["id"] for d in plain] == [i.id for i in items]
    for name, fname in stacks.items():
        with rasterio.open(demo_run / fname) as src:
            want, dtype, nodata = src.read(), src.dtypes[0], src.nodata
        got = odc_ds[name].values
        assert got.dtype == want.dtype and np.array_equal(got, want), name
        st = stackstac.stack(plain, assets=[name], dtype=dtype, rescale=False,
                             fill_value=np.dtype(dtype).type(nodata), xy_coords="center")
        assert [str(t)[:10] for t in st.time.values] == [i.id for i in items]
        assert np.array_equal(st.sel(band=name).values, want), name
        assert st.x.values[0] == odc_ds.x.values[0] and st.y.values[0] == odc_ds.y.values[0]


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


def test_observed_flag_is_nodata_outside_the_aoi(demo_run: Path) -> None:
    """0 means "filled"; outside the AOI nothing was observed or filled, so it is nodata."""
    import numpy as np
    import xarray as xr

    mask = xr.open_zarr(demo_run / "cube.zarr", zarr_format=3,
                        consolidated=False)["aoi_mask"].values > 0
    assert (~mask).any() and mask.any()
    with rasterio.open(demo_run / "observed.tif") as src:
        flags = src.read()
        assert src.nodata == 255
    assert (flags[:, ~mask] == 255).all()
    assert set(np.unique(flags[:, mask])) <= {0, 1}
