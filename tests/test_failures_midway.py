"""Entry ranges, the disk-space warning, and expected failures midway: one line, exit 1."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.checks import check_scheduler
from pipeline.errors import InputError
from pipeline.storage import check_disk_space, estimated_size
from tests.conftest import END, START, refused

ROOT = Path(__file__).resolve().parents[1]


def _base(aoi: Path, cache: Path, out: Path) -> list[str]:
    return ["run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
            "--start", START, "--end", END, "--method", "linear"]


@pytest.mark.parametrize("address", ["threads", "tcp://127.0.0.1:8786", "tls://sched:8786",
                                     "10.0.0.5:8786", "tcp://[::1]:8786"])
def test_scheduler_addresses_accepted(address: str) -> None:
    check_scheduler(address)


@pytest.mark.parametrize("address", ["foo", "tcp://host", "tcp://host:0", "tcp://host:70000",
                                     "http://host:8786", "tcp://:8786", "processes", ""])
def test_scheduler_junk_refused(address: str) -> None:
    with pytest.raises(InputError, match="not a scheduler address"):
        check_scheduler(address)


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--scheduler", "foo", "not a scheduler address"),
    ("--workers", "100000", "--workers 100000 is out of range"),
    ("--tile-size", "nan", "--tile-size nan is out of range"),
    ("--tile-size", "inf", "--tile-size inf is out of range"),
    ("--max-area-km2", "-1", "--max-area-km2 -1 is out of range"),
    ("--seed", "-3", "--seed -3 is out of range"),
])
def test_run_ranges_are_entry_checks(
    flag: str, value: str, needle: str, small_aoi: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "never"
    err = refused([*_base(small_aoi, tmp_path / "cache", out), flag, value], capsys)
    assert needle in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_short_disk_space_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    free = shutil.disk_usage(tmp_path).free
    dates = 36
    too_many = free // (estimated_size(1, dates)) + 1
    with caplog.at_level(logging.WARNING):
        assert check_disk_space(tmp_path / "new" / "out", 1000, dates)
        assert not caplog.records
        assert not check_disk_space(tmp_path / "new" / "out", too_many, dates)
    assert " free, the run may write up to about " in caplog.text
    assert not (tmp_path / "new").exists()


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
from pipeline.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _limited(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a process that may write no file larger than 20 kB (a full disk)."""
    return subprocess.run([sys.executable, "-c", _LIMITED, *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_full_disk_midway_is_one_line_and_exit_1(
    small_aoi: Path, demo_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _limited([*_base(small_aoi, demo_cache, out), "--scheduler", "threads"])
    assert proc.returncode == 1, proc.stderr
    # the pipeline's own lines (libraries may warn on their own lines before)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("failed:", "error:"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("failed: File too large (EFBIG): ")
    assert str(out) in lines[0] and "-vv" in lines[0]
    assert not (out / "ndvi_filled.tif").exists() and not (out / "run.json").exists()
    proc = _limited([*_base(small_aoi, demo_cache, out), "--scheduler", "threads", "-vv"])
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "File too large" in proc.stderr


def test_lost_scheduler_and_permission_lines_name_the_address_and_path() -> None:
    """The one-line messages of the other expected failures (the exceptions dask and the
    OS raise for them), as main() prints them."""
    import argparse

    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    from pipeline.__main__ import _failure

    args = argparse.Namespace(scheduler="tcp://10.0.0.5:8786", out=Path("/data/out"))
    for exc in (CommClosedError("in <TCP (closed)>: Stream is closed"),
                FutureCancelledError("k", reason="scheduler-connection-lost")):
        line = _failure(exc, args)
        assert line is not None and "lost the dask scheduler tcp://10.0.0.5:8786" in line
    line = _failure(PermissionError(13, "Permission denied", "/data/out/cube.zarr/x"), args)
    assert line == ("Permission denied (EACCES): /data/out/cube.zarr/x; free space or fix the "
                    "permissions, then rerun the same command")
    assert _failure(ValueError("a bug"), args) is None
    assert _failure(ConnectionRefusedError(111, "Connection refused"), args) is None


@contextmanager
def _tiny_disk(where: Path) -> Iterator[Path]:
    """A 64 kB tmpfs at ``where`` (skips unless this process may mount one)."""
    where.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("no permission to mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_really_full_disk_is_one_line_and_exit_1(
    small_aoi: Path, demo_cache: Path, tmp_path: Path
) -> None:
    with _tiny_disk(tmp_path / "disk") as disk:
        out = disk / "out"
        proc = subprocess.run([sys.executable, "-m", "pipeline",
                               *_base(small_aoi, demo_cache, out), "--scheduler", "threads"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 1, proc.stderr
        assert "free, the run may write up to" in proc.stderr  # the warning at the start
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("failed:", "error:"))]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith("failed: No space left on device (ENOSPC): ")
        assert not (out / "ndvi_filled.tif").exists()


_UNREAD_WRITE_ERROR = """
import asyncio, gc, sys
from pipeline.__main__ import _configure_logging
_configure_logging(int(sys.argv[1]), False)

async def main():
    # what zarr leaves when chunk writes beside the first failed one fail too
    future = asyncio.get_running_loop().create_future()
    future.set_exception(OSError(28, "No space left on device"))
    del future
    gc.collect()

asyncio.run(main())
"""


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_unread_write_errors_stay_out_of_the_one_line_failure_unless_vv(verbose: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _UNREAD_WRITE_ERROR, str(verbose)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    shown = "exception was never retrieved" in proc.stderr
    assert shown == (verbose >= 2), proc.stderr
    assert verbose >= 2 or "No space left" not in proc.stderr, proc.stderr
