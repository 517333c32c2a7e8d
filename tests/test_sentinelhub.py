"""The ``sentinelhub`` source against a fake Sentinel Hub on loopback, driven by the
real ``sentinelhub`` client: OAuth, Catalog search, Process API, faults and the cache.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from shapely.geometry import shape

from pipeline.__main__ import main
from pipeline.aoi import make_geobox, read_aoi
from pipeline.sources.sentinelhub import (
    S1_PRODUCT,
    S2_PRODUCT,
    SentinelHubError,
    SentinelHubSource,
    estimate_pu,
    load_config,
    make_tiles,
)
from tests.conftest import END, START
from tests.fakes import sentinelhub as fake

PERIOD = (dt.date.fromisoformat(START), dt.date.fromisoformat(END))


@pytest.fixture
def sh_server(demo_archive):
    with fake.serve(demo_archive / "catalog.json") as server:
        yield server


@pytest.fixture
def sh_env(monkeypatch, tmp_path, sh_server):
    """Credentials in the environment, URLs on the fake, a private (empty) config home."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SH_CLIENT_ID", fake.CLIENT_ID)
    monkeypatch.setenv("SH_CLIENT_SECRET", fake.CLIENT_SECRET)
    monkeypatch.setenv("SH_BASE_URL", sh_server.url)
    monkeypatch.setenv("SH_TOKEN_URL", sh_server.token_url)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake speaks plain http
    monkeypatch.delenv("SH_PROFILE", raising=False)
    return sh_server


def _profile(tmp_path: Path, **extra: object) -> None:
    """A sentinelhub profile 'fast' with the fake's credentials and quick retries."""
    cfg = tmp_path / "config" / "sentinelhub" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[fast]", f'sh_client_id = "{fake.CLIENT_ID}"',
             f'sh_client_secret = "{fake.CLIENT_SECRET}"', "download_sleep_time = 0.01",
             "max_download_attempts = 3"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")


def _cli(aoi: Path, cache: Path, out: Path, *extra: str) -> int:
    return main(["run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
                 "--start", START, "--end", END, "--method", "linear",
                 "--source", "sentinelhub", *extra])


def _source(small_aoi: Path, cache: Path, **kw: object) -> tuple[SentinelHubSource, object]:
    aoi = read_aoi(small_aoi)
    src = SentinelHubSource(load_config(), make_geobox(aoi), cache,
                            backoff_s=0.01, max_attempts=3, **kw)  # type: ignore[arg-type]
    return src, aoi.geometry


