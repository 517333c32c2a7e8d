"""``ndvi_filled.nc``: the filled NDVI with its std and flag as one CF-1.10 netCDF-4 file.

The stacks carry dates only as band descriptions and the Zarr v3 cube needs
GDAL 3.11+, so this is the time-indexed product that every client opens:
GDAL 3.6 and QGIS 3.22 (the netCDF driver lists the variables as subdatasets
and ``time`` as an extra dimension with its values), and xarray:

    ds = xr.open_dataset("ndvi_filled.nc", decode_coords="all")
    ds.ndvi_filled.sel(time="2023-07-18")

It is built from the finished stacks (so a multi-tile mosaic gets one too),
NaN where a stack has nodata, deflate-compressed in chunks of whole series.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.cf import apply_cf
from pipeline.timegrid import EPOCH, TimeGrid

if TYPE_CHECKING:
    from pipeline.export import StackSpec

NETCDF_NAME = "ndvi_filled.nc"
#: The cube variables that go into the file, in this order.
VARIABLES = ("ndvi_filled", "ndvi_std", "observed")
_TIME_UNITS = f"days since {EPOCH.isoformat()} 00:00:00"


def open_stacks(folder: Path, grid: TimeGrid, specs: Sequence[StackSpec]) -> xr.Dataset:
    """The stacks in ``folder`` as one lazy (time, y, x) dataset (nodata -> NaN in floats)."""
    import rioxarray

    data = {}
    for spec in specs:
        path = folder / spec.filename
        if spec.variable not in VARIABLES or not path.exists():
            continue
        floating = np.issubdtype(np.dtype(spec.dtype), np.floating)
        da = rioxarray.open_rasterio(path, chunks={"band": -1, "y": 256, "x": 256},
                                     masked=floating)
        assert isinstance(da, xr.DataArray)
        da = da.rename(band="time").assign_coords(time=grid.starts.values)
        data[spec.variable] = da.astype(spec.dtype) if not floating else da
    ds = xr.Dataset({k: data[k] for k in VARIABLES if k in data})
    for da in ds.data_vars.values():
        da.attrs = {}
        da.encoding = {}
    return ds


def write_netcdf(folder: Path, grid: TimeGrid, specs: Sequence[StackSpec],
                 attrs: dict[str, Any]) -> Path:
    """Write ``folder/ndvi_filled.nc`` from the stacks in ``folder``; return its path."""
    ds = apply_cf(open_stacks(folder, grid, specs), grid)
    ds.attrs.update(attrs)
    encoding: dict[str, dict[str, Any]] = {
        "time": {"units": _TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "int32"},
        "time_bnds": {"units": _TIME_UNITS, "calendar": "proleptic_gregorian",
                      "dtype": "int32"},
    }
    for name, var in ds.data_vars.items():
        if var.ndim != 3:
            continue
        h, w = var.shape[1:]
        # level 1: the float values' low bits are noise that no level compresses, so
        # level 4 made the file 0.6 % smaller for 1.5x the time (160,000 px, 36 dates)
        encoding[str(name)] = {"zlib": True, "complevel": 1,
                               "chunksizes": (var.shape[0], min(h, 256), min(w, 256)),
                               "_FillValue": var.encoding.get("_FillValue")}
    path = folder / NETCDF_NAME
    part = path.with_name(path.name + ".part")  # never a half-written file under the name
    try:
        ds.to_netcdf(part, engine="netcdf4", format="NETCDF4", encoding=encoding)
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
    return path
