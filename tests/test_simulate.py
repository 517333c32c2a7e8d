"""The simulated demo archive: contract, determinism, physics (tiny world, fast)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from pipeline.simulate import WorldSpec, default_world, write_archive
from pipeline.simulate import archive as archive_mod
from pipeline.simulate import calibration as cal
from pipeline.simulate.landscape import make_landscape
from pipeline.simulate.optics import draw_cover
from pipeline.simulate.phenology import make_calendar, unit_ndvi
from pipeline.simulate.spec import s1_schedule, s2_schedule, stream
from pipeline.sources.demo import ensure_demo_archive
from pipeline.timegrid import TimeGrid

TINY = WorldSpec(bounds=(671000.0, 6180000.0, 672000.0, 6181000.0),
                 start=dt.date(2023, 6, 1), end=dt.date(2023, 6, 30), seed=3)


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny archive, generated once per session through the demo source."""
    return ensure_demo_archive(tmp_path_factory.mktemp("cache"), TINY).parent


def _items(root: Path, collection: str) -> list[pystac.Item]:
    cat = pystac.Catalog.from_file(str(root / "catalog.json"))
    child = cat.get_child(collection)
    assert child is not None
    return sorted(child.get_items(), key=lambda i: i.datetime or dt.datetime.min)


def _read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def _truth(root: Path, name: str) -> np.ndarray:
    with rasterio.open(root / "truth" / name) as src:
        return src.read()


def test_catalog_is_self_contained_and_complete(archive: Path) -> None:
    cat = pystac.Catalog.from_file(str(archive / "catalog.json"))
    assert {c.id for c in cat.get_children()} == {"sentinel-2-l2a", "sentinel-1-grd-backscatter"}
    raw = json.loads((archive / "catalog.json").read_text())
    assert all(not link["href"].startswith("/") for link in raw["links"])
    s2 = _items(archive, "sentinel-2-l2a")
    s1 = _items(archive, "sentinel-1-grd-backscatter")
    assert len(s2) == len(s2_schedule(TINY)) == 6
    assert len(s1) == len(s1_schedule(TINY))
    item_json = json.loads(Path(s2[0].get_self_href() or "").read_text())
    assert item_json["assets"]["B04_10m"]["href"] == "./B04_10m.tif"
    assert not list(archive.parent.glob(".*partial*"))


def test_s2_items_follow_the_contract(archive: Path) -> None:
    items = _items(archive, "sentinel-2-l2a")
    assert {i.properties["platform"] for i in items} == {"sentinel-2a", "sentinel-2b"}
    for item in items:
        assert re.fullmatch(r"S2[AB]_MSIL2A_\d{8}T\d{6}_N0509_R\d{3}_T\w{5}_\d{8}T\d{6}", item.id)
        p = item.properties
        assert p["s2:processing_baseline"] == "05.09" and p["s2:boa_add_offset"] == -1000
        assert p["proj:code"] == "EPSG:32634" and p["constellation"] == "sentinel-2"
        assert 0 <= p["eo:cloud_cover"] <= 100
        assert item.datetime is not None and item.datetime.hour == 9
        assert set(item.assets) == {"B04_10m", "B08_10m", "SCL_20m"}
        for key in ("B04_10m", "B08_10m"):
            asset = item.assets[key]
            assert asset.roles == ["data"]
            band = asset.extra_fields["raster:bands"][0]
            assert (band["data_type"], band["nodata"], band["scale"], band["offset"]) == (
                "uint16", 0, 0.0001, -0.1)
            assert asset.extra_fields["proj:shape"] == [100, 100]
        assert item.assets["SCL_20m"].extra_fields["proj:shape"] == [50, 50]
        lon0, lat0, lon1, lat1 = item.bbox or []
        assert 23 < lon0 < lon1 < 25 and 55 < lat0 < lat1 < 56
    with rasterio.open(items[0].assets["B04_10m"].get_absolute_href()) as src:
        assert src.dtypes[0] == "uint16" and src.nodata == 0 and src.crs.to_epsg() == 32634
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.compression is not None and src.compression.name == "deflate"
        assert src.transform.a == 10 and src.transform.c % 10 == 0
    with rasterio.open(items[0].assets["SCL_20m"].get_absolute_href()) as src:
        assert src.dtypes[0] == "uint8" and src.transform.a == 20
    cover = [i.properties["eo:cloud_cover"] for i in items]
    scl_cover = [100 * np.isin(_read(i, "SCL_20m"), (8, 9, 10)).mean() for i in items]
    np.testing.assert_allclose(cover, scl_cover, atol=0.01)


