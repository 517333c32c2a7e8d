"""Ingestion on tiny generated archives with exactly known values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from shapely.geometry import box

from pipeline.aoi import AOI, make_geobox
from pipeline.ingest import SceneLog, bin_block, bin_to_grid, make_cube
from pipeline.s2 import reflectance_scaling
from pipeline.sources.stac import StaticCatalogSource
from pipeline.timegrid import TimeGrid
from tests import stacfixtures as fx

UTC = dt.UTC


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("arch")
    s2 = [
        # bin 2023-04-01..06: two clear-ish scenes, red/nir give NDVI 0.5 and 0.7
        fx.s2_item(root, dt.datetime(2023, 4, 2, 9, 50, tzinfo=UTC), 0.05, 0.15, cloud_rows=0),
        fx.s2_item(root, dt.datetime(2023, 4, 5, 9, 50, tzinfo=UTC), 0.03, 0.17, cloud_rows=10),
        # bin 2023-04-07..12: fully cloudy
        fx.s2_item(root, dt.datetime(2023, 4, 9, 9, 50, tzinfo=UTC), 0.3, 0.3, cloud_rows=40),
        # bin 2023-04-13..18: clear, NDVI 0.6
        fx.s2_item(root, dt.datetime(2023, 4, 14, 9, 50, tzinfo=UTC), 0.04, 0.16, cloud_rows=0),
    ]
    s1 = [
        fx.s1_item(root, dt.datetime(2023, 4, 3, 16, 10, tzinfo=UTC), "ascending", 0.1, 0.01),
        fx.s1_item(root, dt.datetime(2023, 4, 3, 4, 40, tzinfo=UTC), "descending", 0.05, 0.02),
        fx.s1_item(root, dt.datetime(2023, 4, 5, 16, 10, tzinfo=UTC), "ascending", 0.3, 0.03),
    ]
    return fx.write_catalog(root, s2, s1)


def _aoi() -> AOI:
    w, s, e, n = fx.tile_lonlat_bounds(margin_m=-60)
    return AOI(box(w, s, e, n), "t")


def _cube(catalog):
    src = StaticCatalogSource(str(catalog))
    aoi = _aoi()
    grid = TimeGrid.covering("2023-04-01", "2023-04-20")
    s2 = src.search_s2(aoi.geometry, grid.start, grid.end)
    s1 = src.search_s1(aoi.geometry, grid.start, grid.end)
    scenes = SceneLog()
    cube = make_cube(s2, s1, aoi, make_geobox(aoi), grid, scenes, chunk=16)
    return cube, scenes, grid


def test_search_filters_by_collection_and_period(archive):
    src = StaticCatalogSource(str(archive))
    aoi = _aoi()
    assert len(src.search_s2(aoi.geometry, dt.date(2023, 4, 1), dt.date(2023, 4, 10))) == 3
    assert len(src.search_s1(aoi.geometry, dt.date(2023, 4, 1), dt.date(2023, 4, 30))) == 3
    far = box(10, 10, 11, 11)
    assert src.search_s2(far, dt.date(2023, 4, 1), dt.date(2023, 4, 30)) == []


def test_offset_applied_once_mask_and_bin_mean(archive):
    cube, scenes, grid = _cube(archive)
    ndvi = cube["ndvi"].values
    count = cube["ndvi_count"].values
    assert ndvi.shape[0] == grid.count == 4
    # bin 0: top rows cloudy in the second scene -> only the first (0.5); below both (mean 0.6)
    top, bottom = ndvi[0, 0, :], ndvi[0, -1, :]
    np.testing.assert_allclose(top[np.isfinite(top)], 0.5, atol=2e-3)
    np.testing.assert_allclose(bottom, 0.6, atol=2e-3)
    assert count[0, -1, 0] == 2
    assert np.isnan(ndvi[1]).all() and (count[1] == 0).all()
    np.testing.assert_allclose(ndvi[2], 0.6, atol=2e-3)
    assert np.isnan(ndvi[3]).all()
    assert not scenes.skipped


def test_s1_directions_kept_apart_and_mean_in_linear_power(archive):
    cube, _, _ = _cube(archive)
    # two ascending scenes in bin 0: mean of 0.1 and 0.3 in power -> 10*log10(0.2)
    np.testing.assert_allclose(cube["vv_asc"].values[0], 10 * np.log10(0.2), atol=1e-3)
    np.testing.assert_allclose(cube["vv_desc"].values[0], 10 * np.log10(0.05), atol=1e-3)
    np.testing.assert_allclose(cube["vh_desc"].values[0], 10 * np.log10(0.02), atol=1e-3)
    assert np.isnan(cube["vv_asc"].values[1:]).all()


def test_cube_chunks_keep_time_whole(archive):
    cube, _, grid = _cube(archive)
    assert cube["ndvi"].chunks[0] == (grid.count,)


def test_unreadable_scene_is_skipped_and_recorded(tmp_path):
    good = fx.s2_item(tmp_path, dt.datetime(2023, 4, 2, 9, 50, tzinfo=UTC), 0.05, 0.15, 0)
    bad = fx.s2_item(tmp_path, dt.datetime(2023, 4, 8, 9, 50, tzinfo=UTC), 0.05, 0.15, 0)
    href = bad.assets["B08_10m"].href
    data = open(href, "rb").read()
    open(href, "wb").write(data[: len(data) // 3])
    cat = fx.write_catalog(tmp_path, [good, bad], [])
    src = StaticCatalogSource(str(cat))
    aoi = _aoi()
    grid = TimeGrid.covering("2023-04-01", "2023-04-12")
    scenes = SceneLog()
    cube = make_cube(src.search_s2(aoi.geometry, grid.start, grid.end), [], aoi,
                     make_geobox(aoi), grid, scenes, chunk=16)
    assert [s["id"] for s in scenes.skipped] == [bad.id]
    assert "B08_10m" in scenes.skipped[0]["reason"]
    assert np.isnan(cube["ndvi"].values[1]).all()
    assert np.isnan(cube["vv_asc"].values).all()


@pytest.mark.parametrize(
    ("raster", "props", "expected"),
    [
        (True, {}, (1e-4, -0.1)),
        (False, {"s2:processing_baseline": "05.09"}, (1e-4, -0.1)),
        (False, {"s2:processing_baseline": "03.01"}, (1e-4, 0.0)),
        (False, {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True},
         (1e-4, 0.0)),
        # Earth Search declares the offset in raster:bands *and* sets the flag: the flag wins
        (True, {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True},
         (1e-4, 0.0)),
        (True, {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": False},
         (1e-4, -0.1)),
    ],
)
def test_reflectance_scaling_never_twice(tmp_path, raster, props, expected):
    item = fx.s2_item(tmp_path, dt.datetime(2023, 4, 2, tzinfo=UTC), 0.05, 0.15, 0,
                      declare_raster=raster)
    item.properties.clear()
    item.properties.update(props)
    got = reflectance_scaling(item, "B04_10m")
    assert (got.scale, got.offset) == pytest.approx(expected)


def test_double_offset_is_flagged_and_read_once(tmp_path, caplog):
    """DNs with the offset already removed, declared -0.1 again: flagged, NDVI still right."""
    when = dt.datetime(2023, 4, 2, 9, 50, tzinfo=UTC)
    bad = fx.s2_item(tmp_path, when, 0.05, 0.15, 0, offset_dn=0, declared_offset_dn=-1000)
    good = fx.s2_item(tmp_path, when + dt.timedelta(days=12), 0.04, 0.16, 0)
    src = StaticCatalogSource(str(fx.write_catalog(tmp_path, [bad, good], [])))
    aoi = _aoi()
    grid = TimeGrid.covering("2023-04-01", "2023-04-20")
    scenes = SceneLog()
    with caplog.at_level("WARNING", logger="pipeline.ingest"):
        cube = make_cube(src.search_s2(aoi.geometry, grid.start, grid.end), [], aoi,
                         make_geobox(aoi), grid, scenes, chunk=16)
    used = {u["id"]: u for u in scenes.used}
    assert "applied twice" in str(used[bad.id]["offset_check"]["flag"])
    assert used[bad.id]["offset"] == 0.0 and used[bad.id]["offset_source"].startswith("data check")
    assert "flag" not in used[good.id]["offset_check"] and used[good.id]["offset"] == -0.1
    assert any(bad.id in r.getMessage() and "applied twice" in r.getMessage()
               for r in caplog.records)
    ndvi = cube["ndvi"].values
    np.testing.assert_allclose(ndvi[0], 0.5, atol=1e-6)  # (0.15-0.05)/(0.15+0.05)
    np.testing.assert_allclose(ndvi[2], 0.6, atol=1e-6)


def _random_obs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (9, 5, 7)).astype(np.float32)
    obs[rng.random(obs.shape) < 0.4] = np.nan
    idx = np.array([-1, 0, 0, 0, 2, 2, 3, 3, -1])  # bin 1 has no acquisition
    return obs, idx


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bin_block_is_the_nan_mean_and_count_per_bin(seed):
    obs, idx = _random_obs(seed)
    mean, count = bin_block(obs, idx, 4)
    assert mean.dtype == np.float32 and count.dtype == np.uint8
    for b in range(4):
        sub = obs[idx == b].astype(np.float64)
        n = np.isfinite(sub).sum(axis=0)
        np.testing.assert_array_equal(count[b], n)
        with np.errstate(invalid="ignore"):
            want = np.where(n > 0, np.nansum(sub, axis=0) / np.maximum(n, 1), np.nan)
        np.testing.assert_allclose(mean[b], want, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isnan(mean[1]).all() and (count[1] == 0).all()


def _bin_reference(obs: np.ndarray, idx: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition by acquisition: float32 sums from +0.0 in time order, float64 mean."""
    total = np.zeros((nbins, *obs.shape[1:]), np.float32)
    n = np.zeros((nbins, *obs.shape[1:]), np.int64)
    for t, b in enumerate(idx):
        if b >= 0:
            ok = ~np.isnan(obs[t])
            total[b] += np.where(ok, obs[t], np.float32(0))
            n[b] += ok
    with np.errstate(invalid="ignore"):
        return (total / np.where(n > 0, n, np.nan)).astype(np.float32), n.astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bin_block_equals_the_sequential_sums_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (40, 6, 5)).astype(np.float32) * 10 ** rng.uniform(-3, 3, 40)[
        :, None, None].astype(np.float32)
    obs[rng.random(obs.shape) < 0.5] = np.nan
    obs[3] = -0.0  # a lone negative zero is stored as the sum gives it: +0.0
    idx = np.sort(rng.integers(-1, 9, 40))  # up to ~8 acquisitions a bin, some bins empty
    idx[idx == 2] = -1
    mean, count = bin_block(obs, idx, 9)
    want_mean, want_count = _bin_reference(obs, idx, 9)
    assert mean.tobytes() == want_mean.tobytes()
    np.testing.assert_array_equal(count, want_count)


