"""``pipeline run --source stac`` over real catalog items, served by the loopback STAC API.

The items are the real JSON of the CDSE STAC (STAC 1.1: asset-level ``raster:offset``,
``bands``, ``proj:code``, ``processing:version``, JPEG2000 assets with
``s3://eodata`` hrefs) and of the Planetary Computer (STAC 1.0: ``proj:epsg``,
``s2:processing_baseline``, no offset declared; Sentinel-1 RTC with ``raster:bands``
nodata -32768 and ``sat:orbit_state``). Their assets point at small synthetic rasters
(:mod:`tests.realitems`) whose digital numbers carry the offset or not, and NDVI / dB
from the run must equal the values computed by hand from those numbers.

Constructed variants (marked in their ids): the N0512 item with the offset already
removed from its DNs (a double offset the data check must catch), a Planetary
Computer item reshaped as Earth Search serves it (``raster:bands`` offset -0.1 *and*
``earthsearch:boa_offset_applied: true``, DNs without offset: offset once), and an
S1 RTC item without ``sat:relative_orbit``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer

from pipeline.__main__ import main
from tests.conftest import write_aoi
from tests.fakes.stacapi import serve_api
from tests.realitems import (
    S2Pixels,
    asset_crs,
    grid_origin,
    inside_point,
    load_items,
    make_s2_pixels,
    point_assets,
    synthetic_s2_item,
    write_s1_rasters,
    write_s2_rasters,
)

HAS_JP2 = "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values()


def _run(url: str, aoi: Path, tmp: Path, start: str, end: str, crs: str,
         *extra: str) -> Path:
    out = tmp / "out"
    code = main([
        "run", "-q", "--aoi", str(aoi), "--cache", str(tmp / "cache"), "--out", str(out),
        "--start", start, "--end", end, "--method", "linear", "--scheduler", "threads",
        "--source", "stac", "--stac-url", f"{url}/", "--eodata", "https", "--crs", crs,
        *extra,
    ])
    assert code == 0
    return out


def _hand_ndvi(cube: xr.Dataset, px: S2Pixels, when: str) -> tuple[np.ndarray, np.ndarray]:
    """(NDVI of the run, NDVI by hand) in the scene's bin, inside the AOI."""
    t = cube["time"].values
    b = int(np.searchsorted(t, np.datetime64(when[:10]), side="right")) - 1
    xx, yy = np.meshgrid(cube["x"].values, cube["y"].values)
    inside = cube["aoi_mask"].values > 0
    return cube["ndvi"].values[b][inside], px.ndvi_at(xx[inside], yy[inside])


def _assert_ndvi(cube: xr.Dataset, px: S2Pixels, when: str) -> None:
    got, want = _hand_ndvi(cube, px, when)
    assert np.isfinite(want).sum() > 100 and np.isnan(want).sum() > 10
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def _used(out: Path) -> dict[str, dict[str, Any]]:
    return {u["id"]: u for u in json.loads((out / "run.json").read_text())["scenes"]["used"]}


def _shifted(item: dict[str, Any], days: int, suffix: str) -> dict[str, Any]:
    """A constructed copy of a real item: new id, acquired ``days`` later."""
    new = copy.deepcopy(item)
    new["id"] = f"{item['id']}_{suffix}"
    for key in ("datetime", "start_datetime", "end_datetime"):
        if key in new["properties"]:
            when = dt.datetime.fromisoformat(str(new["properties"][key]).replace("Z", "+00:00"))
            new["properties"][key] = (when + dt.timedelta(days=days)).isoformat()
    return new


def _s2_case(tmp: Path, item: dict[str, Any], keys: tuple[str, str, str], seed: int,
             dn_offset: int, ext: str) -> tuple[S2Pixels, dict[str, Path]]:
    crs = asset_crs(item, keys[0])
    lon, lat = inside_point(item)
    px = make_s2_pixels(crs, grid_origin(item, keys[0]), lon, lat, seed)
    files = write_s2_rasters(tmp / "px" / item["id"], px, dn_offset, ext)
    return px, dict(zip(keys, files.values(), strict=True))


def _urls(base: str, root: Path, files: dict[str, Path]) -> dict[str, str]:
    return {k: f"{base}/{p.relative_to(root).as_posix()}" for k, p in files.items()}


CDSE_KEYS = ("B04_10m", "B08_10m", "SCL_20m")


@pytest.mark.skipif(not HAS_JP2, reason="GDAL's JP2OpenJPEG driver is missing (the CDSE "
                    "assets are JPEG2000): install rasterio wheels or GDAL with OpenJPEG")
