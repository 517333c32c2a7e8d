"""A request that fails for good: its cause in a few words, and one line from the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from pipeline.errors import request_failure

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _raised(fn: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_the_usual_causes_are_named_through_every_wrapper(closed_port: int,
                                                          silent_port: int) -> None:
    # requests: ConnectionError of urllib3's MaxRetryError of the cause
    refused = _raised(lambda: requests.get(f"http://127.0.0.1:{closed_port}/v1", timeout=5))
    assert request_failure(refused) == "connection refused"
    slow = _raised(lambda: requests.get(f"http://127.0.0.1:{silent_port}/v1", timeout=0.2))
    assert request_failure(slow) == "timed out"
    # .invalid never resolves (RFC 2606), with a network or without one
    unknown = _raised(lambda: requests.get("http://catalog.invalid/v1", timeout=5))
    assert request_failure(unknown) == "host name not found: no network, or a wrong URL"
    # urllib keeps the cause in URLError.reason
    url_refused = _raised(lambda: urllib.request.urlopen(f"http://127.0.0.1:{closed_port}/",
                                                         timeout=5))
    assert isinstance(url_refused, urllib.error.URLError)
    assert request_failure(url_refused) == "connection refused"


def test_other_failures_keep_their_type_and_first_line() -> None:
    assert request_failure(FileNotFoundError(2, "No such file")) == \
        "FileNotFoundError: [Errno 2] No such file"
    assert request_failure(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert request_failure(RuntimeError()) == "RuntimeError"
    looped = RuntimeError("outer")
    looped.__cause__ = looped  # a cycle ends the walk
    assert request_failure(looped) == "RuntimeError: outer"


def test_an_unreachable_catalog_is_one_line_without_the_retries(
    small_aoi: Path, tmp_path: Path, closed_port: int
) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline", "run", "--aoi", str(small_aoi), "--source", "stac",
           "--stac-url", f"http://127.0.0.1:{closed_port}/v1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 2, quiet.stderr
    assert quiet.stderr.strip().splitlines() == [
        f"error: --stac-url: cannot read http://127.0.0.1:{closed_port}/v1 (connection refused)"
        "; pass a STAC API root or a catalog.json path/URL"]
    assert not out.exists()
    # with -v the retries before the error are shown
    loud = subprocess.run([*cmd, "-v"], capture_output=True, text=True, env=env, timeout=120)
    assert loud.returncode == 2
    assert "Retrying (" in loud.stderr