def test_bin_block_refuses_acquisitions_out_of_order():
    obs = np.ones((3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="time order"):
        bin_block(obs, np.array([1, 0, 2]), 3)


def test_bin_to_grid_dask_equals_numpy_and_sorts_time():
    obs, _ = _random_obs(3)
    grid = TimeGrid.covering("2023-04-01", "2023-04-24")  # 4 bins
    days = pd.to_datetime(["2023-03-20", "2023-04-01", "2023-04-03", "2023-04-06",
                           "2023-04-14", "2023-04-16", "2023-04-19", "2023-04-23",
                           "2023-05-30"])
    idx = grid.bin_index(days.values)
    want_mean, want_count = bin_block(obs, idx, grid.count)
    perm = np.random.default_rng(0).permutation(len(days))  # acquisitions out of order
    da = xr.DataArray(obs[perm], dims=("time", "y", "x"),
                      coords={"time": days.values[perm], "y": np.arange(5.0),
                              "x": np.arange(7.0)}).chunk({"time": 2, "y": 2, "x": 3})
    template = xr.DataArray(np.zeros((5, 7), np.float32), dims=("y", "x"),
                            coords={"y": np.arange(5.0), "x": np.arange(7.0)}
                            ).chunk({"y": 2, "x": 3})
    mean, count = bin_to_grid(da, grid, template)
    assert mean.chunks == ((4,), (2, 2, 1), (3, 3, 1))
    np.testing.assert_array_equal(count.values, want_count)
    np.testing.assert_allclose(mean.values, want_mean, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(mean["time"].values, grid.starts.values)


HAS_JP2 = "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values()


@pytest.mark.skipif(not HAS_JP2, reason="GDAL's JP2OpenJPEG driver is missing")
def test_jpeg2000_blocks_larger_than_a_chunk_give_the_cube_of_one_chunk(archive, tmp_path):
    """The Sentinel-2 assets as JPEG2000 tiled 32 x 32 against 16-pixel chunks: the
    chunks share tiles, read through one handle per raster and process (by four threads
    at once here) and kept in a block cache grown for them."""
    from pipeline import s2 as s2mod
    from pipeline import warp
    from pipeline.handles import POOL

    src = StaticCatalogSource(str(archive))
    aoi = _aoi()
    grid = TimeGrid.covering("2023-04-01", "2023-04-20")
    s2 = src.search_s2(aoi.geometry, grid.start, grid.end)
    s1 = src.search_s1(aoi.geometry, grid.start, grid.end)
    geobox = make_geobox(aoi)
    tif_cube = make_cube(s2, s1, aoi, geobox, grid, SceneLog(), chunk=16).compute()
    for i, item in enumerate(s2):
        for key in (s2mod.asset_key(item, b) for b in s2mod.S2.bands):
            with rasterio.open(item.assets[key].get_absolute_href()) as tif:
                drop = ("compress", "tiled", "interleave", "blockxsize", "blockysize")
                profile = {k: v for k, v in tif.profile.items() if k not in drop}
                path = tmp_path / f"{i}_{key}.jp2"
                with rasterio.open(path, "w", **{**profile, "driver": "JP2OpenJPEG"},
                                   blockxsize=32, blockysize=32, quality=100,
                                   reversible=True) as dst:
                    dst.write(tif.read())
            item.assets[key].href = str(path)
    days = warp.group_days([warp.scene_of(i, [s2mod.asset_key(i, b) for b in s2mod.S2.bands])
                            for i in s2])
    large = warp.large_blocks(days, geobox, 16)
    assert large.nbytes > 0 and len(large.hrefs) == 3 * len(s2)
    POOL.clear()
    chunked = make_cube(s2, s1, aoi, geobox, grid, SceneLog(), chunk=16).compute(
        scheduler="threads", num_workers=4)
    whole = make_cube(s2, s1, aoi, geobox, grid, SceneLog(), chunk=max(geobox.shape)).compute(
        scheduler="sync")
    xr.testing.assert_identical(chunked, whole)
    xr.testing.assert_identical(chunked, tif_cube)  # lossless: the GeoTIFFs' cube
