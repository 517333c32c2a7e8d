"""What the CLI prints besides results: program name, progress bars, cluster log lines."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import __version__
from pipeline.__main__ import _configure_logging, _progress_factory

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("s1s2-gapfill")


def _version(cmd: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    return out.stdout.strip()


def test_version_names_the_program_as_started() -> None:
    assert _version([sys.executable, "-m", "pipeline"]) == f"python -m pipeline {__version__}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="package not installed (no s1s2-gapfill script)")
def test_version_of_the_installed_script() -> None:
    assert _version([str(SCRIPT)]) == f"s1s2-gapfill {__version__}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _draw(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    update = _progress_factory(quiet=False)("ingest")
    for done in range(4):
        update(done, 3)
    return stream.getvalue()


def test_progress_bars_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "3/3" in _draw(monkeypatch, _Terminal())
    assert _draw(monkeypatch, io.StringIO()) == ""


def test_cluster_lines_are_info_shown_unless_quiet() -> None:
    cluster = logging.getLogger("pipeline.cluster")
    try:
        _configure_logging(0, quiet=False)
        assert cluster.isEnabledFor(logging.INFO)
        _configure_logging(0, quiet=True)
        assert not cluster.isEnabledFor(logging.INFO)
    finally:
        cluster.setLevel(logging.NOTSET)


def test_dashboard_line_is_info(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("bokeh")
    from pipeline.cluster import ClusterSpec, client_for

    with caplog.at_level(logging.INFO, logger="pipeline.cluster"), client_for(
        ClusterSpec(workers=1)
    ):
        pass
    lines = [r for r in caplog.records if "dashboard" in r.getMessage()]
    assert lines and all(r.levelno == logging.INFO for r in lines)
