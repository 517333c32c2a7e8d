"""Property: junk in any CLI option is refused at entry (exit 2, one line) or accepted.

``run`` is driven in-process with every option but one valid and random text,
numbers, dates or awkward strings in that one. The run is stopped where the entry
checks end and the scene search would begin (a valid value then counts as accepted):
what is under test is that no value gets past the checks to fail later, and that
none gives exit 1, a traceback or a hang (an alarm bounds every case). The table
commands run to the end on a small table.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.__main__ import main
from pipeline.request import run_options

#: Seconds one case may take before it counts as a hang.
LIMIT_S = 20

AWKWARD = ["", " ", "-", "--", "/", ".", "..", "~", "nan", "inf", "-inf", "1e400", "-1", "0",
           "99999999999999999999", "0x10", "None", "null", "EPSG:4326", "EPSG:0", "+proj=longlat",
           "tcp://", "tcp://:0", "a:1x", "2023-02-30", "0001-01-01", "9999-12-31", "\x00",
           "\u00e9\u00e8", "${HOME}", "/dev/null", "/etc/passwd", "a,b,,", "vv=,vh="]


def _junk() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(AWKWARD),
        st.text(max_size=24),
        st.integers(-10**20, 10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.dates().map(lambda d: d.isoformat()),
    )


class _Accepted(BaseException):
    """Raised where the entry checks end: the options were accepted."""


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check(argv: list[str], capsys: pytest.CaptureFixture[str], accept_ok: bool) -> None:
    with _alarm(LIMIT_S):
        try:
            code = main(argv)
        except _Accepted:
            return
    err = capsys.readouterr().err.strip()
    if code == 0 and accept_ok:
        return
    assert code == 2, f"{argv}: exit {code}: {err}"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"{argv}: {err}"


FLAGS = [o.flag for o in run_options() if o.parse is not None] + ["--config"]


@pytest.mark.parametrize("flag", FLAGS)
def test_junk_in_a_run_option(flag: str, small_aoi: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    def stop(*args: object, **kwargs: object) -> None:
        raise _Accepted

    monkeypatch.setattr("pipeline.run.open_sources", stop)
    monkeypatch.chdir(tmp_path)  # relative junk paths land here

    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=_junk())
    def case(value: str) -> None:
        out = tempfile.mkdtemp(dir=tmp_path)
        base = {"--aoi": str(small_aoi), "--out": out, "--cache": str(tmp_path / "cache"),
                "--method": "linear", "--scheduler": "threads",
                "--start": "2023-04-01", "--end": "2023-05-30"}
        base[flag] = value
        argv = ["run", "-q"] + [a for k, v in base.items() for a in (k, v)]
        _check(argv, capsys, accept_ok=False)

    case()


TABLE = "id,date,ndvi,vv,vh\na,2023-05-01,0.5,-12,-18\na,2023-05-07,,-11,-17\na,2023-05-13,0.6,,\n"


@pytest.mark.parametrize(("command", "flag"), [
    ("fill-table", "--input"), ("fill-table", "--output"), ("fill-table", "--model"),
    ("mowing-table", "--input"), ("mowing-table", "--output"), ("mowing-table", "--model"),
    ("mowing-table", "--method"), ("mowing-table", "--detector"),
])
def test_junk_in_a_table_option(command: str, flag: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "in.csv"
    table.write_text(TABLE)

    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=_junk())
    def case(value: str) -> None:
        base = {"--input": str(table), "--output": str(Path(tempfile.mkdtemp(dir=tmp_path))
                                                       / "out.csv")}
        base[flag] = value
        _check([command, "-q"] + [a for k, v in base.items() for a in (k, v)], capsys,
               accept_ok=True)
        assert table.read_text() == TABLE

    case()
