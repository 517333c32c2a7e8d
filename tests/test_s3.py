"""``--out s3://...`` against an S3-compatible server (moto) on loopback, started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import END, START

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing",
                           client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
    fs.mkdir("results")
    try:
        yield env
    finally:
        server.stop()


def _fs(env: dict[str, str]):
    import s3fs

    return s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                             client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})


def _run(env, out: str, aoi: Path, cache: Path, work_cache: Path) -> subprocess.CompletedProcess:
    # --cache holds the demo archive; a run with remote --out keeps its local work
    # folder under the cache too, so a second cache stands for a second machine.
    if not (work_cache / ensure_name(cache)).exists():
        work_cache.mkdir(parents=True, exist_ok=True)
        for p in cache.iterdir():
            (work_cache / p.name).symlink_to(p)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "-q", "--aoi", str(aoi), "--cache",
         str(work_cache), "--out", out, "--start", START, "--end", END, "--method", "linear",
         "--scheduler", "threads"],
        env=env, capture_output=True, text=True,
    )


def ensure_name(cache: Path) -> str:
    return next(p.name for p in cache.iterdir() if p.name.startswith("demo-"))


def test_out_on_object_storage_equals_local_and_resumes_elsewhere(
    s3_env, demo_cache, small_aoi, demo_run, tmp_path
):
    res = _run(s3_env, "s3://results/run1", small_aoi, demo_cache, tmp_path / "machine1")
    assert res.returncode == 0, res.stderr
    assert "s3://results/run1" in res.stdout
    fs = _fs(s3_env)
    keys = {k.rsplit("/", 1)[-1] for k in fs.ls("results/run1")}
    assert {"ndvi_filled.tif", "observed.tif", "run.json", "cube.zarr"} <= keys
    assert fs.exists("results/run1/cube.zarr/zarr.json")
    for name in ("ndvi_filled.tif", "observed.tif", "ndvi_observed.tif"):
        assert fs.cat(f"results/run1/{name}") == (demo_run / name).read_bytes(), name

    # another machine (empty work folder) finds the finished cube and recomputes nothing
    res2 = _run(s3_env, "s3://results/run1", small_aoi, demo_cache, tmp_path / "machine2")
    assert res2.returncode == 0, res2.stderr
    assert "tiles complete" in res2.stdout


def test_unwritable_bucket_is_a_one_line_error(s3_env, demo_cache, small_aoi, tmp_path):
    res = _run(s3_env, "s3://no-such-bucket/x", small_aoi, demo_cache, tmp_path / "m")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: --out: cannot write to s3://no-such-bucket/x")
    assert len(res.stderr.strip().splitlines()) == 1
