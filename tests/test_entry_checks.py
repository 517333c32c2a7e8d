"""Entry checks: bad --model, --crs, --workers and table --output fail at once (exit 2)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from model import default_weights
from pipeline.checks import check_crs, check_table_output, check_weights
from pipeline.errors import InputError
from tests.conftest import refused


def _safetensors(path: Path, names: list[str]) -> Path:
    header = {n: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
              for i, n in enumerate(names)}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4 * len(names))
    return path


def test_weights_check_accepts_sf_and_refuses_the_rest(tmp_path: Path) -> None:
    check_weights(default_weights())
    check_weights(default_weights().with_name("sf-1.2.0.safetensors"))
    text = tmp_path / "weights.safetensors"
    text.write_text("not weights at all")
    with pytest.raises(InputError, match=r"not a \.safetensors"):
        check_weights(text)
    with pytest.raises(InputError, match=r"not a \.safetensors"):
        check_weights(_truncated(tmp_path))
    with pytest.raises(InputError, match="SF network"):
        check_weights(_safetensors(tmp_path / "other.safetensors", ["conv.weight"]))
    with pytest.raises(InputError, match="file not found"):
        check_weights(tmp_path / "missing.safetensors")


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(struct.pack("<Q", 10_000) + b"{}")
    return path


@pytest.mark.parametrize(("value", "message"), [
    ("garbage", "not a coordinate reference system"),
    ("EPSG:4326", "geographic"),
    ("EPSG:2263", "not a projected CRS in metres"),  # US survey feet
])
def test_crs_check_refuses_what_a_10_m_grid_cannot_use(value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_crs(value)
    check_crs("EPSG:32634")
    check_crs("EPSG:3035")


def test_run_refuses_bad_model_crs_and_workers_before_any_work(
    small_aoi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    base = ["run", "-q", "--aoi", str(small_aoi), "--out", str(out),
            "--cache", str(tmp_path / "no-cache")]
    junk = tmp_path / "junk.safetensors"
    junk.write_text("junk")
    assert "--model" in refused([*base, "--model", str(junk)], capsys)
    assert "geographic" in refused([*base, "--crs", "EPSG:4326"], capsys)
    assert "--crs" in refused([*base, "--crs", "garbage"], capsys)
    assert "--workers -1" in refused([*base, "--workers", "-1"], capsys)
    assert not out.exists() and not (tmp_path / "no-cache").exists()


def test_table_commands_keep_their_input(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "in.csv"
    text = "id,date,ndvi,vv,vh\na,2023-05-01,0.5,,\na,2023-05-07,,,\na,2023-05-13,0.6,,\n"
    table.write_text(text)
    for cmd in ("fill-table", "mowing-table"):
        err = refused([cmd, "--input", str(table), "--output", str(table)], capsys)
        assert "is the --input file" in err
        err = refused([cmd, "--input", str(table), "--output", str(tmp_path)], capsys)
        assert "is a folder" in err
    assert table.read_text() == text
    with pytest.raises(InputError):
        check_table_output(table, tmp_path / "." / "in.csv")
