"""Long-lived objects kept out of the cyclic collector while chunks run (pipeline.heap)."""

from __future__ import annotations

import gc
import threading

from pipeline import heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_frozen_from_first_entry_to_last_exit_and_garbage_still_collected() -> None:
    assert gc.get_freeze_count() == 0
    alive = [_Cycle() for _ in range(10)]
    with heap.frozen():
        frozen = gc.get_freeze_count()
        assert frozen >= len(alive)
        with heap.frozen():  # nested: nothing more frozen, nothing unfrozen on exit
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
        # cycles made inside the block are collected as before
        for _ in range(100):
            _Cycle()
        assert gc.collect() >= 100
    assert gc.get_freeze_count() == 0
    del alive


def test_concurrent_blocks_unfreeze_when_the_last_ends() -> None:
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with heap.frozen():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    with heap.frozen():
        pass
    assert gc.get_freeze_count() > 0  # the other block is still open
    release.set()
    t.join(10)
    assert gc.get_freeze_count() == 0


def test_a_chunked_write_leaves_nothing_frozen(tmp_path) -> None:
    import numpy as np
    import xarray as xr

    from pipeline.cube import write_chunked

    ds = xr.Dataset({"v": (("time", "y", "x"), np.zeros((2, 8, 8), np.float32))}).chunk(
        {"y": 4, "x": 4})
    write_chunked(ds, tmp_path / "c.zarr", "ingest", "i", workers=2)
    assert gc.get_freeze_count() == 0
