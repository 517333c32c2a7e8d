"""The run owns its --out: marker, refusal of folders it does not own, one run at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.errors import InputError
from pipeline.storage import LOCK_NAME, OWNER_MARKER, check_out_owned, claim_out
from tests.conftest import END, START, refused


def _args(aoi: Path, cache: Path, out: Path | str) -> list[str]:
    return ["run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
            "--start", START, "--end", END, "--method", "linear", "--scheduler", "threads"]



def test_root_home_and_input_folders_arerefused(
    small_aoi: Path, demo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "is /" in refused(_args(small_aoi, demo_cache, "/"), capsys)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert "home folder" in refused(_args(small_aoi, demo_cache, home), capsys)
    assert "holds the input" in refused(_args(small_aoi, demo_cache, small_aoi.parent),
                                         capsys)
    assert sorted(p.name for p in home.iterdir()) == []


def test_a_folder_it_did_not_make_is_refused_unless_overwrite(
    small_aoi: Path, demo_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    (mine / "stac").mkdir(parents=True)
    (mine / "stac" / "notes.txt").write_text("keep")
    (mine / "run.json").write_text("{}")
    err = refused(_args(small_aoi, demo_cache, mine), capsys)
    assert "not empty (run.json, stac)" in err and "--overwrite" in err
    assert (mine / "run.json").read_text() == "{}"
    assert main([*_args(small_aoi, demo_cache, mine), "--overwrite"]) == 0
    assert (mine / OWNER_MARKER).exists() and (mine / "ndvi_filled.tif").exists()
    # now owned: a rerun needs no --overwrite (and resumes)
    assert main(_args(small_aoi, demo_cache, mine)) == 0


def test_second_run_into_a_locked_folder_stops_at_once(
    small_aoi: Path, demo_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "busy"
    with claim_out(out):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *_args(small_aoi, demo_cache, out)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert proc.returncode == 2, proc.stderr
        assert "in use by another run (pid " in proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr
        assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, OWNER_MARKER])
    # the lock of a process that is gone is no lock: the next run takes it over
    (out / LOCK_NAME).write_text("pid 999999: a run that died\n")
    assert main(_args(small_aoi, demo_cache, out)) == 0
    assert (out / "ndvi_filled.tif").exists()


def test_a_failed_run_leaves_no_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(RuntimeError), claim_out(out):
        raise RuntimeError("the run failed")
    assert not out.exists()
    kept = tmp_path / "resumable"
    with pytest.raises(RuntimeError), claim_out(kept):
        (kept / "cube.zarr").mkdir()
        raise RuntimeError("failed after writing part of the cube")
    assert (kept / "cube.zarr").is_dir()  # kept for resume


def test_check_accepts_new_empty_and_owned_folders(tmp_path: Path) -> None:
    check_out_owned(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_out_owned(tmp_path / "empty")
    with claim_out(tmp_path / "owned"):
        pass
    (tmp_path / "owned" / "run.json").write_text("{}")
    check_out_owned(tmp_path / "owned")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(InputError, match="not empty"):
        check_out_owned(tmp_path / "other")
    check_out_owned(tmp_path / "other", overwrite=True)
