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


def test_a_failed_read_closes_its_handle(tmp_path: Path) -> None:
    pool = DatasetPool(max_idle=4)
    href = _raster(tmp_path / "a.tif", 1)
    with pytest.raises(RuntimeError), pool.dataset(href) as src:
        raise RuntimeError("read failed")
    assert src.closed and pool.idle() == 0
