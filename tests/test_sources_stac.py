"""The ``stac`` source: the demo archive served over loopback HTTP (range requests).

The served catalog must give exactly the cube and products of ``--source demo``;
a truncated COG is skipped and recorded; EODATA href rewriting and the S1 asset
mapping are pure functions tested on their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr

from pipeline.__main__ import main
from pipeline.errors import InputError
from pipeline.sources.eodata import EodataAccess, resolve_access, rewrite_href
from pipeline.sources.stac import ItemAdapter, is_stac_api, open_stac_source, parse_asset_map
from tests.conftest import END, START
from tests.fakes.httpserver import serve

PRODUCTS = ("ndvi_filled.tif", "observed.tif", "ndvi_observed.tif")


def _run(url: str, aoi: Path, cache: Path, out: Path) -> int:
    return main([
        "run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
        "--start", START, "--end", END, "--method", "linear",
        "--source", "stac", "--stac-url", url, "--eodata", "https",
    ])


def _cube(out: Path) -> xr.Dataset:
    return xr.open_zarr(out / "cube.zarr", consolidated=False)


def test_stac_over_http_equals_demo(demo_archive, demo_run, small_aoi, tmp_path):
    out = tmp_path / "stac-out"
    with serve(demo_archive) as server:
        assert _run(f"{server.url}/catalog.json", small_aoi, tmp_path / "c", out) == 0
        ranged = [r for r in server.requests if r[2] is not None]
    assert ranged, "GDAL read the COGs with range requests"
    demo, stac = _cube(demo_run), _cube(out)
    assert set(demo.data_vars) == set(stac.data_vars)
    for name in demo.data_vars:
        np.testing.assert_array_equal(demo[name].values, stac[name].values, err_msg=name)
    for product in PRODUCTS:
        with rasterio.open(demo_run / product) as a, rasterio.open(out / product) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=product)
            assert a.descriptions == b.descriptions and a.crs == b.crs
    used_demo = json.loads((demo_run / "run.json").read_text())["scenes"]["used"]
    used_stac = json.loads((out / "run.json").read_text())["scenes"]["used"]
    assert [u["id"] for u in used_demo] == [u["id"] for u in used_stac]


def test_truncated_cog_over_http_is_skipped_and_recorded(demo_archive, small_aoi, tmp_path):
    cat = pystac.Catalog.from_file(str(demo_archive / "catalog.json"))
    s2 = sorted(
        (it for it in cat.get_items(recursive=True) if it.collection_id == "sentinel-2-l2a"
         and START <= it.datetime.date().isoformat() <= END),
        key=lambda it: it.datetime,
    )
    victim = s2[2]
    rel = Path(victim.assets["B08_10m"].get_absolute_href()).relative_to(demo_archive.resolve())
    out = tmp_path / "out"
    with serve(demo_archive, truncate={f"/{rel.as_posix()}": 0.4}) as server:
        assert _run(f"{server.url}/catalog.json", small_aoi, tmp_path / "c", out) == 0
    skipped = json.loads((out / "run.json").read_text())["scenes"]["skipped"]
    assert [s["id"] for s in skipped] == [victim.id]
    assert "B08_10m unreadable" in skipped[0]["reason"]
    assert (out / "ndvi_filled.tif").exists()


def test_unreachable_catalog_is_bad_input(tmp_path, small_aoi, capsys):
    with serve(tmp_path) as server:
        code = _run(f"{server.url}/nope/catalog.json", small_aoi, tmp_path / "c", tmp_path / "o")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--stac-url" in err
    assert not (tmp_path / "o").exists()


def test_static_catalog_is_not_an_api_and_api_root_is(demo_archive):
    assert not is_stac_api(json.loads((demo_archive / "catalog.json").read_text()))
    assert is_stac_api({"conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"]})
    assert is_stac_api({"links": [{"rel": "search", "href": "https://x/search"}]})
    src = open_stac_source(str(demo_archive / "catalog.json"), access=EodataAccess("https"))
    assert type(src).__name__ == "StaticCatalogSource"


@pytest.mark.parametrize(
    ("href", "mode", "expected"),
    [
        ("s3://eodata/Sentinel-2/MSI/L2A/2023/B04_10m.jp2", "mount",
         "/eodata/Sentinel-2/MSI/L2A/2023/B04_10m.jp2"),
        ("s3://eodata/Sentinel-2/MSI/L2A/2023/B04_10m.jp2", "s3",
         "s3://eodata/Sentinel-2/MSI/L2A/2023/B04_10m.jp2"),
        ("s3://eodata/Sentinel-2/MSI/L2A/2023/B04_10m.jp2", "https",
         "https://download.example/B04_10m.jp2"),
        ("/eodata/Sentinel-1/x.tif", "s3", "s3://eodata/Sentinel-1/x.tif"),
        ("s3://sentinel-cogs/a/B04.tif", "mount", "s3://sentinel-cogs/a/B04.tif"),
        ("https://host/a/B04.tif", "mount", "https://host/a/B04.tif"),
    ],
)
def test_eodata_href_rewrite(href, mode, expected):
    extra = {"alternate": {"https": {"href": "https://download.example/B04_10m.jp2"}}}
    assert rewrite_href(href, EodataAccess(mode), extra) == expected


def test_eodata_modes_validated(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(InputError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        resolve_access("s3")
    with pytest.raises(InputError, match="--eodata mount"):
        resolve_access("mount", mount=str(tmp_path / "none"))
    assert resolve_access("auto", mount=str(tmp_path)).mode == "mount"
    assert resolve_access("auto", mount=str(tmp_path / "none")).mode == "https"


def test_s1_asset_mapping_and_offsets_untouched():
    assert parse_asset_map("vv=VV_gamma0, vh=VH_gamma0") == {"vv": "VV_gamma0", "vh": "VH_gamma0"}
    with pytest.raises(InputError, match="--s1-assets"):
        parse_asset_map("vv:VV")
    item = pystac.Item("s1", None, None, pystac.utils.str_to_datetime("2023-05-01T05:00:00Z"),
                       {"sat:orbit_state": "ascending"})
    item.add_asset("VV_gamma0", pystac.Asset("s3://eodata/x/vv.tif"))
    item.add_asset("VH_gamma0", pystac.Asset("s3://eodata/x/vh.tif"))
    adapter = ItemAdapter(EodataAccess("mount"), parse_asset_map("vv=VV_gamma0,vh=VH_gamma0"))
    mapped = adapter.s1(item)
    assert mapped.assets["vv"].href == "/eodata/x/vv.tif"
    assert mapped.assets["vh"].href == "/eodata/x/vh.tif"
    assert item.assets["VV_gamma0"].href == "s3://eodata/x/vv.tif", "the original is not mutated"
    s2 = pystac.Item("s2", None, None, item.datetime, {})
    band = {"scale": 0.0001, "offset": -0.1}
    s2.add_asset("B04_10m", pystac.Asset("s3://eodata/y/B04_10m.jp2",
                                         extra_fields={"raster:bands": [band]}))
    assert adapter.s2(s2).assets["B04_10m"].extra_fields["raster:bands"] == [band]


def test_stac_api_search_with_paging_equals_demo(demo_archive, demo_run, small_aoi, tmp_path):
    """The STAC API path: pystac-client against a fake API that pages every 5 items."""
    from tests.fakes.stacapi import serve_api

    out = tmp_path / "api-out"
    with serve_api(demo_archive, page_size=5) as server:
        assert _run(f"{server.url}/", small_aoi, tmp_path / "c", out) == 0
        pages = [s for s in server.searches if s.get("token")]
        ranged = [r for r in server.requests if r[2] is not None]
    assert pages, "the client followed next links"
    assert ranged, "assets were read over HTTP with range requests"
    demo, api = _cube(demo_run), _cube(out)
    for name in demo.data_vars:
        np.testing.assert_array_equal(demo[name].values, api[name].values, err_msg=name)
    used_demo = json.loads((demo_run / "run.json").read_text())["scenes"]["used"]
    used_api = json.loads((out / "run.json").read_text())["scenes"]["used"]
    assert [u["id"] for u in used_demo] == [u["id"] for u in used_api]
