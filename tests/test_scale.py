"""Scale-out and resume, with real processes: a dask scheduler and workers on loopback,
a run killed with SIGKILL and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import END, START

PRODUCTS = ("ndvi_filled.tif", "observed.tif", "ndvi_observed.tif")


def _cli(out: Path, aoi: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", "-q", "--aoi", str(aoi), "--cache",
            str(cache), "--out", str(out), "--start", START, "--end", END, "--method",
            "linear", *extra]


def _same_products(a: Path, b: Path) -> None:
    for name in PRODUCTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _wait_for_ingested(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> None:
    """Wait until ``n`` ingest regions of the run into ``out`` are marked done, or it ends."""
    marks = out / "cube.zarr.progress" / "ingest"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        # a marker being written is a hidden temporary ending in .done too
        if marks.is_dir() and len([m for m in marks.glob("*.done")
                                   if not m.name.startswith(".")]) >= n:
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, demo_cache, small_aoi) -> Path:
    """An uninterrupted local run with small chunks (many regions)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    subprocess.run(_cli(out, small_aoi, demo_cache, "--scheduler", "threads", "--chunk", "16"),
                   check=True)
    return out


def test_sigkill_mid_run_then_resume_is_identical(tmp_path, demo_cache, small_aoi, reference):
    out = tmp_path / "out"
    cmd = _cli(out, small_aoi, demo_cache, "--scheduler", "threads", "--chunk", "16",
               "--workers", "1")
    proc = subprocess.Popen(cmd, start_new_session=True)
    _wait_for_ingested(proc, out, 3)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "ndvi_filled.tif").exists()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "chunks already done" in res.stdout
    skipped = int(res.stdout.split("resumed, ")[1].split(" chunks")[0])
    assert skipped >= 3
    record = json.loads((out / "run.json").read_text())
    assert record["tiles"][0]["ingest"]["skipped"] >= 3
    _same_products(out, reference)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A real dask scheduler and two single-thread workers on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                 "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1",
                 "--name", f"w{i}", "--memory-limit", "2GiB", "--death-timeout", "30"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_run_on_existing_cluster_equals_local(tmp_path, demo_cache, small_aoi, reference,
                                              cluster):
    address, _ = cluster
    out = tmp_path / "out"
    subprocess.run(_cli(out, small_aoi, demo_cache, "--scheduler", address, "--chunk", "16"),
                   check=True)
    _same_products(out, reference)


def test_tiles_in_flight_on_a_cluster_equal_the_single_tile_run(
        tmp_path, demo_cache, small_aoi, reference, cluster):
    """Two tiles at a time on the cluster: the same mosaic, and run.json lists the scenes
    in tile order whichever tile finished first."""
    from pipeline.run import tiles_in_flight

    assert tiles_in_flight(True, 6) == 2 and tiles_in_flight(True, 1) == 1
    assert tiles_in_flight(False, 6) == 1
    address, _ = cluster
    runs = []
    for name, scheduler in (("cluster", address), ("threads", "threads")):
        out = tmp_path / name
        subprocess.run(_cli(out, small_aoi, demo_cache, "--scheduler", scheduler, "--chunk",
                            "16", "--tile-size", "300"), check=True)
        assert len(list((out / "tiles").iterdir())) > 2
        runs.append(out)
    for name in PRODUCTS:
        with rasterio.open(runs[0] / name) as a, rasterio.open(reference / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    used = [json.loads((r / "run.json").read_text())["scenes"]["used"] for r in runs]
    assert used[0] == used[1]


def test_worker_killed_mid_run_still_completes(tmp_path, demo_cache, small_aoi, reference,
                                               cluster):
    address, procs = cluster
    out = tmp_path / "out"
    run = subprocess.Popen(_cli(out, small_aoi, demo_cache, "--scheduler", address,
                                "--chunk", "16"))
    _wait_for_ingested(run, out, 2)
    assert run.poll() is None, "the run finished before a worker could be killed"
    os.killpg(procs[1].pid, signal.SIGKILL)  # worker w0 with its nanny
    assert run.wait(timeout=300) == 0
    with rasterio.open(out / "ndvi_filled.tif") as a, rasterio.open(
        reference / "ndvi_filled.tif"
    ) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_tiles_mosaic_equals_single_tile(tmp_path, demo_cache, small_aoi, reference):
    out = tmp_path / "out"
    res = subprocess.run(
        _cli(out, small_aoi, demo_cache, "--scheduler", "threads", "--chunk", "16",
             "--tile-size", "300"), check=True, capture_output=True, text=True)
    assert "tiles" in res.stdout
    assert len(list((out / "tiles").iterdir())) > 1
    for name in PRODUCTS:
        with rasterio.open(out / name) as a, rasterio.open(reference / name) as b:
            assert a.transform == b.transform and a.shape == b.shape
            assert a.descriptions == b.descriptions
            np.testing.assert_array_equal(a.read(), b.read())
    # a second run finds every tile complete and recomputes nothing
    res = subprocess.run(
        _cli(out, small_aoi, demo_cache, "--scheduler", "threads", "--chunk", "16",
             "--tile-size", "300"), check=True, capture_output=True, text=True)
    assert "tiles complete" in res.stdout


def test_few_chunks_run_in_threads_many_on_a_local_cluster():
    from pipeline.blocks import n_chunks
    from pipeline.cluster import ClusterSpec, choose_scheduler

    assert n_chunks((210, 210), 256) == 1 and n_chunks((513, 256), 256) == 3
    two = ClusterSpec(workers=2)
    assert choose_scheduler(two, 3).scheduler == "threads"
    assert choose_scheduler(two, 4).scheduler is None  # LocalCluster
    given = ClusterSpec(scheduler="tcp://127.0.0.1:8786", workers=2)
    assert choose_scheduler(given, 1) == given  # an explicit --scheduler stays


_PRELOADED: list[str] = []


class _Preloadable:
    """A filler whose preload leaves a mark (module level: the plugin pickles it)."""

    def preload(self) -> None:
        _PRELOADED.append("loaded")


def test_workers_preload_the_filler_in_the_background():
    import time

    from distributed import Client, LocalCluster

    from pipeline.cluster import PreloadFiller, preload_filler
    from pipeline.fill import LinearFiller

    def plugins(client: Client) -> list[str]:
        return list(client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins)))

    _PRELOADED.clear()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        preload_filler(client, LinearFiller())  # no model to load: nothing registered
        assert PreloadFiller.name not in plugins(client)
        preload_filler(client, _Preloadable())
        assert PreloadFiller.name in plugins(client)
        deadline = time.monotonic() + 20
        while not _PRELOADED and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _PRELOADED == ["loaded"]  # once, on the one worker