@pytest.mark.parametrize("name", ["cdse_s2l2a_N0500_T36NYH.json", "cdse_s2l2a_N0512_T55WFR.json"])
def test_cdse_items_give_hand_computed_ndvi(tmp_path: Path, name: str) -> None:
    """Real CDSE JSON, JPEG2000 pixels with the offset in the DNs; plus a double offset."""
    (item,) = load_items(name)
    px, files = _s2_case(tmp_path, item, CDSE_KEYS, seed=1, dn_offset=1000, ext="jp2")
    double = _shifted(item, 12, "OFFSET_ALREADY_REMOVED")
    px2, files2 = _s2_case(tmp_path, double, CDSE_KEYS, seed=2, dn_offset=0, ext="jp2")
    when, when2 = item["properties"]["datetime"], double["properties"]["datetime"]

    def items(base: str) -> list[dict[str, Any]]:
        return [point_assets(item, _urls(base, tmp_path, files)),
                point_assets(double, _urls(base, tmp_path, files2))]

    aoi = write_aoi(tmp_path / "aoi.geojson", px.aoi_ring())
    with serve_api(tmp_path, page_size=1, items=items) as server:
        day = dt.date.fromisoformat(when[:10])
        out = _run(server.url, aoi, tmp_path, str(day - dt.timedelta(days=3)),
                   str(day + dt.timedelta(days=16)), asset_crs(item, "B04_10m"))
        fetched = [p for _, p, _ in server.requests]
        pages = [s for s in server.searches if s.get("token")]
    assert pages, "the client followed the API's next links (one item per page)"
    assert any(p.endswith("B04.jp2") for p in fetched), "the https alternates were read"
    cube = xr.open_zarr(out / "cube.zarr", consolidated=False)
    _assert_ndvi(cube, px, when)
    _assert_ndvi(cube, px2, when2)
    used = _used(out)
    real = used[item["id"]]
    assert (real["offset"], real["offset_source"]) == (-0.1, "raster:offset")
    assert real["processing_baseline"] == item["properties"]["processing:version"]
    assert "flag" not in real["offset_check"]
    flagged = used[double["id"]]
    assert flagged["offset"] == 0.0 and "applied twice" in flagged["offset_check"]["flag"]


def test_planetary_computer_and_earth_search_items_give_hand_computed_ndvi(
    tmp_path: Path,
) -> None:
    """Real PC JSON (offset from s2:processing_baseline), and the Earth Search shape."""
    pc = load_items("pc_sentinel-2-l2a.json")[1]  # T47XMJ: overlaps none of the others
    keys = ("B04", "B08", "SCL")
    px, files = _s2_case(tmp_path, pc, keys, seed=3, dn_offset=1000, ext="tif")
    es = _shifted(pc, 6, "EARTHSEARCH_SHAPE")
    es["properties"]["earthsearch:boa_offset_applied"] = True
    for k in ("B04", "B08"):
        es["assets"][k]["raster:bands"] = [{"nodata": 0, "data_type": "uint16",
                                            "scale": 0.0001, "offset": -0.1}]
    px2, files2 = _s2_case(tmp_path, es, keys, seed=4, dn_offset=0, ext="tif")
    others = load_items("pc_sentinel-2-l2a.json")

    def items(base: str) -> list[dict[str, Any]]:
        return [*(o for o in others if o["id"] != pc["id"]),
                point_assets(pc, _urls(base, tmp_path, files)),
                point_assets(es, _urls(base, tmp_path, files2))]

    aoi = write_aoi(tmp_path / "aoi.geojson", px.aoi_ring())
    with serve_api(tmp_path, page_size=2, items=items) as server:
        out = _run(server.url, aoi, tmp_path, "2024-04-15", "2024-04-30",
                   asset_crs(pc, "B04"))
    cube = xr.open_zarr(out / "cube.zarr", consolidated=False)
    _assert_ndvi(cube, px, pc["properties"]["datetime"])
    _assert_ndvi(cube, px2, es["properties"]["datetime"])
    used = _used(out)
    assert set(used) == {pc["id"], es["id"]}
    assert used[pc["id"]]["offset_source"] == "processing baseline 05.10"
    assert used[es["id"]]["offset"] == 0.0, "offset once: the flag wins over raster:bands"
    assert used[es["id"]]["offset_source"] == "earthsearch:boa_offset_applied"
    assert not any("flag" in u["offset_check"] for u in used.values())


