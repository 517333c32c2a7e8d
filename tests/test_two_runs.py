"""Two full runs into one --out, started together as real processes: one runs, one is refused."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from pipeline.errors import InputError
from pipeline.storage import LOCK_NAME, _lock_holder, claim_out
from tests.conftest import END, START

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = ("ndvi_filled.tif", "observed.tif", "ndvi_observed.tif")


def test_second_of_two_concurrent_runs_is_refused_and_the_first_completes(
    small_aoi: Path, demo_cache: Path, demo_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "one-out"
    cmd = [sys.executable, "-m", "pipeline", "run", "-q", "--aoi", str(small_aoi),
           "--cache", str(demo_cache), "--out", str(out), "--start", START, "--end", END,
           "--method", "linear", "--scheduler", "threads"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=tmp_path) for _ in range(2)]
    ended: dict[int, float] = {}
    deadline = time.monotonic() + 300
    while len(ended) < 2 and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.05)
    results = [(p.returncode, *p.communicate(timeout=60)) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = next(i for i, r in enumerate(results) if r[0] == 0)
    loser = 1 - winner
    err = results[loser][2].strip()
    assert len(err.splitlines()) == 1 and "in use by another run (pid " in err, err
    assert f"pid {procs[winner].pid}" in err
    assert ended[loser] < ended[winner]  # refused at once, not after doing the work
    # the winner's products are complete and the same as those of a run alone
    for name in PRODUCTS:
        with rasterio.open(demo_run / name) as alone, rasterio.open(out / name) as both:
            np.testing.assert_array_equal(alone.read(), both.read(), err_msg=name)
    record = json.loads((out / "run.json").read_text())
    alone = json.loads((demo_run / "run.json").read_text())
    assert [u["id"] for u in record["scenes"]["used"]] == [u["id"] for u in alone["scenes"]["used"]]
    assert sorted(record["products"]) == sorted(alone["products"])


def test_a_run_refused_before_the_holder_wrote_its_line_still_names_it(tmp_path: Path) -> None:
    # the holder has the lock but writes "pid N: command" a moment later, as claim_out does
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    late = threading.Timer(0.2, lambda: os.write(fd, b"pid 4242: python -m pipeline run\n"))
    late.start()
    try:
        with pytest.raises(InputError, match=r"in use by another run \(pid 4242: python -m"):
            with claim_out(out):
                pass
    finally:
        late.join()
        os.close(fd)
    assert (out / LOCK_NAME).exists()  # the holder's folder and lock are left alone


def test_a_holder_that_never_writes_its_line_is_another_process(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_NAME
    lock.write_text("")
    assert _lock_holder(lock, wait_s=0.1) == "another process"
    lock.write_text("pid 7: run\n")
    assert _lock_holder(lock, wait_s=0.1) == "pid 7: run"


def test_a_refused_run_that_created_the_folder_leaves_it_to_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both runs find no folder and create it; the other one takes the lock first
    out = tmp_path / "out"
    real_open = os.open
    holder: list[int] = []

    def other_run_first(file: str | os.PathLike[str], flags: int, mode: int = 0o777,
                        **kw: Any) -> int:  # os.open itself: shutil.rmtree calls it too
        if not holder and Path(file).name == LOCK_NAME:
            fd = real_open(file, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, b"pid 4242: python -m pipeline run\n")
            holder.append(fd)
        return real_open(file, flags, mode, **kw)

    monkeypatch.setattr("pipeline.storage.os.open", other_run_first)
    try:
        with pytest.raises(InputError, match=r"in use by another run \(pid 4242"):
            with claim_out(out):
                pass
        # the holder's lock file is still the one it locked, so a third run is refused too
        assert (out / LOCK_NAME).read_text() == "pid 4242: python -m pipeline run\n"
        assert os.fstat(holder[0]).st_ino == os.stat(out / LOCK_NAME).st_ino
    finally:
        os.close(holder[0])


def test_a_lock_file_removed_before_it_was_locked_is_claimed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a failed run removes its empty folder between this run's open and its lock
    out = tmp_path / "out"
    real_flock = fcntl.flock
    calls: list[int] = []

    def removed_in_between(fd: int, op: int) -> None:
        if not calls:
            shutil.rmtree(out)
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr("pipeline.storage.fcntl.flock", removed_in_between)
    with claim_out(out):
        assert len(calls) == 2
        # the lock held is the file a second run finds
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                real_flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()}: ")
