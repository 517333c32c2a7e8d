"""Two full runs into one --out, started together as real processes: one runs, one is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

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