def test_s1_items_are_linear_backscatter_on_a_geographic_grid(archive: Path) -> None:
    items = _items(archive, "sentinel-1-grd-backscatter")
    assert {i.properties["sat:orbit_state"] for i in items} == {"ascending", "descending"}
    for item in items:
        p = item.properties
        assert item.id.startswith("S1") and "_IW_GRDH_1SDV_" in item.id
        assert isinstance(p["sat:relative_orbit"], int) and p["sar:instrument_mode"] == "IW"
        assert p["sar:polarizations"] == ["VV", "VH"] and p["sar:product_type"] == "GRD"
        assert p["sar:frequency_band"] == "C" and p["proj:code"] == "EPSG:4326"
        assert set(item.assets) == {"vv", "vh"}
    with rasterio.open(items[0].assets["vv"].get_absolute_href()) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "float32"
        assert np.isnan(src.nodata)
        assert src.transform.a == pytest.approx(0.00016) and src.transform.e == pytest.approx(
            -0.0001)
        vv = src.read(1)
    assert np.nanmedian(vv) > 0 and np.nanmedian(vv) < 0.3  # linear power, not dB
    lon0, lat0, lon1, lat1 = items[0].bbox or []
    s2_bbox = _items(archive, "sentinel-2-l2a")[0].bbox or []
    assert lon0 < s2_bbox[0] and lat0 < s2_bbox[1] and lon1 > s2_bbox[2] and lat1 > s2_bbox[3]


