"""The README's "What a run writes" table and xarray route against a finished demo run."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import numpy as np
import rasterio

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"{title}\n")
    end = text.index("\n#", start + len(title))
    return text[start:end]


def _table_names() -> list[str]:
    rows = [line for line in _section("## What a run writes").splitlines()
            if line.startswith("| `")]
    return [re.findall(r"`([^`]+)`", row.split("|")[1])[0] for row in rows]


def test_table_lists_exactly_the_files_of_a_run(demo_run: Path) -> None:
    names = [re.sub(r"<[^>]+>", "*", n).rstrip("/") for n in _table_names()]
    tops = {n.split("/")[0] for n in names}
    entries = [p.name for p in demo_run.iterdir() if not p.name.startswith(".")]
    # every file of the run has its row ...
    for entry in entries:
        assert any(fnmatch.fnmatch(entry, t) for t in tops), entry
    # ... and every row names something the run wrote, or a product it says it left out
    left_out = json.loads((demo_run / "run.json").read_text()).get("products_left_out", {})
    for name in names:
        assert list(demo_run.glob(name)) or name in left_out, name


def test_readme_xarray_route_gives_a_date(demo_run: Path) -> None:
    import xarray as xr

    code = re.findall(r"```python\n(.*?)```", _section("### Opening the products in xarray"),
                      re.S)[0]
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        day, band = src.descriptions[3], src.read(4, masked=True).filled(np.nan)
    code = code.replace("out/", f"{demo_run}/").replace("2023-07-18", day)
    scope: dict = {"xr": xr}
    lines = code.strip().splitlines()
    exec(lines[0], scope)  # the README's own two lines
    got = eval(lines[1], scope)
    np.testing.assert_array_equal(got.values, band)
