"""The pool of open raster datasets the ingest reads through (pipeline.handles)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from pipeline.handles import DatasetPool


def _raster(path: Path, value: int) -> str:
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32634", transform=from_origin(0, 80, 10, 10)) as dst:
        dst.write(np.full((8, 8), value, np.uint8), 1)
    return str(path)


def test_a_handle_is_reused_and_a_rewritten_file_opened_afresh(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=4)
    href = _raster(tmp_path / "a.tif", 1)
    with pool.dataset(href) as src:
        first = src
        assert src.read(1)[0, 0] == 1
    with pool.dataset(href) as src:
        assert src is first and not src.closed
    assert pool.idle() == 1
    _raster(tmp_path / "a.tif", 2)
    st = os.stat(href)
    os.utime(href, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later mtime
    with pool.dataset(href) as src:
        assert src is not first
        assert src.read(1)[0, 0] == 2
    pool.clear()
    assert pool.idle() == 0 and first.closed


def test_at_most_max_idle_handles_stay_open(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=3)
    handles = []
    for i in range(5):
        with pool.dataset(_raster(tmp_path / f"{i}.tif", i)) as src:
            handles.append(src)
    assert pool.idle() == 3
    assert [h.closed for h in handles] == [True, True, False, False, False]  # oldest closed
    pool.clear()


def test_concurrent_users_of_one_asset_get_their_own_handle(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=8)
    href = _raster(tmp_path / "a.tif", 7)
    inside, release = threading.Barrier(2), threading.Event()
    seen: list[object] = []

    def reader() -> None:
        with pool.dataset(href) as src:
            seen.append(src)
            inside.wait()
            release.wait()
            assert src.read(1)[0, 0] == 7

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    while len(seen) < 2:
        pass
    release.set()
    for t in threads:
        t.join()
    assert seen[0] is not seen[1]
    assert pool.idle() == 2
    pool.clear()


def test_users_of_a_shared_asset_take_turns_with_one_handle(tmp_path: Path) -> None:
    """GDAL caches blocks per handle: a second handle would decode the blocks again."""
    pool = DatasetPool(max_idle=8)
    href = _raster(tmp_path / "a.tif", 7)
    holding, release = threading.Event(), threading.Event()
    seen: list[object] = []
    order: list[str] = []

    def first() -> None:
        with pool.dataset(href, shared=True) as src:
            seen.append(src)
            holding.set()
            release.wait()
            order.append("first done")

    def second() -> None:
        holding.wait()
        with pool.dataset(href, shared=True) as src:
            order.append("second in")
            seen.append(src)
            assert src.read(1)[0, 0] == 7

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    holding.wait()
    threads[1].join(timeout=0.3)
    assert threads[1].is_alive(), "the second user waits while the handle is in use"
    release.set()
    for t in threads:
        t.join()
    assert order == ["first done", "second in"]
    assert seen[0] is seen[1] and pool.idle() == 1
    pool.clear()


def test_a_failed_shared_read_lets_the_next_user_open_afresh(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=8)
    href = _raster(tmp_path / "a.tif", 7)
    with pytest.raises(RuntimeError), pool.dataset(href, shared=True):
        raise RuntimeError("read failed")
    with pool.dataset(href, shared=True) as src:  # does not wait for the closed handle
        assert src.read(1)[0, 0] == 7
    assert pool.idle() == 1
    pool.clear()


def test_a_failed_read_closes_its_handle(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=4)
    href = _raster(tmp_path / "a.tif", 1)
    with pytest.raises(RuntimeError), pool.dataset(href) as src:
        raise RuntimeError("read failed")
    assert src.closed and pool.idle() == 0


_CACHE_PROBE = """
import sys, numpy as np, rasterio, rasterio.env
from pipeline.handles import POOL
with POOL.dataset(sys.argv[1]) as src:
    src.read(1)
print(rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
"""


@pytest.mark.parametrize("env", [None, "200"])
def test_the_pool_bounds_gdal_block_cache_unless_the_user_set_it(tmp_path: Path,
                                                                env: str | None) -> None:
    """The default cache (5 % of RAM per process) would hold every scene's blocks."""
    import subprocess
    import sys

    from pipeline.handles import BLOCK_CACHE_MB

    href = _raster(tmp_path / "a.tif", 1)
    environ = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    if env is not None:
        environ["GDAL_CACHEMAX"] = env
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE, href], env=environ,
                         capture_output=True, text=True, check=True).stdout
    want = BLOCK_CACHE_MB if env is None else int(env)
    assert int(out.split()[-1]) == want * 2**20


_RESERVE_PROBE = """
import sys, rasterio.env
from pipeline.handles import reserve_block_cache
reserve_block_cache(100 * 2**20)
reserve_block_cache(10 * 2**20)  # never shrunk
print(rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
"""


@pytest.mark.parametrize("env", [None, "200"])
def test_a_reservation_grows_the_block_cache_unless_the_user_set_it(env: str | None) -> None:
    """Blocks larger than a chunk are kept for every chunk inside them."""
    import subprocess
    import sys

    from pipeline.handles import BLOCK_CACHE_MB, cache_cap

    environ = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    if env is not None:
        environ["GDAL_CACHEMAX"] = env
    out = subprocess.run([sys.executable, "-c", _RESERVE_PROBE], env=environ,
                         capture_output=True, text=True, check=True).stdout
    want = min(cache_cap(), (BLOCK_CACHE_MB + 100) * 2**20) if env is None else int(env) * 2**20
    assert int(out.split()[-1]) == want


HAS_JP2 = "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values()


@pytest.mark.skipif(not HAS_JP2, reason="GDAL's JP2OpenJPEG driver is missing")
def test_large_blocks_are_the_jpeg2000_blocks_larger_than_a_chunk_over_the_tile(
        tmp_path: Path) -> None:
    import datetime as dt

    from odc.geo.geobox import GeoBox

    from pipeline.warp import LargeBlocks, Scene, large_blocks

    def big(name: str, driver: str, **opts: object) -> str:
        """1024 x 1024 px of uint16 in 512-pixel blocks."""
        path = tmp_path / name
        with rasterio.open(path, "w", driver=driver, width=1024, height=1024, count=1,
                           dtype="uint16", crs="EPSG:32634", blockxsize=512, blockysize=512,
                           transform=from_origin(500000, 6010240, 10, 10), **opts) as dst:
            dst.write(np.ones((1024, 1024), np.uint16), 1)
        return str(path)

    jp2 = big("big.jp2", "JP2OpenJPEG", quality=100, reversible=True)
    tif = big("big.tif", "GTiff", tiled=True)  # cheap to decode again: not kept
    small = _raster(tmp_path / "small.tif", 1)
    when = dt.datetime(2023, 6, 1, 10)
    days = [[Scene((jp2, tif, small), when, when.date(), None, "a")]]
    # a tile over the first block column, rows 0-1 of blocks
    tile = GeoBox.from_bbox((500000 + 100, 6010240 - 6000, 500000 + 4000, 6010240 - 100),
                            "EPSG:32634", resolution=10)
    assert large_blocks(days, tile, chunk=256) == LargeBlocks(2 * 512 * 512 * 2,
                                                              frozenset({jp2}))
    assert large_blocks(days, tile, chunk=512) == LargeBlocks()  # blocks of a chunk's edge
    elsewhere = GeoBox.from_bbox((0, 0, 1000, 1000), "EPSG:32634", resolution=10)
    assert large_blocks(days, elsewhere, chunk=256) == LargeBlocks()
