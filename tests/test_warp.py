"""Sentinel-1 resampling onto the grid (pipeline.warp): a pixel's value does not depend
on the chunk or tile layout, and equals GDAL's bilinear warp where that is exact."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from pipeline import warp
from pipeline.ingest import SceneLog, load_s1

CRS = "EPSG:32634"


def _scene(root: Path, name: str, when: dt.datetime, seed: int,
           hole: bool = False) -> pystac.Item:
    """A speckled scene on a lat/lon grid (as CDSE backscatter COGs are), ~10 x 11 m."""
    rng = np.random.default_rng(seed)
    w, n, rx, ry = 23.70, 55.78, 0.00016, 0.0001
    width, height = 160, 260
    power = (0.05 * rng.gamma(4.4, 1 / 4.4, (height, width))).astype(np.float32)
    if hole:
        power[100:140, 60:90] = np.nan
        power[:, :3] = 0.0  # the dark, invalid border real scenes have
    folder = root / name
    folder.mkdir(parents=True)
    item = pystac.Item(name, mapping(box(w, n - height * ry, w + width * rx, n)),
                       [w, n - height * ry, w + width * rx, n], when,
                       {"sat:orbit_state": "ascending"})
    for pol, scale in (("vv", 1.0), ("vh", 0.2)):
        path = folder / f"{pol}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                           dtype="float32", crs="EPSG:4326", nodata=np.nan,
                           transform=from_origin(w, n, rx, ry), tiled=True,
                           blockxsize=64, blockysize=64) as dst:
            dst.write(power * scale, 1)
        item.add_asset(pol, pystac.Asset(str(path), roles=["data"]))
    return item


def _grid() -> GeoBox:
    # A UTM grid over the scene, starting outside it (pixels with no data).
    return GeoBox.from_bbox((669_250, 6_182_500, 670_600, 6_184_500), CRS, resolution=10)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[pystac.Item]:
    root = tmp_path_factory.mktemp("s1")
    t = dt.datetime(2023, 5, 3, 16, 10, tzinfo=dt.UTC)
    return [_scene(root, "a", t, 0, hole=True),
            # the next slice of the same pass: same solar day, fills the hole
            _scene(root, "b", t + dt.timedelta(seconds=25), 1),
            _scene(root, "c", t + dt.timedelta(days=6), 2)]


def _load(items: list[pystac.Item], geobox: GeoBox, chunk: int) -> dict[str, np.ndarray]:
    with dask.config.set(scheduler="synchronous"):
        out = load_s1(items, geobox, SceneLog(), chunk=chunk)
        return {k: v.values for k, v in zip(out, dask.compute(*out.values()), strict=True)}


def test_pixels_do_not_depend_on_chunks_or_tiles(items: list[pystac.Item]) -> None:
    gb = _grid()
    ref = _load(items, gb, 256)
    assert set(ref) == {"vv_asc", "vh_asc"}
    assert ref["vv_asc"].shape == (2, *gb.shape)  # two solar days
    assert 0.5 < np.isfinite(ref["vv_asc"]).mean() < 0.99  # the grid overhangs the scene
    for chunk in (16, 37):
        got = _load(items, gb, chunk)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
    # a tile of the grid sees the same pixels as the whole grid
    tile = gb[40:90, 30:77]
    got = _load(items, tile, 20)
    np.testing.assert_array_equal(got["vh_asc"], ref["vh_asc"][:, 40:90, 30:77])


def test_equals_gdal_bilinear_on_small_windows(items: list[pystac.Item]) -> None:
    gb = _grid()[50:114, 60:124]  # inside the scene, over the first one's hole
    ours = warp.sample_scene(warp.scene_of(items[2], ["vv"]), gb)
    assert ours is not None
    gdal = np.full(gb.shape, np.nan, np.float32)
    with rasterio.open(items[2].assets["vv"].href) as src:
        for y0 in range(0, 64, 8):
            for x0 in range(0, 64, 8):
                sub = gb[y0 : y0 + 8, x0 : x0 + 8]
                dst = np.full((8, 8), np.nan, np.float32)
                rasterio.warp.reproject(rasterio.band(src, 1), dst, src_nodata=np.nan,
                                        dst_crs=CRS, dst_transform=sub.transform,
                                        dst_nodata=np.nan, resampling=Resampling.bilinear)
                gdal[y0 : y0 + 8, x0 : x0 + 8] = dst
    diff_db = np.abs(10 * np.log10(ours[0]) - 10 * np.log10(gdal))
    assert np.nanmax(diff_db) < 0.01
    assert np.isfinite(ours[0]).mean() > 0.99


def test_invalid_pixels_and_same_day_fusion(items: list[pystac.Item]) -> None:
    gb = _grid()
    alone = _load(items[:1], gb, 64)["vv_asc"][0]
    both = _load(items[:2], gb, 64)["vv_asc"][0]
    outside = np.isnan(_load(items[1:2], gb, 64)["vv_asc"][0])
    # pixels off the scene and in its hole are NaN, never 0 or a border value
    assert np.isnan(alone[outside]).all()
    assert np.isnan(alone).sum() > outside.sum()
    assert np.nanmin(alone) > 0
    # the day's second slice fills the first one's hole only (first valid wins)
    filled = np.isnan(alone) & np.isfinite(both)
    assert filled.sum() > 300
    kept = np.isfinite(alone)
    np.testing.assert_array_equal(both[kept], alone[kept])


def test_solar_day_and_time_label(items: list[pystac.Item]) -> None:
    scenes = [warp.scene_of(it, ["vv", "vh"]) for it in items]
    days = warp.group_days(scenes[::-1])
    assert [len(d) for d in days] == [2, 1]
    assert [s.id for s in days[0]] == ["a", "b"]
    assert days[0][0].time == dt.datetime(2023, 5, 3, 16, 10)


def test_positions_proj_cannot_transform_are_left_empty(items: list[pystac.Item]) -> None:
    with rasterio.open(items[2].assets["vv"].href) as src:
        col = np.array([[10.2, np.inf], [np.nan, 40.7]])
        row = np.array([[20.5, 5.0], [7.0, 90.1]])
        got = warp._bilinear(src, col, row)
        assert got is not None
        assert np.isfinite(got[0, 0]) and np.isfinite(got[1, 1])
        assert np.isnan(got[0, 1]) and np.isnan(got[1, 0])
        assert warp._bilinear(src, np.full((2, 2), np.inf), row) is None


def test_all_valid_windows_take_the_plans_weight_sums_bit_for_bit() -> None:
    """A window without invalid cells skips the weight sums (the plan holds them): the
    pixels it gives equal those the general path gives, wherever one invalid cell placed
    elsewhere in the window does not reach them, bit for bit."""
    rng = np.random.default_rng(3)
    col = rng.uniform(-3, 63, (40, 40))  # some positions beyond the raster's edges
    row = rng.uniform(-3, 53, (40, 40))
    plan = warp._bilinear_plan(col, row, 50, 60)
    assert plan is not None
    data = rng.gamma(4.4, 0.05 / 4.4, (plan.window.height, plan.window.width)).astype(
        np.float32)
    fast = warp._bilinear_apply(plan, data, None)
    holed = data.copy()
    holed[0, 0] = np.nan  # the window's first cell: the general path
    general = warp._bilinear_apply(plan, holed, None)
    pad = plan.window.width + 4
    near = np.zeros_like(fast, bool)
    for idx in plan.index:
        near |= idx == 2 * pad + 2  # the padded index of the window's first cell
    assert near.any() and (~near).sum() > 1000
    assert np.isfinite(fast[~near]).any() and np.isnan(fast[~near]).any()
    np.testing.assert_array_equal(fast[~near], general[~near])
