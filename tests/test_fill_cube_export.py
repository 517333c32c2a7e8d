"""Fill kernel (eager == dask), resumable cube writing and COG export."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from odc.geo.geobox import GeoBox

from pipeline.cube import add_grid_mapping, open_cube, write_chunked
from pipeline.export import PRODUCTS, write_products
from pipeline.fill import LinearFiller, compute_filled, fill_block
from pipeline.timegrid import TimeGrid

T = 12


def _cube(seed: int = 0, ny: int = 20, nx: int = 24, chunk: int = 8) -> tuple[xr.Dataset, GeoBox]:
    rng = np.random.default_rng(seed)
    gb = GeoBox.from_bbox((600000, 6000000, 600000 + nx * 10, 6000000 + ny * 10),
                          "EPSG:32634", resolution=10)
    grid = TimeGrid.covering("2023-04-01", "2023-06-05")
    ndvi = rng.uniform(0.1, 0.9, (grid.count, ny, nx)).astype(np.float32)
    ndvi[rng.random(ndvi.shape) < 0.6] = np.nan
    ndvi[:, 0, 0] = np.nan  # a pixel never observed
    coords = {"time": grid.starts.values, "y": gb.coordinates["y"].values,
              "x": gb.coordinates["x"].values}
    data = {"ndvi": (("time", "y", "x"), ndvi)}
    for v in ("vv_asc", "vv_desc", "vh_asc", "vh_desc"):
        data[v] = (("time", "y", "x"), rng.normal(-12, 2, ndvi.shape).astype(np.float32))
    ds = xr.Dataset(data, coords=coords)
    ds["aoi_mask"] = (("y", "x"), np.ones((ny, nx), np.uint8))
    ds = ds.chunk({"time": -1, "y": chunk, "x": chunk})
    return add_grid_mapping(ds, gb), gb


def test_dask_fill_equals_eager():
    cube, _ = _cube()
    lazy = compute_filled(cube, LinearFiller())
    eager_mean, _ = fill_block(
        LinearFiller(),
        *(np.moveaxis(cube[v].values, 0, -1)
          for v in ("ndvi", "vv_asc", "vv_desc", "vh_asc", "vh_desc")),
    )
    np.testing.assert_array_equal(lazy["ndvi_filled"].values, np.moveaxis(eager_mean, -1, 0))
    assert lazy["ndvi_filled"].chunks == cube["ndvi"].chunks


class _ReadsS1(LinearFiller):
    """Linear interpolation that says it reads Sentinel-1 and records what it got."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "seen", [])

    def fill(self, ndvi, vv, vh, doy=None):  # type: ignore[no-untyped-def]
        self.seen.append(bool(np.isfinite(vv).any()))
        return super().fill(ndvi, vv, vh, doy)

    def reads_s1(self) -> bool:
        return True


def test_fill_reads_sentinel1_only_for_a_filler_that_reads_it():
    """A filler that reads no Sentinel-1 is not given it: the fill runs on a cube
    without the radar variables, with the same result; one that reads it gets it."""
    cube, _ = _cube()
    full = compute_filled(cube, LinearFiller())["ndvi_filled"].values
    no_radar = cube.drop_vars(["vv_asc", "vv_desc", "vh_asc", "vh_desc"])
    np.testing.assert_array_equal(
        compute_filled(no_radar, LinearFiller())["ndvi_filled"].values, full)
    reader = _ReadsS1()
    np.testing.assert_array_equal(
        compute_filled(cube, reader)["ndvi_filled"].compute(scheduler="sync").values, full)
    assert reader.seen and all(reader.seen)
    with pytest.raises(KeyError):
        compute_filled(no_radar, _ReadsS1())


def test_fill_keeps_observations_and_leaves_unobserved_pixels_nan():
    cube, _ = _cube()
    out = compute_filled(cube, LinearFiller()).compute()
    obs = cube["ndvi"].values
    seen = np.isfinite(obs)
    np.testing.assert_array_equal(out["ndvi_filled"].values[seen], obs[seen])
    assert np.isnan(out["ndvi_filled"].values[:, 0, 0]).all()
    filled = out["ndvi_filled"].values[:, 1:, 1:]
    assert np.isfinite(filled[:, np.isfinite(obs[:, 1:, 1:]).any(axis=0)]).all()
    np.testing.assert_array_equal(out["observed"].values, seen.astype(np.uint8))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, (5, 9), elements=st.one_of(st.just(np.nan),
                                                       st.floats(-1, 1, width=32))))
def test_linear_fill_bounded_by_observations(arr):
    mean, _ = LinearFiller().fill(arr, np.full((5, 9, 2), np.nan, np.float32),
                                  np.full((5, 9, 2), np.nan, np.float32))
    for row, m in zip(arr, mean, strict=True):
        if np.isfinite(row).any():
            assert np.isfinite(m).all()
            assert m.min() >= np.nanmin(row) - 1e-6 and m.max() <= np.nanmax(row) + 1e-6
        else:
            assert np.isnan(m).all()


