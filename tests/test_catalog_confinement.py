"""Assets of a local static catalog are read only inside its folder (or --allow-path).

A real catalog on disk whose items name a file outside the catalog, a ``../..``
escape, a ``/vsicurl/`` URL and a ``file://`` URL: none of them is opened (the loopback
server behind the ``/vsicurl/`` href sees no request, none of their scenes is used),
each is skipped with its reason in run.json, and ``--allow-path`` admits the folder
outside.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pystac
import pytest

from pipeline.__main__ import main
from pipeline.sources.stac import HrefPolicy
from tests import stacfixtures as fx
from tests.conftest import refused, write_aoi
from tests.fakes.httpserver import serve

UTC = dt.UTC
BANDS = ("B04.tif", "B08.tif", "SCL.tif")
KEYS = ("B04_10m", "B08_10m", "SCL_20m")


def _when(day: int) -> dt.datetime:
    return dt.datetime(2023, 4, day, 9, 50, tzinfo=UTC)


def _aoi(tmp: Path) -> Path:
    w, s, e, n = fx.tile_lonlat_bounds(margin_m=-60)
    return write_aoi(tmp / "aoi.geojson", [[w, s], [e, s], [e, n], [w, n], [w, s]])


def _point(catalog: Path, item_id: str, href_of: Callable[[str], str]) -> None:
    """Set the asset hrefs of one saved item JSON to ``href_of(band file name)``."""
    path = next(catalog.parent.rglob(f"{item_id}.json"))
    doc = json.loads(path.read_text())
    for key, band in zip(KEYS, BANDS, strict=True):
        doc["assets"][key]["href"] = href_of(band)
    path.write_text(json.dumps(doc))


@dataclass(frozen=True)
class Hostile:
    """The catalog, the folder outside it, the good scenes and the hostile ones by kind."""

    catalog: Path
    outside: Path
    good: set[str]
    ids: dict[str, str]


@pytest.fixture()
def hostile(tmp_path: Path) -> Hostile:
    """A catalog folder with two clear scenes and four whose hrefs leave it."""
    root, outside = tmp_path / "catalog", tmp_path / "outside"
    good = [fx.s2_item(root, _when(d), 0.05, 0.15, cloud_rows=0) for d in (2, 14)]
    bad = [fx.s2_item(root, _when(d), 0.3, 0.05, cloud_rows=0) for d in (5, 8, 20, 26)]
    catalog = fx.write_catalog(root, [*good, *bad], [])
    files: dict[str, Path] = {}
    for it in bad:  # valid rasters, but outside the catalog's folder
        src = root / "s2" / it.id
        shutil.copytree(src, outside / it.id)
        shutil.rmtree(src)
        files[it.id] = outside / it.id
    outside_file, escape, vsicurl, file_url = (it.id for it in bad)
    _point(catalog, outside_file, lambda b: str(files[outside_file] / b))
    # the item JSON sits at catalog/sentinel-2-l2a/<id>/<id>.json
    _point(catalog, escape, lambda b: f"../../../outside/{escape}/{b}")
    _point(catalog, file_url, lambda b: f"file://{files[file_url] / b}")
    return Hostile(catalog, outside, {it.id for it in good},
                   {"outside": outside_file, "escape": escape, "vsicurl": vsicurl,
                    "file": file_url})


def _run(catalog: Path, tmp: Path, out: Path, *extra: str) -> int:
    return main(["run", "-q", "--aoi", str(_aoi(tmp)), "--out", str(out), "--cache",
                 str(tmp / "cache"), "--start", "2023-04-01", "--end", "2023-04-30",
                 "--method", "linear", "--scheduler", "threads", "--source", "stac",
                 "--stac-url", str(catalog), "--eodata", "https", *extra])


def test_hrefs_leaving_the_catalog_are_skipped_unopened(hostile: Hostile,
                                                        tmp_path: Path) -> None:
    ids = hostile.ids
    with serve(hostile.outside) as server:
        vs = ids["vsicurl"]
        _point(hostile.catalog, vs, lambda b: f"/vsicurl/{server.url}/{vs}/{b}")
        assert _run(hostile.catalog, tmp_path, tmp_path / "out") == 0
        assert server.requests == []  # GDAL never fetched the /vsicurl/ href
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    used = {u["id"] for u in record["scenes"]["used"]}
    assert used == hostile.good
    reasons = {s["id"]: s["reason"] for s in record["scenes"]["skipped"]}
    assert "outside the catalog's folder" in reasons[ids["outside"]]
    assert "--allow-path" in reasons[ids["outside"]]
    assert "outside the catalog's folder" in reasons[ids["escape"]]
    assert "GDAL virtual paths" in reasons[ids["vsicurl"]]
    assert "file:// hrefs" in reasons[ids["file"]]


def test_allow_path_admits_a_folder_outside(hostile: Hostile, tmp_path: Path) -> None:
    ids = hostile.ids
    out = tmp_path / "allowed"
    (tmp_path / "also").mkdir()
    assert _run(hostile.catalog, tmp_path, out,
                "--allow-path", f"{tmp_path / 'also'}, {hostile.outside}") == 0
    record = json.loads((out / "run.json").read_text())
    used = {u["id"] for u in record["scenes"]["used"]}
    # the outside folder and the ../.. escape into it are admitted; virtual paths and
    # file:// never are
    assert used == {*hostile.good, ids["outside"], ids["escape"]}
    reasons = {s["id"]: s["reason"] for s in record["scenes"]["skipped"]}
    assert "file:// hrefs" in reasons[ids["file"]]


def test_allow_path_must_name_folders(hostile: Hostile, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(["run", "--aoi", str(_aoi(tmp_path)), "--out", str(tmp_path / "o"),
                   "--source", "stac", "--stac-url", str(hostile.catalog), "--eodata", "https",
                   "--allow-path", str(tmp_path / "missing")], capsys)
    assert "--allow-path: not a folder" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("href", "reason"), [
    ("/vsizip//data/a.zip/b.tif", "GDAL virtual paths"),
    ("/VSICURL/http://x/b.tif", "GDAL virtual paths"),
    ("zip+https://x/a.zip!b.tif", "unsupported scheme"),
    ('NETCDF:"/etc/x.nc":ndvi', "unsupported scheme"),
    ("/etc/passwd", "a local file named by a remote catalog"),
])
def test_a_remote_catalog_names_only_remote_assets(href: str, reason: str) -> None:
    policy = HrefPolicy.for_catalog("https://example.org/stac/catalog.json")
    assert reason in (policy.refusal(href) or "")
    assert policy.refusal("https://example.org/b.tif") is None
    assert policy.refusal("s3://eodata/Sentinel-2/b.jp2") is None


def test_a_symlink_out_of_the_catalog_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "link.tif").symlink_to("/etc/hostname")
    item = pystac.Item("x", None, None, _when(2), {})
    item.add_asset("B04", pystac.Asset(str(tmp_path / "cat" / "link.tif")))
    policy = HrefPolicy.for_catalog(str(tmp_path / "cat" / "catalog.json"))
    assert "outside the catalog's folder" in (policy.refusal_of(item) or "")
    skipped: list[dict[str, str]] = []
    assert policy.admit([item], skipped) == [] and skipped[0]["id"] == "x"


def _api_item(iid: str, href: str) -> dict[str, object]:
    ring = [[23.0, 55.0], [23.1, 55.0], [23.1, 55.1], [23.0, 55.1], [23.0, 55.0]]
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": "sentinel-2-l2a",
            "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": [23, 55, 23.1, 55.1],
            "links": [], "properties": {"datetime": "2023-04-02T09:50:00Z"},
            "assets": {"B04": {"href": href, "roles": ["data"]}}}


def test_a_stac_api_may_name_only_remote_assets(tmp_path: Path) -> None:
    from shapely.geometry import box

    from pipeline.sources.eodata import EodataAccess
    from pipeline.sources.stac import open_stac_source
    from tests.fakes.stacapi import serve_api

    def items(base: str) -> list[dict[str, object]]:
        return [_api_item("ok", f"{base}/B04.tif"), _api_item("local", "/etc/hostname"),
                _api_item("vsi", f"/vsicurl/{base}/B04.tif"),
                _api_item("file", "file:///etc/hostname")]

    with serve_api(tmp_path, items=items) as server:
        src = open_stac_source(f"{server.url}/", access=EodataAccess("https"))
        found = src.search_s2(box(23.02, 55.02, 23.05, 55.05), dt.date(2023, 4, 1),
                              dt.date(2023, 4, 30))
    assert [it.id for it in found] == ["ok"]
    reasons = {s["id"]: s["reason"] for s in src.skipped}
    assert "a local file named by a remote catalog" in reasons["local"]
    assert "GDAL virtual paths" in reasons["vsi"]
    assert "file:// hrefs" in reasons["file"]
