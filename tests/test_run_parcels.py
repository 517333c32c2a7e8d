"""``run --parcels`` end to end on the demo world with its own parcels, products read by
GDAL (ogrinfo), geopandas/pyarrow and PyQGIS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Polygon, box

from pipeline.cube import open_cube
from tests.conftest import END, START, refused

SYSTEM_PYTHON = "/usr/bin/python3"


def _run(aoi: Path, cache: Path, out: Path, parcels: Path, *extra: str) -> Path:
    from pipeline.__main__ import main

    code = main(["run", "-q", "--aoi", str(aoi), "--cache", str(cache), "--out", str(out),
                 "--start", START, "--end", END, "--method", "linear", "--scheduler",
                 "threads", "--parcels", str(parcels), *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def mixed_parcels(demo_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world's parcels in the Lithuanian grid (EPSG:3346), plus a self-intersecting
    polygon inside the small AOI and a parcel far outside the world."""
    truth = gpd.read_file(demo_archive / "truth" / "parcels.geojson")[["parcel_id", "geometry"]]
    truth["parcel_id"] = truth["parcel_id"].astype(str)
    utm = 32634
    bowtie = Polygon([(672420, 6181420), (672480, 6181480), (672480, 6181420),
                      (672420, 6181480)])
    extra = gpd.GeoDataFrame({"parcel_id": ["bowtie", "far"]},
                             geometry=[bowtie, box(700000, 6100000, 700200, 6100200)], crs=utm)
    both = pd.concat([truth.to_crs(3346), extra.to_crs(3346)], ignore_index=True)
    path = tmp_path_factory.mktemp("parcels") / "parcels_lks94.gpkg"
    gpd.GeoDataFrame(both, geometry="geometry", crs=3346).to_file(path)
    return path


@pytest.fixture(scope="module")
def parcels_run(demo_cache: Path, small_aoi: Path, mixed_parcels: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(small_aoi, demo_cache, tmp_path_factory.mktemp("prun") / "out", mixed_parcels)


def test_run_records_what_became_of_the_parcels(parcels_run: Path, mixed_parcels: Path) -> None:
    rec = json.loads((parcels_run / "run.json").read_text())["parcels"]
    n_file = len(gpd.read_file(mixed_parcels))
    assert rec["read"] == n_file and rec["repaired"] == 1
    assert rec["outside_aoi"] + rec["too_small"] + rec["used"] == n_file
    assert rec["outside_aoi"] > 0 and rec["used"] >= 5
    table = pd.read_csv(parcels_run / "parcels.csv", dtype={"parcel_id": str})
    assert "bowtie" in set(table["parcel_id"]) and "far" not in set(table["parcel_id"])
    assert table["parcel_id"].nunique() == rec["used"]


def test_parcel_means_are_those_of_the_filled_cube(parcels_run: Path) -> None:
    cube = open_cube(parcels_run / "cube.zarr")
    zone = cube["zone"].values
    filled = cube["ndvi_filled"].values
    observed = cube["ndvi"].notnull().values
    table = pd.read_parquet(parcels_run / "parcels.parquet")
    ids = gpd.read_parquet(parcels_run / "parcels.parquet")["parcel_id"].unique()
    dates = sorted(table["date"].unique())
    assert len(dates) == cube.sizes["time"]
    for k, pid in enumerate(ids, start=1):
        sel = zone == k
        rows = table[table["parcel_id"] == pid].sort_values("date")
        assert (rows["n_pixels"] == sel.sum()).all()
        np.testing.assert_allclose(rows["ndvi_mean"], np.nanmean(filled[:, sel], axis=1),
                                   rtol=1e-5)
        np.testing.assert_allclose(rows["ndvi_std"], np.nanstd(filled[:, sel], axis=1),
                                   atol=1e-5)
        np.testing.assert_allclose(rows["observed_share"], observed[:, sel].mean(axis=1),
                                   rtol=1e-6)
    core = cube["zone_core"].values
    assert ((core == 0) | (core == zone)).all() and (core > 0).sum() < (zone > 0).sum()
    vh = 10 ** (cube["vh_desc"].values / 10)
    for k, pid in enumerate(ids, start=1):
        rows = table[table["parcel_id"] == pid].sort_values("date")
        px = vh[:, core == k]
        assert (rows["vh_desc_looks"] == np.isfinite(px).sum(axis=1)).all()
        if px.size:
            np.testing.assert_allclose(rows["vh_desc_db"], 10 * np.log10(np.nanmean(px, axis=1)),
                                       atol=1e-3)


def test_gdal_reads_the_csv_and_the_parquet_opens(parcels_run: Path) -> None:
    table = gpd.read_parquet(parcels_run / "parcels.parquet")
    assert table.crs is not None and table.crs.to_epsg() == 32634
    assert table.geometry.is_valid.all()
    # GDAL's CSV driver as the wheels bundle it, then the GDAL command line where installed
    csv = pyogrio.read_info(parcels_run / "parcels.csv")
    assert csv["features"] == len(table)
    types = dict(zip(csv["fields"], csv["dtypes"], strict=True))
    assert types["ndvi_mean"] == "float64" and types["date"].startswith("datetime64")
    if shutil.which("ogrinfo") is None:
        return
    info = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(parcels_run / "parcels.csv")],
                          capture_output=True, text=True, check=True).stdout
    assert f"Feature Count: {len(table)}" in info
    assert "ndvi_mean: Real" in info and "date: Date" in info  # types from parcels.csvt
    formats = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True,
                             check=True).stdout
    if "Parquet" in formats:  # GDAL >= 3.5 built with Arrow; Debian's 3.6 is not
        pq = subprocess.run(["ogrinfo", "-ro", "-so", "-al",
                             str(parcels_run / "parcels.parquet")],
                            capture_output=True, text=True, check=True).stdout
        assert f"Feature Count: {len(table)}" in pq