def test_planetary_computer_s1_rtc_gives_hand_computed_db(tmp_path: Path) -> None:
    """Real PC S1 RTC JSON through --s1-collection/--s1-assets: dB by hand, orbit state from
    sat:orbit_state, nodata -32768 masked, an item without sat:relative_orbit used."""
    rtc = load_items("pc_sentinel-1-rtc.json")[0]
    no_orbit = _shifted(rtc, 6, "NO_RELATIVE_ORBIT")
    del no_orbit["properties"]["sat:relative_orbit"]
    crs = asset_crs(rtc, "vv")
    lon, lat = 15.02, 30.2  # inside the first item only, off the 10 km tile lattice
    px = make_s2_pixels(crs, grid_origin(rtc, "vv"), lon, lat, seed=5, n=40)
    s2 = synthetic_s2_item("S2X_SYNTHETIC_T33RVJ", "2024-04-19T09:30:00Z", px, "05.10")
    s2_files = dict(zip(("B04", "B08", "SCL"),
                        write_s2_rasters(tmp_path / "px" / "s2", px, 1000).values(), strict=True))
    n, block = 60, (slice(22, 30), slice(22, 30))
    x0, y0 = px.x0 - 100, px.y0 + 100
    values = {rtc["id"]: (0.08, 0.015), no_orbit["id"]: (0.2, 0.05)}
    s1_files = {iid: write_s1_rasters(tmp_path / "px" / iid, crs, x0, y0, n, vv, vh, block)
                for iid, (vv, vh) in values.items()}

    def items(base: str) -> list[dict[str, Any]]:
        return [point_assets(s2, _urls(base, tmp_path, s2_files)),
                *(point_assets(it, _urls(base, tmp_path, s1_files[it["id"]]))
                  for it in (rtc, no_orbit))]

    aoi = write_aoi(tmp_path / "aoi.geojson", px.aoi_ring())
    with serve_api(tmp_path, page_size=5, items=items) as server:
        out = _run(server.url, aoi, tmp_path, "2024-04-17", "2024-04-30", crs,
                   "--s1-collection", "sentinel-1-rtc", "--s1-assets", "vv=vv,vh=vh")
    cube = xr.open_zarr(out / "cube.zarr", consolidated=False)
    _assert_ndvi(cube, px, s2["properties"]["datetime"])
    assert np.isnan(cube["vv_asc"].values).all(), "both passes are descending"
    xx, yy = np.meshgrid(cube["x"].values, cube["y"].values)
    col, row = np.floor((xx - x0) / 10).astype(int), np.floor((y0 - yy) / 10).astype(int)
    in_block = (row >= 22) & (row < 30) & (col >= 22) & (col < 30)
    far = (np.maximum(np.abs(row - 25.5), np.abs(col - 25.5)) > 6) & (cube["aoi_mask"].values > 0)
    core = in_block & (np.abs(row - 25.5) < 3) & (np.abs(col - 25.5) < 3)
    assert far.sum() > 300 and core.sum() == 36
    for iid, (vv, vh) in values.items():
        day = np.datetime64(next(it for it in (rtc, no_orbit) if it["id"] == iid)
                            ["properties"]["datetime"][:10])
        b = int(np.searchsorted(cube["time"].values, day, side="right")) - 1
        for pol, lin in (("vv", vv), ("vh", vh)):
            got = cube[f"{pol}_desc"].values[b]
            np.testing.assert_allclose(got[far], 10 * math.log10(lin), atol=1e-5)
            assert np.isnan(got[core]).all(), "nodata -32768 is no backscatter"
    used = _used(out)
    assert used[rtc["id"]]["orbit_state"] == "descending"
    assert used[rtc["id"]]["relative_orbit"] == 51
    assert used[no_orbit["id"]]["relative_orbit"] is None


def test_aoi_grid_is_the_items_utm_grid() -> None:
    """The runs above pass --crs from proj:code / proj:epsg; both name the tile's zone."""
    (cdse,) = load_items("cdse_s2l2a_N0512_T55WFR.json")
    assert asset_crs(cdse, "B04_10m") == "EPSG:32655"
    pc = load_items("pc_sentinel-2-l2a.json")[0]
    assert asset_crs(pc, "B04") == "EPSG:32647"
    lon, lat = inside_point(cdse)
    x, _ = Transformer.from_crs(4326, 32655, always_xy=True).transform(lon, lat)
    assert 600000 <= x <= 709800


def test_s2_collection_option_finds_earth_search_c1_items(tmp_path: Path, capsys) -> None:
    """Earth Search's ``sentinel-2-c1-l2a`` (offset in raster:bands, no flag, DNs with the
    offset): nothing is found under the default collection id, --s2-collection finds it."""
    c1 = _shifted(load_items("pc_sentinel-2-l2a.json")[1], 0, "EARTHSEARCH_C1_SHAPE")
    c1["collection"] = "sentinel-2-c1-l2a"
    for k in ("B04", "B08"):
        c1["assets"][k]["raster:bands"] = [{"nodata": 0, "data_type": "uint16",
                                            "scale": 0.0001, "offset": -0.1}]
    px, files = _s2_case(tmp_path, c1, ("B04", "B08", "SCL"), seed=6, dn_offset=1000, ext="tif")
    aoi = write_aoi(tmp_path / "aoi.geojson", px.aoi_ring())
    with serve_api(tmp_path, items=lambda base: [point_assets(c1, _urls(base, tmp_path, files))]
                   ) as server:
        args = ["run", "-q", "--aoi", str(aoi), "--cache", str(tmp_path / "cache"),
                "--start", "2024-04-15", "--end", "2024-04-30", "--method", "linear",
                "--scheduler", "threads", "--source", "stac", "--stac-url", f"{server.url}/",
                "--eodata", "https", "--crs", asset_crs(c1, "B04")]
        assert main([*args, "--out", str(tmp_path / "none")]) != 0
        assert "no Sentinel-2 scenes" in capsys.readouterr().err
        out = tmp_path / "out"
        assert main([*args, "--out", str(out), "--s2-collection", "sentinel-2-c1-l2a"]) == 0
    _assert_ndvi(xr.open_zarr(out / "cube.zarr", consolidated=False), px,
                 c1["properties"]["datetime"])
    assert _used(out)[c1["id"]]["offset_source"] == "raster:bands[0].offset"