def test_cube_write_resumes_and_skips_finished_chunks(tmp_path):
    cube, _ = _cube()
    store = tmp_path / "cube.zarr"
    first = write_chunked(cube, store, "ingest", "sig1")
    assert first.written == 9 and first.skipped == 0
    # simulate a run killed after 4 chunks: drop the other markers
    marks = sorted((tmp_path / "cube.zarr.progress" / "ingest").glob("*.done"))
    for m in marks[4:]:
        m.unlink()
    again = write_chunked(cube, store, "ingest", "sig1")
    assert again.skipped == 4 and again.written == 5
    back = open_cube(store)
    np.testing.assert_array_equal(back["ndvi"].values, cube["ndvi"].values)
    assert back.rio.crs.to_epsg() == 32634
    changed = write_chunked(cube, store, "ingest", "sig2")
    assert changed.skipped == 0


def test_export_cog_with_dates_on_bands(tmp_path):
    cube, gb = _cube()
    store = tmp_path / "cube.zarr"
    write_chunked(cube, store, "ingest", "s")
    filled = compute_filled(open_cube(store), LinearFiller())
    write_chunked(filled, store, "fill", "f", new_store=False)
    ds = open_cube(store)
    dates = [str(t)[:10] for t in ds["time"].values]
    out = tmp_path / "out"
    record: dict = {"version": "test"}
    written = write_products(ds, gb, TimeGrid.of_starts(ds["time"].values), out, record)
    names = {p.name for p in written}
    assert {"ndvi_filled.tif", "observed.tif", "ndvi_observed.tif", "run.json",
            "ndvi_filled.qml"} <= names
    assert "ndvi_std.tif" in record["products_left_out"]
    assert not list(out.glob(".staging-*"))
    with rasterio.open(out / "ndvi_filled.tif") as src:
        assert src.count == len(dates) and src.descriptions == tuple(dates)
        assert src.crs.to_epsg() == 32634 and src.res == (10.0, 10.0)
        assert src.nodata == -9999
        assert src.profile["tiled"] and src.tags(1)["DATE"] == dates[0]
        data = src.read()
    never = ~np.isfinite(cube["ndvi"].values).any(axis=0)
    assert never[0, 0]
    assert (data[:, never] == -9999).all() and (data[:, ~never] != -9999).all()
    assert not np.isnan(data).any()
    assert {p.variable for p in PRODUCTS} >= {"ndvi_filled", "ndvi_std", "observed"}


@pytest.mark.parametrize("chunk", [5, 7, 24])
def test_fill_independent_of_chunking(chunk):
    a, _ = _cube(chunk=chunk)
    b, _ = _cube(chunk=24)
    np.testing.assert_array_equal(compute_filled(a, LinearFiller())["ndvi_filled"].values,
                                  compute_filled(b, LinearFiller())["ndvi_filled"].values)


def test_model_fill_dask_equals_eager():
    from pipeline.fill import ModelFiller, cube_doy

    cube, _ = _cube(seed=3)
    filler = ModelFiller()
    lazy = compute_filled(cube, filler)
    arrays = [np.moveaxis(cube[v].values, 0, -1)
              for v in ("ndvi", "vv_asc", "vv_desc", "vh_asc", "vh_desc")]
    # compute_filled gives the filler the cube's dates (day of year of the bin centres).
    mean, std = fill_block(filler, *arrays, doy=cube_doy(cube["time"].values))
    np.testing.assert_allclose(lazy["ndvi_filled"].values, np.moveaxis(mean, -1, 0), atol=1e-6)
    np.testing.assert_allclose(lazy["ndvi_std"].values, np.moveaxis(std, -1, 0), atol=1e-6)


class _CountingFiller(LinearFiller):
    """Linear fill that counts the pixel series it is given."""

    seen: list[int] = []  # noqa: RUF012  (shared on purpose: dask may copy the filler)

    def fill(self, ndvi, vv, vh, doy=None):  # type: ignore[no-untyped-def]
        type(self).seen.append(ndvi.shape[0])
        return super().fill(ndvi, vv, vh, doy)


def test_fill_skips_pixels_outside_the_aoi_and_leaves_them_nan():
    cube, _ = _cube(seed=5)
    everywhere = compute_filled(cube, LinearFiller()).compute()
    mask = np.ones(cube["aoi_mask"].shape, np.uint8)
    mask[:, :10] = 0  # the left 10 columns lie outside
    part = cube.assign(aoi_mask=(("y", "x"), mask))
    _CountingFiller.seen.clear()
    out = compute_filled(part, _CountingFiller()).compute(scheduler="synchronous")
    observed_inside = int(np.isfinite(cube["ndvi"].values).any(axis=0)[:, 10:].sum())
    assert sum(_CountingFiller.seen) == observed_inside
    assert np.isnan(out["ndvi_filled"].values[:, :, :10]).all()
    np.testing.assert_array_equal(out["ndvi_filled"].values[:, :, 10:],
                                  everywhere["ndvi_filled"].values[:, :, 10:])
    np.testing.assert_array_equal(out["observed"].values, everywhere["observed"].values)


def test_provenance_hashes_weights_without_torch():
    import subprocess
    import sys

    code = ("import sys, hashlib; from pipeline.provenance import model_info; "
            "from pipeline.fill import available_method; info = model_info(None); "
            "assert available_method(None) == 'sf'; "
            "assert info['sha256'] == hashlib.sha256(open(info['weights'], 'rb').read())"
            ".hexdigest(); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
