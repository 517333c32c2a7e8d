"""The cube and ``ndvi_filled.nc`` as CF clients read them: cf-xarray, rioxarray, xarray,
and Debian's GDAL (``gdalinfo``, skipped where absent)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from pipeline.cube import open_cube

#: Standard names the products may use: entries of the CF standard name table.
CF_STANDARD_NAMES = {"number_of_observations", "projection_x_coordinate",
                     "projection_y_coordinate", "time"}


def _dates(run: Path) -> list[str]:
    with rasterio.open(run / "ndvi_filled.tif") as src:
        return list(src.descriptions)


def _check_cf(ds: xr.Dataset, dates: list[str]) -> None:
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.cf.axes == {"X": ["x"], "Y": ["y"], "T": ["time"]}
    assert ds.cf.grid_mapping_names == {"transverse_mercator": ["spatial_ref"]}
    assert ds.cf.bounds["time"] == ["time_bnds"]
    bounds = ds["time_bnds"].values
    assert [str(t)[:10] for t in bounds[:, 0]] == dates
    widths = pd.to_datetime(bounds[:, 1]) - pd.to_datetime(bounds[:, 0])
    assert widths.days.tolist() == [6] * len(dates)
    for name, var in ds.data_vars.items():
        if name == "time_bnds":
            continue
        assert var.cf.grid_mapping_name == "transverse_mercator", name
        assert var.attrs.get("long_name"), name
        assert "nodata" not in var.attrs, name
        if "flag_values" in var.attrs:
            assert "units" not in var.attrs and var.attrs["flag_meanings"], name
        else:
            assert var.attrs["units"] in ("1", "dB"), name
        assert var.attrs.get("standard_name", "time") in CF_STANDARD_NAMES, name
        if np.issubdtype(var.dtype, np.floating):
            assert np.isnan(var.encoding["_FillValue"]), name
        else:
            assert var.encoding.get("_FillValue") is None, name


def test_cube_is_cf_for_cf_xarray(demo_run: Path) -> None:
    ds = open_cube(demo_run / "cube.zarr")
    _check_cf(ds, _dates(demo_run))
    assert ds.attrs["title"] and ds.attrs["history"]  # kept when the fill stage appends


def test_every_cube_variable_round_trips_through_rio_to_raster(
    demo_run: Path, tmp_path: Path
) -> None:
    import rioxarray

    ds = open_cube(demo_run / "cube.zarr")
    for name, var in ds.data_vars.items():
        if not {"y", "x"} <= set(var.dims):
            continue
        path = tmp_path / f"{name}.tif"
        var.rio.to_raster(path)
        back = rioxarray.open_rasterio(path, masked=True)
        assert isinstance(back, xr.DataArray)
        want = var.values.reshape(back.shape)
        assert back.rio.crs.to_epsg() == 32634, name
        np.testing.assert_array_equal(back.values, want, err_msg=str(name))
    # the flag keeps its zeros (filled cells), nothing is nodata
    with rasterio.open(tmp_path / "observed.tif") as src:
        assert src.nodata is None and (src.read() == 0).any()


def test_netcdf_is_cf_and_time_indexed_in_xarray(demo_run: Path) -> None:
    dates = _dates(demo_run)
    ds = xr.open_dataset(demo_run / "ndvi_filled.nc", decode_coords="all")
    _check_cf(ds, dates)
    assert [str(t)[:10] for t in ds.time.values] == dates
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        stack = src.read(masked=True).filled(np.nan)
    with rasterio.open(demo_run / "observed.tif") as src:
        flags = src.read()
    for k, day in enumerate(dates):
        np.testing.assert_array_equal(ds.ndvi_filled.sel(time=day).values, stack[k])
        np.testing.assert_array_equal(ds.observed.sel(time=day).values, flags[k])
    assert ds.ndvi_filled.rio.crs.to_epsg() == 32634


def _gdalinfo(*args: str) -> dict:
    env = {**os.environ, "GDAL_PAM_ENABLED": "NO"}  # no .aux.xml beside the products
    out = subprocess.run(["gdalinfo", "-json", *args], capture_output=True, text=True,
                         check=True, timeout=60, env=env)
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo (GDAL CLI) not installed")
def test_gdalinfo_lists_the_variables_and_the_time_dimension(demo_run: Path) -> None:
    dates = _dates(demo_run)
    nc = demo_run / "ndvi_filled.nc"
    top = _gdalinfo(str(nc))
    subs = top["metadata"]["SUBDATASETS"]
    names = [v for k, v in subs.items() if k.endswith("_NAME")]
    assert f'NETCDF:"{nc}":ndvi_filled' in names and f'NETCDF:"{nc}":observed' in names
    info = _gdalinfo(f'NETCDF:"{nc}":ndvi_filled')
    md = info["metadata"][""]
    assert md["NETCDF_DIM_EXTRA"] == "{time}"
    days = [int(v) for v in md["NETCDF_DIM_time_VALUES"].strip("{}").split(",")]
    assert md["time#units"].startswith("days since 2015-01-01")
    assert [str(pd.Timestamp("2015-01-01") + pd.Timedelta(days=d))[:10] for d in days] == dates
    assert len(info["bands"]) == len(dates)
    assert 'ID["EPSG",32634]' in info["coordinateSystem"]["wkt"]
    with rasterio.open(demo_run / "ndvi_filled.tif") as src:
        assert info["geoTransform"] == list(src.transform.to_gdal())
