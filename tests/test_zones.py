"""Zones from parcel files: reading, repair, clipping, rasterising per chunk, per-zone sums."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from shapely.geometry import Polygon, box

from pipeline.errors import InputError
from pipeline.parcel_table import ParcelSums, block_sums, cube_sums
from pipeline.zones import (
    erode_zones,
    prepare_parcels,
    rasterize_core,
    rasterize_zones,
    read_parcels,
    zone_date_sums,
    zone_layers,
    zone_power_sums,
    zone_value_sums,
)

#: A 40 x 30 pixel grid in UTM 34N (the demo world's zone).
GRID = GeoBox.from_bbox((670000, 6180000, 670400, 6180300), "EPSG:32634", resolution=10)
AOI = box(670000, 6180000, 670400, 6180300)


def _parcels(path: Path, geoms: list, crs: int = 32634, ids: list[str] | None = None) -> Path:
    ids = ids or [f"p{i}" for i in range(len(geoms))]
    gpd.GeoDataFrame({"parcel_id": ids}, geometry=geoms, crs=crs).to_file(path)
    return path


def _local(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(670000 + x0, 6180000 + y0, 670000 + x1, 6180000 + y1)


def _chunked(fn, table: gpd.GeoDataFrame, edge: int) -> np.ndarray:
    h, w = GRID.shape
    out = np.zeros(GRID.shape, np.int32)
    for r in range(0, h, edge):
        for c in range(0, w, edge):
            rows, cols = slice(r, min(r + edge, h)), slice(c, min(c + edge, w))
            out[rows, cols] = fn(table, GRID[rows, cols])
    return out


def test_parcels_in_another_crs_land_on_the_same_pixels(tmp_path: Path) -> None:
    geoms = [_local(12, 12, 203, 153), _local(212, 92, 383, 283)]  # edges off pixel centres
    utm = prepare_parcels(_parcels(tmp_path / "utm.gpkg", geoms), AOI, GRID)
    lks = gpd.GeoSeries(geoms, crs=32634).to_crs(3346)  # Lithuanian national grid
    other = prepare_parcels(_parcels(tmp_path / "lks.geojson", list(lks), 3346), AOI, GRID)
    a, b = rasterize_zones(utm.table, GRID), rasterize_zones(other.table, GRID)
    assert np.bincount(a.ravel()).tolist() == [1200 - 19 * 14 - 17 * 19, 19 * 14, 17 * 19]
    assert (a != b).sum() <= 2  # reprojection moves edges by millimetres
    assert other.counts.used == 2 and other.counts.outside_aoi == 0


def test_invalid_polygon_is_repaired_and_counted(tmp_path: Path) -> None:
    bowtie = Polygon([(670010, 6180010), (670210, 6180210), (670210, 6180010),
                      (670010, 6180210)])  # self-intersecting
    assert not bowtie.is_valid
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", [bowtie, _local(300, 0, 400, 100)]),
                              AOI, GRID)
    assert parcels.counts.repaired == 1 and parcels.counts.used == 2
    assert parcels.table.geometry.is_valid.all()
    assert parcels.table.geometry.iloc[0].area == pytest.approx(200 * 200 / 2)
    assert read_parcels(tmp_path / "p.gpkg", "EPSG:32634").geometry.is_valid.all()


def test_outside_small_and_overlapping_parcels_are_counted(tmp_path: Path) -> None:
    big, inner = _local(0, 0, 200, 200), _local(50, 50, 100, 100)
    geoms = [big, inner, _local(1000, 1000, 1200, 1200), _local(300, 0, 320, 20),
             _local(350, 250, 450, 350)]  # the last is half outside the AOI: clipped
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", geoms), AOI, GRID, min_pixels=5)
    c = parcels.counts
    assert (c.read, c.outside_aoi, c.too_small, c.overlapping, c.used) == (5, 1, 1, 2, 3)
    assert parcels.table["parcel_id"].tolist() == ["p0", "p1", "p4"]
    assert parcels.table.geometry.iloc[2].area == pytest.approx(50 * 50)
    zones = rasterize_zones(parcels.table, GRID)
    assert (zones == 2).sum() == 25  # the smaller parcel keeps the shared pixels
    assert (zones == 1).sum() == 400 - 25


def test_rows_of_one_parcel_id_become_one_parcel(tmp_path: Path) -> None:
    # an agency file storing a parcel's two parts as two rows of one id, among others
    geoms = [_local(0, 0, 100, 100), _local(200, 0, 300, 100), _local(0, 150, 100, 250),
             _local(200, 150, 300, 250)]
    path = _parcels(tmp_path / "p.gpkg", geoms, ids=["a", "b", "a", "c"])
    parcels = prepare_parcels(path, AOI, GRID)
    c = parcels.counts
    assert (c.read, c.merged, c.used) == (4, 1, 3)
    assert parcels.table["parcel_id"].tolist() == ["a", "b", "c"]  # first rows' order
    assert parcels.table.geometry.iloc[0].area == pytest.approx(2 * 100 * 100)
    zones = rasterize_zones(parcels.table, GRID)
    assert np.bincount(zones.ravel()).tolist()[1:] == [200, 100, 100]
    table = read_parcels(path, "EPSG:32634")  # mowing --parcels reads them the same way
    assert table["parcel_id"].tolist() == ["a", "b", "c"]
    assert table.geometry.iloc[0].area == pytest.approx(2 * 100 * 100)


def test_rows_without_a_polygon_are_skipped_and_counted(tmp_path: Path) -> None:
    geoms = [_local(0, 0, 100, 100), None, shapely.Point(670250, 6180050),
             shapely.LineString([(670000, 6180000), (670100, 6180100)]),
             _local(200, 0, 300, 100)]
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", geoms), AOI, GRID)
    c = parcels.counts
    assert (c.read, c.not_polygons, c.used) == (2, 3, 2)
    assert parcels.table["parcel_id"].tolist() == ["p0", "p4"]
    assert parcels.counts.as_record()["not_polygons"] == 3


def test_zero_parcels_inside_the_aoi_is_one_clear_error(tmp_path: Path) -> None:
    path = _parcels(tmp_path / "far.gpkg", [_local(5000, 5000, 5200, 5200)])
    with pytest.raises(InputError, match="none of its 1 parcels lies inside the AOI"):
        prepare_parcels(path, AOI, GRID)
    tiny = _parcels(tmp_path / "tiny.gpkg", [_local(0, 0, 20, 20)])
    with pytest.raises(InputError, match="all smaller than 10 pixels there"):
        prepare_parcels(tiny, AOI, GRID)


def test_files_without_polygons_crs_or_id_column_are_refused(tmp_path: Path) -> None:
    pts = tmp_path / "pts.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.Point(670100, 6180100)],
                     crs=32634).to_file(pts)
    with pytest.raises(InputError, match="no polygons"):
        prepare_parcels(pts, AOI, GRID)
    nocrs = tmp_path / "nocrs.shp"  # a Shapefile without .prj (GeoJSON is EPSG:4326 by law)
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame({"id": [1]}, geometry=[_local(0, 0, 100, 100)]).to_file(nocrs)
    with pytest.raises(InputError, match="no CRS"):
        prepare_parcels(nocrs, AOI, GRID)
    ok = _parcels(tmp_path / "ok.gpkg", [_local(0, 0, 100, 100)])
    with pytest.raises(InputError, match="--parcel-id 'field'"):
        prepare_parcels(ok, AOI, GRID, id_column="field")


def test_geoparquet_and_shapefile_are_read(tmp_path: Path) -> None:
    geoms = [_local(0, 0, 100, 100), _local(150, 0, 250, 100)]
    gdf = gpd.GeoDataFrame({"plotID": ["a", "b"]}, geometry=geoms, crs=32634)
    gdf.to_parquet(tmp_path / "p.parquet")
    gdf.to_file(tmp_path / "p.shp")
    for name in ("p.parquet", "p.shp"):
        assert prepare_parcels(tmp_path / name, AOI, GRID).table["parcel_id"].tolist() == [
            "a", "b"]


@pytest.mark.parametrize("edge", [7, 16, 25])
def test_chunks_that_cut_parcels_give_the_same_zones_and_core(tmp_path: Path, edge: int) -> None:
    geoms = [_local(15, 15, 205, 155), _local(195, 95, 385, 285), _local(50, 50, 80, 80),
             _local(215, 15, 395, 85)]
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", geoms), AOI, GRID, min_pixels=1)
    whole_z, whole_c = rasterize_zones(parcels.table, GRID), rasterize_core(parcels.table, GRID)
    np.testing.assert_array_equal(_chunked(rasterize_zones, parcels.table, edge), whole_z)
    np.testing.assert_array_equal(_chunked(rasterize_core, parcels.table, edge), whole_c)
    layers = zone_layers(parcels, GRID, edge)
    np.testing.assert_array_equal(layers["zone"].values, whole_z)
    np.testing.assert_array_equal(layers["zone_core"].values, whole_c)


def test_core_is_the_zone_less_its_border_pixels() -> None:
    z = np.zeros((8, 9), np.int32)
    z[1:6, 1:5] = 1
    z[1:6, 5:8] = 2
    core = erode_zones(np.pad(z, 1))
    assert (core == 1).sum() == 3 * 2 and (core == 2).sum() == 3 * 1
    assert set(np.unique(core[core > 0] == z[core > 0])) == {True}


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 5))
def test_sums_add_over_blocks_and_equal_direct_means(seed: int, k: int, t: int) -> None:
    rng = np.random.default_rng(seed)
    zone = rng.integers(0, k + 1, (12, 10)).astype(np.int32)
    ndvi = rng.random((t, 12, 10))
    ndvi[rng.random(ndvi.shape) < 0.3] = np.nan
    db = rng.normal(-12, 3, (t, 12, 10))
    db[rng.random(db.shape) < 0.2] = np.nan
    whole = zone_date_sums(zone, ndvi, k)
    parts = zone_date_sums(zone[:5], ndvi[:, :5], k) + zone_date_sums(zone[5:], ndvi[:, 5:], k)
    np.testing.assert_array_equal(parts.clear, whole.clear)
    np.testing.assert_allclose(parts.ndvi_sum, whole.ndvi_sum)
    power = zone_power_sums(zone, db, k)
    values = zone_value_sums(zone, ndvi, k)
    for z in range(1, k + 1):
        sel = zone == z
        for d in range(t):
            v = ndvi[d][sel]
            assert whole.pixels[z, d] == sel.sum()
            assert whole.clear[z, d] == np.isfinite(v).sum()
            if np.isfinite(v).any():
                assert whole.clear_mean()[z, d] == pytest.approx(np.nanmean(v))
                assert values.std()[z, d] == pytest.approx(np.nanstd(v), abs=1e-9)
            p = db[d][sel]
            p = p[np.isfinite(p)]
            assert power.looks[z, d] == p.size
            if p.size:
                assert power.mean_db()[z, d] == pytest.approx(
                    10 * np.log10(np.mean(10 ** (p / 10))))
    assert whole.pixels[0].sum() == 0 and whole.clear[0].sum() == 0


def test_cube_sums_are_the_same_for_any_chunking(tmp_path: Path) -> None:
    import xarray as xr

    geoms = [_local(15, 15, 205, 155), _local(195, 95, 385, 285), _local(50, 50, 80, 80)]
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", geoms), AOI, GRID, min_pixels=1)
    rng = np.random.default_rng(1)
    t = 4
    shape = (t, *GRID.shape)
    ndvi = rng.random(shape).astype(np.float32)
    ndvi[rng.random(shape) < 0.4] = np.nan
    data = {"ndvi": ndvi, "ndvi_filled": rng.random(shape).astype(np.float32),
            **{v: rng.normal(-12, 2, shape).astype(np.float32)
               for v in ("vv_asc", "vv_desc", "vh_asc", "vh_desc")}}
    results = []
    for edge in (7, 40):
        layers = zone_layers(parcels, GRID, edge)
        ds = xr.Dataset({n: (("time", "y", "x"), a) for n, a in data.items()},
                        coords={"y": layers.y, "x": layers.x})
        ds = ds.assign(layers).chunk({"time": -1, "y": edge, "x": edge})
        got = cube_sums(ds, parcels.n_zones)
        assert isinstance(got, ParcelSums)
        results.append(got)
    a, b = results
    np.testing.assert_allclose(a.filled.mean(), b.filled.mean())
    np.testing.assert_allclose(a.filled.std(), b.filled.std(), atol=1e-7)
    np.testing.assert_array_equal(a.observed.clear, b.observed.clear)
    for v in a.s1:
        np.testing.assert_array_equal(a.s1[v].looks, b.s1[v].looks)
        np.testing.assert_allclose(a.s1[v].mean_db(), b.s1[v].mean_db())
    z = rasterize_zones(parcels.table, GRID)
    direct = block_sums(z, rasterize_core(parcels.table, GRID), data["ndvi_filled"],
                        data["ndvi"], {}, parcels.n_zones)
    np.testing.assert_allclose(a.filled.mean(), direct.filled.mean())


def test_mowing_parcel_series_do_not_depend_on_the_chunks(tmp_path: Path) -> None:
    import xarray as xr

    from pipeline.mowing.raster import parcel_series

    geoms = [_local(15, 15, 205, 155), _local(195, 95, 385, 285), _local(50, 50, 80, 80)]
    table = read_parcels(_parcels(tmp_path / "p.gpkg", geoms), "EPSG:32634")
    rng = np.random.default_rng(2)
    shape = (5, *GRID.shape)
    ndvi = rng.random(shape).astype(np.float32)
    ndvi[rng.random(shape) < 0.3] = np.nan
    coords = GRID.coordinates
    ds = xr.Dataset({"ndvi": (("time", "y", "x"), ndvi),
                     "aoi_mask": (("y", "x"), np.ones(GRID.shape, np.uint8))},
                    coords={"y": coords["y"].values, "x": coords["x"].values})
    got = [parcel_series(ds.chunk({"time": -1, "y": e, "x": e}), table, GRID, "observed")
           for e in (7, 40)]
    for a, b in zip(got[0], got[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    zone = rasterize_zones(table, GRID)
    mean, _, npix = got[0]
    assert npix.tolist() == [int((zone == k).sum()) for k in (1, 2, 3)]
    with np.errstate(all="ignore"):
        ref = np.nanmean(ndvi[:, zone == 1], axis=1)
        share = np.isfinite(ndvi[:, zone == 1]).mean(axis=1)
    np.testing.assert_allclose(mean[0], np.where(share >= 0.5, ref, np.nan), rtol=1e-6)


def test_a_parcel_along_the_aoi_edge_gets_no_pixels_from_a_line(tmp_path: Path) -> None:
    aoi = box(670000, 6180000, 670200, 6180300)
    # one part inside, one outside sharing the AOI's east edge: the clip is a polygon
    # plus a line along that edge
    two = shapely.MultiPolygon([_local(100, 100, 150, 200), _local(200, 200, 300, 300)])
    assert shapely.intersection(two, aoi).geom_type == "GeometryCollection"
    parcels = prepare_parcels(_parcels(tmp_path / "p.gpkg", [two]), aoi, GRID)
    assert parcels.table.geom_type.tolist() == ["Polygon"]
    zones = rasterize_zones(parcels.table, GRID)
    assert (zones == 1).sum() == 50 and not zones[:, 15:].any()