def test_same_seed_gives_identical_rasters(archive: Path, tmp_path: Path) -> None:
    again = write_archive(tmp_path / "again", TINY).parent
    files = sorted(p.relative_to(archive) for p in archive.rglob("*.tif"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.tif"))
    for rel in files:
        assert (archive / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = write_archive(tmp_path / "other", WorldSpec(**{**TINY.__dict__, "seed": 4})).parent
    assert not np.array_equal(_truth(archive, "ndvi_acq.tif"), _truth(other, "ndvi_acq.tif"))


def test_existing_archive_is_returned_and_crash_leaves_nothing(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = (archive / "catalog.json").stat().st_mtime_ns
    assert write_archive(archive, TINY) == archive / "catalog.json"
    assert (archive / "catalog.json").stat().st_mtime_ns == stamp

    def boom(root: Path, spec: WorldSpec) -> None:
        (root / "catalog.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(archive_mod, "_build", boom)
    with pytest.raises(RuntimeError):
        write_archive(tmp_path / "crashed", TINY)
    assert list(tmp_path.iterdir()) == []


def test_spec_rejects_bounds_off_the_20m_grid() -> None:
    with pytest.raises(ValueError, match="multiple of 20"):
        WorldSpec(bounds=(671005.0, 6180000.0, 672000.0, 6181000.0))
    assert default_world().bounds == (670900.0, 6179400.0, 675700.0, 6184200.0)


def test_truth_files_and_clean_ndvi_levels(archive: Path) -> None:
    with rasterio.open(archive / "truth" / "ndvi_acq.tif") as src:
        ndvi = src.read()
        times = [i.datetime for i in _items(archive, "sentinel-2-l2a")]
        assert list(src.descriptions) == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times if t]
    lc = _truth(archive, "landcover.tif")[0]
    with rasterio.open(archive / "truth" / "landcover.tif") as src:
        assert json.loads(src.tags()["classes"])["1"] == "grassland_mown"
    june = np.median(ndvi, axis=0)
    levels = {c: float(np.median(june[lc == c])) for c in np.unique(lc)}
    assert 0.6 < levels[cal.GRASS] < 0.9 and 0.6 < levels[cal.PASTURE] < 0.85
    assert levels[cal.FOREST] > 0.8 and levels[cal.WATER] < 0
    assert levels[cal.BUILT] < 0.35 and levels[cal.MAIZE] < 0.45  # maize still small in June
    with rasterio.open(archive / "truth" / "ndvi_bins.tif") as src:
        grid = TimeGrid.covering(TINY.start, TINY.end)
        assert src.count == grid.count and list(src.descriptions) == grid.iso_dates()
        bins = src.read()
    assert np.isfinite(bins).all() and bins.min() > -0.5 and bins.max() < 0.95
    parcels = json.loads((archive / "truth" / "parcels.geojson").read_text())["features"]
    assert all(set(f["properties"]) >= {"parcel_id", "landcover", "mowing_dates"}
               for f in parcels)
    lon, lat = parcels[0]["geometry"]["coordinates"][0][0]
    assert 23 < lon < 25 and 55 < lat < 56


def test_clear_sky_ndvi_matches_truth_and_missed_haze_biases_low(archive: Path) -> None:
    truth = _truth(archive, "ndvi_acq.tif")
    thin = _truth(archive, "thin_cloud_acq.tif")
    errors, haze = [], []
    for k, item in enumerate(_items(archive, "sentinel-2-l2a")):
        red = _read(item, "B04_10m") * 1e-4 - 0.1
        nir = _read(item, "B08_10m") * 1e-4 - 0.1
        scl = np.kron(_read(item, "SCL_20m"), np.ones((2, 2), np.uint8))
        ndvi = (nir - red) / (nir + red)
        clear = np.isin(scl, (4, 5, 6))
        errors.append((ndvi - truth[k])[clear & (thin[k] == 0)])
        haze.append((ndvi - truth[k])[clear & (thin[k] == 1)])
    err, bias = np.concatenate(errors), np.concatenate(haze)
    assert err.size > 5000 and bias.size > 100
    assert abs(np.median(err)) < 0.01 and np.quantile(np.abs(err), 0.9) < 0.04
    assert np.median(bias) < -0.01


def test_share_of_mostly_cloudy_acquisitions() -> None:
    spec = default_world()
    cover = np.array([draw_cover(stream(spec, 99, k), spec) for k in range(600)])
    assert 0.55 <= (cover > 0.5).mean() <= 0.72
    assert 0.08 <= (cover < 0.05).mean() <= 0.25


def test_mowing_drops_ndvi_and_regrows() -> None:
    land = make_landscape(TINY)
    calendar = make_calendar(land.unit_class, TINY)
    grass = np.flatnonzero(~np.isnan(calendar.cuts[:, 0]))
    assert grass.size > 3 and set(land.unit_class[grass]) == {cal.GRASS}
    cut = calendar.cuts[grass, 0]
    days = np.arange(100.0, 300.0, 0.25)
    series = unit_ndvi(calendar, days)[grass]
    for row, t in zip(series, cut, strict=True):
        i = np.searchsorted(days, t)
        drop = row[i - 1] - row[i + 1]
        assert 0.15 - 1e-6 <= drop <= 0.41 or row[i + 1] <= cal.MOW_FLOOR + 0.01
        assert row[i + 4 * 35] - row[i + 1] > 0.8 * drop - 0.05  # mostly regrown in 5 weeks


def test_mowing_dates_in_truth_show_in_clean_ndvi(archive: Path) -> None:
    truth = _truth(archive, "ndvi_acq.tif")
    ids = _truth(archive, "parcels.tif")[0]
    times = [i.datetime.date() for i in _items(archive, "sentinel-2-l2a") if i.datetime]
    parcels = json.loads((archive / "truth" / "parcels.geojson").read_text())["features"]
    checked = 0
    for f in parcels:
        dates = f["properties"]["mowing_dates"] or []
        for day in map(dt.date.fromisoformat, dates):
            k = next((i for i, t in enumerate(times) if t >= day), None)
            if k is None or k == 0:
                continue
            m = ids == f["properties"]["parcel_id"]
            if m.sum() < 5:
                continue
            assert np.median(truth[k - 1][m]) - np.median(truth[k][m]) > 0.08
            checked += 1
    assert checked >= 2


def test_backscatter_levels_by_class(archive: Path) -> None:
    from pipeline.simulate.radar import make_radar_scene

    land = make_landscape(TINY)
    cls = land.unit_class[make_radar_scene(land, TINY).unit]
    db: dict[str, list[np.ndarray]] = {"ascending": [], "descending": []}
    for item in _items(archive, "sentinel-1-grd-backscatter"):
        db[item.properties["sat:orbit_state"]].append(10 * np.log10(_read(item, "vv")))
    asc, desc = np.array(db["ascending"]), np.array(db["descending"])

    def med(a: np.ndarray, c: int) -> float:
        return float(np.nanmedian(a[:, cls == c]))

    assert med(asc, cal.WATER) < -15 < med(asc, cal.GRASS) < -8 < med(asc, cal.BUILT)
    assert -14 < med(asc, cal.GRASS) < -9.5
    assert 0.3 < med(desc, cal.GRASS) - med(asc, cal.GRASS) < 1.8
    grass = asc[:, cls == cal.GRASS]
    noise = np.nanstd(np.diff(grass, axis=0)) / np.sqrt(2)
    assert 1.8 < noise < 2.8  # single-pixel speckle, ENL 4.4 (real plots: 2.07 dB)
    assert np.isnan(desc).any() and not np.isnan(asc).any()  # descending swath edge