def test_missing_credentials_exit_2_nothing_written(monkeypatch, tmp_path, small_aoi, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("SH_PROFILE", raising=False)
    code = _cli(small_aoi, tmp_path / "cache", tmp_path / "out")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "SH_CLIENT_ID" in err and "SH_CLIENT_SECRET" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "no output, cache or sentinelhub config written"


def test_rejected_credentials_are_a_clear_auth_error(sh_env, monkeypatch, tmp_path, small_aoi,
                                                     capsys):
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong-secret-value")
    code = _cli(small_aoi, tmp_path / "cache", tmp_path / "out")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "rejected the credentials (HTTP 401)" in err and "wrong-secret-value" not in err
    assert sh_env.counts["/api/v1/process"] == 0
    assert not (tmp_path / "out").exists()


def test_run_with_faults_matches_demo_and_skips_corrupt_scene(
    sh_env, tmp_path, small_aoi, demo_run, caplog
):
    _profile(tmp_path)
    sh_env.faults = ["429", "503", "truncate"]
    s2_days = sorted({it.datetime.date() for it in sh_env.items["sentinel-2-l2a"]
                      if PERIOD[0] <= it.datetime.date() <= PERIOD[1]})
    corrupt = s2_days[2]
    sh_env.corrupt_days = {corrupt}
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    assert _cli(small_aoi, tmp_path / "cache", out, "--sh-profile", "fast") == 0
    assert not sh_env.faults, "429, 503 and the truncated body were all retried"

    record = json.loads((out / "run.json").read_text())
    skipped = record["scenes"]["skipped"]
    ids = [s["id"] for s in skipped]  # that day's S2 scene and S1 pass(es)
    assert f"sentinelhub-s2l2a-{corrupt:%Y%m%d}" in ids
    assert all(f"{corrupt:%Y%m%d}" in i for i in ids)
    assert all("not a readable GeoTIFF" in s["reason"] for s in skipped)
    for path in [*out.glob("*.json"), *out.glob("*.qml")]:
        assert fake.CLIENT_SECRET not in path.read_text()
    assert fake.CLIENT_SECRET not in caplog.text

    sh = xr.open_zarr(out / "cube.zarr", consolidated=False)
    demo = xr.open_zarr(demo_run / "cube.zarr", consolidated=False)
    a, b = demo["ndvi"].values, sh["ndvi"].values
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 0.9 * np.isfinite(a).sum()  # one scene fewer, otherwise the same
    np.testing.assert_allclose(a[both], b[both], atol=1e-6)
    for name in ("vv_asc", "vh_desc"):
        diff = np.abs(demo[name].values - sh[name].values)
        assert np.nanmedian(diff) < 0.1, name  # dB; the fake warps like odc-stac does

    # a rerun downloads nothing twice (only the corrupt scene is asked again)
    before = sh_env.counts["process-ok"]
    src, geom = _source(small_aoi, tmp_path / "cache")
    s2_used = [u for u in record["scenes"]["used"] if u["sensor"] == "sentinel-2"]
    assert len(src.search_s2(geom, *PERIOD)) == len(s2_used)
    assert sh_env.counts["process-ok"] - before == 1
    src.search_s1(geom, *PERIOD)
    assert sh_env.counts["process-ok"] - before == len(ids)


def test_repeated_5xx_fail_clearly_and_rerun_resumes(sh_env, tmp_path, small_aoi, caplog):
    caplog.set_level(logging.INFO)
    sh_env.fail_after = 4
    src, geom = _source(small_aoi, tmp_path / "cache", threads=1)
    with pytest.raises(SentinelHubError, match=r"HTTP 503.*after 3 attempts.*resume"):
        src.search_s2(geom, *PERIOD)
    assert "processing units" in caplog.text
    assert sh_env.counts["process-ok"] == 4
    sh_env.fail_after = None
    src, geom = _source(small_aoi, tmp_path / "cache")
    items = src.search_s2(geom, *PERIOD)
    n_scenes = len(items)
    assert sh_env.counts["process-ok"] == n_scenes, "the 4 cached tiles were not fetched again"
    item = items[0]
    assert set(item.assets) == {"B04", "B08", "SCL"}
    assert item.assets["B04"].extra_fields["raster:bands"][0]["offset"] == 0.0
    assert shape(item.geometry).contains(geom)


def test_tiles_assemble_to_the_same_scene(sh_env, tmp_path, small_aoi):
    whole, geom = _source(small_aoi, tmp_path / "a")
    split, _ = _source(small_aoi, tmp_path / "b", max_tile_px=32)
    day = (dt.date(2023, 4, 20), dt.date(2023, 4, 30))
    [one] = whole.search_s2(geom, *day)[:1]
    [many] = split.search_s2(geom, *day)[:1]
    s1 = split.search_s1(geom, *day)
    assert s1 and {it.properties["sat:orbit_state"] for it in s1} == {"ascending", "descending"}
    assert all(it.collection_id == "sentinel-1-grd-backscatter" for it in s1)
    import rasterio

    for key in ("B04", "B08", "SCL"):
        with rasterio.open(one.assets[key].href) as a, rasterio.open(many.assets[key].href) as b:
            assert a.transform == b.transform and a.shape == b.shape
            np.testing.assert_array_equal(a.read(), b.read())


def test_tiles_and_processing_unit_estimate(small_aoi):
    gb = make_geobox(read_aoi(small_aoi))
    tiles = make_tiles(gb, max_px=20)
    assert max(max(t[2], t[3]) for t in tiles) <= 20
    assert sum(t[2] * t[3] for t in tiles) == gb.shape[0] * gb.shape[1]
    assert estimate_pu(512, 512, S2_PRODUCT) == pytest.approx(1.0)
    assert estimate_pu(512, 512, S1_PRODUCT) == pytest.approx(2 / 3 * 4)
    assert estimate_pu(2500, 2500, S2_PRODUCT) == pytest.approx(2500**2 / 512**2)
    assert estimate_pu(10, 10, S2_PRODUCT) == pytest.approx(0.01)
