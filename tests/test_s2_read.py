"""Sentinel-2 reads onto the grid (pipeline.ingest through pipeline.warp's nearest
sampling): the same NDVI as odc-stac's load of the same items, GDAL's nearest pick
where the grid differs from the scene's, and pixels that do not depend on chunks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dask
import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
import rasterio.warp
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from pipeline import s2 as s2mod
from pipeline import warp
from pipeline.ingest import SceneLog, load_s2_ndvi

CRS = "EPSG:32634"
X0, Y0 = 670_000.0, 6_184_000.0  # the scenes' top-left corner
SIZE = 1200  # metres


def _write(path: Path, data: np.ndarray, res: float, crs: str = CRS,
           origin: tuple[float, float] = (X0, Y0)) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs, nodata=0,
                       transform=from_origin(*origin, res, res), tiled=True, blockxsize=32,
                       blockysize=32) as dst:
        dst.write(data, 1)


def _scene(root: Path, name: str, when: dt.datetime, seed: int,
           cut: slice | None = None) -> pystac.Item:
    """An L2A-like scene: B04/B08 levels at 10 m, SCL at 20 m with clouds; ``cut``
    columns (10 m) carry no data, as a swath edge."""
    rng = np.random.default_rng(seed)
    n10 = int(SIZE / 10)
    red = rng.integers(1300, 2500, (n10, n10)).astype(np.uint16)  # levels carry +1000
    nir = rng.integers(2500, 6000, (n10, n10)).astype(np.uint16)
    scl = rng.choice(np.array([4, 5, 8, 9, 3], np.uint8), (n10 // 2, n10 // 2),
                     p=[0.5, 0.2, 0.15, 0.1, 0.05])
    if cut is not None:
        red[:, cut] = 0
        nir[:, cut] = 0
        scl[:, slice(cut.start // 2, cut.stop // 2)] = 0
    folder = root / name
    folder.mkdir(parents=True)
    geom = box(*rasterio.warp.transform_bounds(CRS, "EPSG:4326", X0, Y0 - SIZE, X0 + SIZE, Y0))
    item = pystac.Item(name, mapping(geom), list(geom.bounds), when,
                       {"s2:processing_baseline": "05.09", "proj:epsg": 32634})
    for key, data, res in (("B04", red, 10), ("B08", nir, 10), ("SCL", scl, 20)):
        _write(folder / f"{key}.tif", data, res)
        asset = pystac.Asset(str(folder / f"{key}.tif"), roles=["data"],
                             extra_fields={"raster:bands": [{"nodata": 0}]})
        if key != "SCL":
            asset.extra_fields["raster:bands"][0].update(scale=1e-4, offset=-0.1)
        item.add_asset(key, asset)
    return item


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[pystac.Item]:
    root = tmp_path_factory.mktemp("s2")
    t = dt.datetime(2023, 6, 3, 9, 50, tzinfo=dt.UTC)
    return [_scene(root, "a", t, 0, cut=slice(0, 40)),
            # the same day, the neighbouring granule: fills the first one's edge
            _scene(root, "b", t + dt.timedelta(seconds=5), 1),
            _scene(root, "c", t + dt.timedelta(days=5), 2)]


def _grid() -> GeoBox:
    # overhangs the scenes to the west and south (no data there)
    return GeoBox.from_bbox((X0 - 200, Y0 - SIZE - 100, X0 + SIZE - 300, Y0), CRS,
                            resolution=10)


def _ndvi(items: list[pystac.Item], geobox: GeoBox, chunk: int) -> np.ndarray:
    with dask.config.set(scheduler="synchronous"):
        da = load_s2_ndvi(items, geobox, SceneLog(), chunk=chunk)
        assert da is not None
        return da.values


def test_ndvi_equals_odc_stac_load_of_the_same_items(items: list[pystac.Item]) -> None:
    gb = _grid()
    ours = _ndvi(items, gb, 48)
    ds = odc.stac.load(items, bands=["B04", "B08", "SCL"], geobox=gb, groupby="solar_day",
                       resampling="nearest", chunks={}).compute()
    red = ds["B04"].astype(np.float32) * 1e-4 - 0.1
    nir = ds["B08"].astype(np.float32) * 1e-4 - 0.1
    keep = (ds["B04"] > 0) & (ds["B08"] > 0) & s2mod.clear_mask(ds["SCL"].values)
    want = np.where(keep, s2mod.compute_ndvi(red.values, nir.values), np.nan)
    assert ours.shape == want.shape == (2, *gb.shape)
    np.testing.assert_array_equal(ours, want)
    assert 0.3 < np.isfinite(ours[0]).mean() < 0.9


def test_pixels_do_not_depend_on_chunks_or_tiles(items: list[pystac.Item]) -> None:
    gb = _grid()
    ref = _ndvi(items, gb, 256)
    for chunk in (16, 37):
        np.testing.assert_array_equal(_ndvi(items, gb, chunk), ref)
    np.testing.assert_array_equal(_ndvi(items, gb[30:70, 25:90], 20), ref[:, 30:70, 25:90])


def test_same_day_fusion_first_valid_in_time_order(items: list[pystac.Item]) -> None:
    gb = _grid()
    alone = _ndvi(items[:1], gb, 64)[0]
    both = _ndvi(items[:2], gb, 64)[0]
    other = _ndvi(items[1:2], gb, 64)[0]
    # the first granule's pixels stand; its no-data edge is the second's
    has = np.isfinite(alone)
    np.testing.assert_array_equal(both[has], alone[has])
    edge = slice(20, 60)  # grid columns of the first granule's 40 empty columns
    assert np.isnan(alone[:, edge]).all()
    np.testing.assert_array_equal(both[:, edge], other[:, edge])


@pytest.mark.parametrize("crs", [CRS, "EPSG:32635"])
def test_nearest_is_gdal_nearest(items: list[pystac.Item], crs: str) -> None:
    """20 m classes onto the 10 m grid, in the scene's zone and in the next one."""
    href = items[2].assets["SCL"].href
    with rasterio.open(href) as src:
        bounds = rasterio.warp.transform_bounds(CRS, crs, X0 + 100, Y0 - 900, X0 + 800, Y0 - 50)
    gb = GeoBox.from_bbox(bounds, crs, resolution=10)
    scene = warp.scene_of(items[2], ["SCL"])
    ours = warp.sample_nearest(scene, gb)
    assert ours is not None
    gdal = np.zeros(gb.shape, np.uint8)
    with rasterio.open(href) as src:
        rasterio.warp.reproject(rasterio.band(src, 1), gdal, dst_crs=crs,
                                dst_transform=gb.transform, resampling=Resampling.nearest)
    same = ours[0] == gdal
    if crs == CRS:
        assert same.all()
    else:  # GDAL's approximate transformer may pick the other side of a pixel edge
        assert same.mean() > 0.99
    assert (ours[0] > 0).mean() > 0.9
