"""CF-1.10 metadata of the cube and product variables: one table, one function.

Every variable gets ``long_name`` and ``units`` (``"1"`` for ratios and counts,
none for flags, which carry ``flag_values``/``flag_meanings`` instead), a
``standard_name`` only where the CF standard name table has one
(``number_of_observations``; NDVI and dB backscatter have none, so they get
none rather than an invented one), and ``grid_mapping`` when it lies on the
grid. Missing values are the ``_FillValue`` encoding (NaN for floats); integer
variables have no missing values, so they get no fill value: the ``nodata``
attributes that reached the cube from the readers are dropped, because GDAL and
rioxarray take them as nodata (``nodata: 0`` on ``observed`` made every filled
cell nodata). The 6-day bins are the ``time_bnds`` of ``time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.timegrid import TimeGrid

GRID_MAPPING = "spatial_ref"
CONVENTIONS = "CF-1.10"
#: Attributes that readers put on variables and CF does not know (GDAL/rioxarray
#: read ``nodata`` as the missing value, which the ``_FillValue`` encoding states).
_DROPPED = ("nodata", "_FillValue", "missing_value")
#: Attributes set from the table (an inherited one, e.g. of ``ndvi`` on ``observed``,
#: would be wrong).
_TABLE_KEYS = ("long_name", "units", "standard_name", "ancillary_variables", "flag_values",
               "flag_meanings")


@dataclass(frozen=True)
class VarMeta:
    """CF attributes of one variable.

    Attributes:
        long_name: what the values are.
        units: UDUNITS string; ``None`` for flags.
        standard_name: CF standard name, only where the table has one.
        extra: further attributes (flag values and meanings, ancillary variables).
    """

    long_name: str
    units: str | None = "1"
    standard_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _backscatter(pol: str, direction: str) -> VarMeta:
    return VarMeta(f"Sentinel-1 {pol.upper()} backscatter, {direction} passes, mean of the "
                   "bin in linear power, in decibel", units="dB")


VARIABLES: dict[str, VarMeta] = {
    "ndvi": VarMeta("NDVI, mean of the clear Sentinel-2 observations in the bin",
                    extra={"ancillary_variables": "ndvi_count"}),
    "ndvi_count": VarMeta("number of clear Sentinel-2 observations in the bin",
                          standard_name="number_of_observations"),
    "vv_asc": _backscatter("vv", "ascending"),
    "vh_asc": _backscatter("vh", "ascending"),
    "vv_desc": _backscatter("vv", "descending"),
    "vh_desc": _backscatter("vh", "descending"),
    "aoi_mask": VarMeta("area of interest", units=None,
                        extra={"flag_values": np.array([0, 1], np.uint8),
                               "flag_meanings": "outside_aoi inside_aoi"}),
    "zone": VarMeta("zone (parcel or segment) of the pixel, 0 = none", units=None),
    "zone_core": VarMeta("zone of the pixel where its 8 neighbours share it (radar core), "
                         "0 = none", units=None),
    "ndvi_filled": VarMeta("gap-filled NDVI", extra={"ancillary_variables": "ndvi_std observed"}),
    "ndvi_std": VarMeta("predicted standard deviation of NDVI"),
    "observed": VarMeta("whether the bin had a clear Sentinel-2 observation", units=None,
                        extra={"flag_values": np.array([0, 1], np.uint8),
                               "flag_meanings": "filled observed"}),
}


def make_time_bounds(grid: TimeGrid) -> xr.DataArray:
    """``time_bnds`` (time, nv): first day of each bin and first day of the next."""
    starts = grid.starts
    ends = starts + pd.Timedelta(days=grid.step_days)
    return xr.DataArray(np.stack([starts.values, ends.values], axis=1), dims=("time", "nv"),
                        coords={"time": starts.values})


def apply_cf(ds: xr.Dataset, grid: TimeGrid | None = None) -> xr.Dataset:
    """``ds`` with the CF attributes and fill-value encodings of its variables.

    Variables not in :data:`VARIABLES` keep their attributes (less ``nodata``).
    ``grid`` adds ``time_bnds``; pass it where the dataset has the whole time axis.
    """
    ds = ds.copy()
    for name, var in ds.data_vars.items():
        attrs = {k: v for k, v in var.attrs.items() if k not in _DROPPED}
        meta = VARIABLES.get(str(name))
        if meta is not None:
            attrs = {k: v for k, v in attrs.items() if k not in _TABLE_KEYS}
            attrs.update(long_name=meta.long_name, **meta.extra)
            for key, value in (("units", meta.units), ("standard_name", meta.standard_name)):
                if value is None:
                    attrs.pop(key, None)
                else:
                    attrs[key] = value
        if {"y", "x"} <= set(var.dims):
            attrs["grid_mapping"] = GRID_MAPPING
        var.attrs = attrs
        var.encoding.pop("_FillValue", None)
        var.encoding["_FillValue"] = np.nan if np.issubdtype(var.dtype, np.floating) else None
    if "time" in ds.coords and grid is not None:
        ds["time_bnds"] = make_time_bounds(grid)
    for axis in ("x", "y", "time"):
        if axis in ds.coords:  # coordinate variables have no missing values (CF 5)
            ds[axis].encoding["_FillValue"] = None
    if "x" in ds.coords:
        ds["x"].attrs.update(standard_name="projection_x_coordinate", long_name="x coordinate "
                             "of projection", units="m", axis="X")
    if "y" in ds.coords:
        ds["y"].attrs.update(standard_name="projection_y_coordinate", long_name="y coordinate "
                             "of projection", units="m", axis="Y")
    if "time" in ds.coords:
        ds["time"].attrs.update(standard_name="time", long_name="start of the bin", axis="T")
        if "time_bnds" in ds:
            ds["time"].attrs["bounds"] = "time_bnds"
    ds.attrs["Conventions"] = CONVENTIONS
    return ds