_QGIS_CHECK = """
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False); app.initQgis()
uri = "file://" + sys.argv[1] + "?type=csv&detectTypes=yes&geomType=none"
layer = QgsVectorLayer(uri, "parcels", "delimitedtext")
fields = {f.name(): f.typeName() for f in layer.fields()}
print(json.dumps({"valid": layer.isValid(), "count": layer.featureCount(), "fields": fields}))
"""


def test_qgis_loads_the_csv_as_a_delimited_text_layer(parcels_run: Path, tmp_path: Path) -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} not found")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    tmp_path.chmod(0o700)
    proc = subprocess.run([SYSTEM_PYTHON, "-c", _QGIS_CHECK, str(parcels_run / "parcels.csv")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    if proc.returncode and "No module named 'qgis'" in proc.stderr:
        pytest.skip("PyQGIS absent (apt-get install -y qgis python3-qgis)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = len(pd.read_csv(parcels_run / "parcels.csv"))
    assert seen["valid"] and seen["count"] == rows
    assert seen["fields"]["ndvi_mean"].lower() in ("double", "real")


def test_chunk_and_tile_edges_do_not_change_the_parcel_table(
    demo_cache: Path, small_aoi: Path, demo_archive: Path, tmp_path: Path
) -> None:
    parcels = demo_archive / "truth" / "parcels.geojson"
    whole = _run(small_aoi, demo_cache, tmp_path / "whole", parcels, "--chunk", "64")
    cut = _run(small_aoi, demo_cache, tmp_path / "cut", parcels, "--chunk", "32",
               "--tile-size", "400")
    assert len(list((cut / "tiles").iterdir())) > 1  # tiles of 40 px, chunks of 32 px
    a = pd.read_csv(whole / "parcels.csv", dtype={"parcel_id": str})
    b = pd.read_csv(cut / "parcels.csv", dtype={"parcel_id": str})
    assert len(a) and a.columns.tolist() == b.columns.tolist()
    # the cube's Sentinel-1 pixels do not depend on the chunking (pipeline.warp), so the
    # field means in dB agree too, to the order in which their sums were added
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)
    whole_cube, tile = open_cube(whole / "cube.zarr"), next((cut / "tiles").iterdir())
    part = open_cube(tile / "cube.zarr")
    same = whole_cube.sel(y=part.y, x=part.x)
    for var in ("vv_asc", "vh_desc"):
        np.testing.assert_array_equal(part[var].values, same[var].values)
    assert json.loads((cut / "run.json").read_text())["parcels"]["used"] == a[
        "parcel_id"].nunique()


def test_zero_parcels_inside_the_aoi_is_refused_before_any_work(
    demo_cache: Path, small_aoi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame({"parcel_id": ["x"]}, geometry=[box(700000, 6100000, 700200, 6100200)],
                     crs=32634).to_file(far)
    out = tmp_path / "out"
    err = refused(["run", "--aoi", str(small_aoi), "--cache", str(demo_cache), "--out",
                   str(out), "--start", START, "--end", END, "--parcels", str(far)], capsys)
    assert "none of its 1 parcels lies inside the AOI" in err
    assert not out.exists()
    err = refused(["run", "--aoi", str(small_aoi), "--out", str(out), "--parcels",
                   str(tmp_path / "missing.gpkg")], capsys)
    assert "--parcels" in err and "no such file" in err
    err = refused(["run", "--aoi", str(small_aoi), "--out", str(out), "--parcel-id", "x"],
                  capsys)
    assert "needs --parcels" in err
    assert not out.exists()


def test_sf_run_with_parcels_fills_partly_clear_fields_from_their_clear_part(
    demo_cache: Path, small_aoi: Path, mixed_parcels: Path, tmp_path: Path
) -> None:
    """The fill stage uses the parcels: cells of a field that is partly clear on their date
    change (and their std narrows), every other cell is the plain SF fill."""
    from pipeline.__main__ import main

    base = ["run", "-q", "--aoi", str(small_aoi), "--cache", str(demo_cache), "--start", START,
            "--end", END, "--method", "sf", "--scheduler", "threads"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--out", str(tmp_path / "fields"), "--parcels", str(mixed_parcels)]) == 0
    plain = open_cube(tmp_path / "plain" / "cube.zarr")
    ctx = open_cube(tmp_path / "fields" / "cube.zarr")
    assert "context" in ctx["ndvi_filled"].attrs and "context" not in plain["ndvi_filled"].attrs
    zone = ctx["zone"].values
    obs = ctx["ndvi"].values
    clear = np.isfinite(obs)
    # clear pixels per zone and date, the context's condition (at least 4 of them)
    n_clear = np.stack([np.bincount(zone.reshape(-1), weights=c.reshape(-1),
                                    minlength=zone.max() + 1) for c in clear])
    eligible = (~clear) & (zone > 0)[None] & (np.take_along_axis(
        n_clear, np.broadcast_to(zone.reshape(1, -1), (clear.shape[0], zone.size)), axis=1
    ).reshape(clear.shape) >= 4)
    a, b = plain["ndvi_filled"].values, ctx["ndvi_filled"].values
    sa, sb = plain["ndvi_std"].values, ctx["ndvi_std"].values
    inside = np.isfinite(a)
    assert eligible[inside].sum() > 100
    assert (np.abs(a - b)[eligible & inside] > 1e-4).mean() > 0.9
    assert (sb[eligible & inside] < sa[eligible & inside]).all()
    np.testing.assert_array_equal(a[~eligible & inside], b[~eligible & inside])


def test_mowing_reads_the_runs_own_parcels(parcels_run: Path, mixed_parcels: Path,
                                           tmp_path: Path) -> None:
    """Without --parcels, ``mowing`` on a run made with --parcels reports per parcel of the
    run, over exactly the pixels its per-parcel tables summed."""
    from pipeline.__main__ import main

    assert main(["mowing", "-q", "--cube", str(parcels_run), "--out",
                 str(tmp_path / "own"), "--detector", "zdrop"]) == 0
    own = pd.read_csv(tmp_path / "own" / "mowing_parcels.csv", dtype={"parcel_id": str})
    table = pd.read_csv(parcels_run / "parcels.csv", dtype={"parcel_id": str})
    pixels = table.groupby("parcel_id", sort=False)["n_pixels"].first()
    assert list(own["parcel_id"]) == list(pixels.index)
    np.testing.assert_array_equal(own["n_pixels"].to_numpy(), pixels.to_numpy())
    layer = gpd.read_file(tmp_path / "own" / "mowing_events.gpkg")
    assert set(layer["parcel_id"]) <= set(own["parcel_id"])
    # the same parcels given as a file: the same events where no parcel was dropped
    assert main(["mowing", "-q", "--cube", str(parcels_run), "--out",
                 str(tmp_path / "file"), "--detector", "zdrop",
                 "--parcels", str(mixed_parcels)]) == 0
    given = pd.read_csv(tmp_path / "file" / "mowing_parcels.csv",
                        dtype={"parcel_id": str}).set_index("parcel_id")
    both = own.set_index("parcel_id").join(given, rsuffix="_file", how="inner")
    same = both["n_pixels"] == both["n_pixels_file"]
    assert same.sum() >= 5
    assert (both.loc[same, "event_dates"].fillna("")
            == both.loc[same, "event_dates_file"].fillna("")).all()
