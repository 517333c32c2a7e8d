"""Local Sentinel-1 GRD processing: calibration, noise removal, terrain correction.

Turns GRD products in radar geometry (SAFE folders on ``/eodata``, items of the
CDSE ``sentinel-1-grd`` collection, local files) into calibrated, terrain-
corrected backscatter (gamma0 or sigma0, linear) on the run's grid, so that
ingestion reads them like any calibrated backscatter. Modules: :mod:`.product`
(reading, xarray-sentinel), :mod:`.radiometry` (noise, calibration, border
noise, speckle), :mod:`.geocode` (range-Doppler terrain correction and terrain
flattening, sarsen), :mod:`.dem` (heights), :mod:`.process` (orchestration,
cache, STAC items).
"""

from pipeline.grd.process import (
    GRD_COLLECTIONS,
    S1_PROCESSING,
    GrdOptions,
    grd_options,
    is_grd_product,
    process_grd_items,
    process_grd_product,
)
from pipeline.grd.product import GrdError, GrdProduct, open_grd_product

__all__ = [
    "GRD_COLLECTIONS",
    "S1_PROCESSING",
    "GrdError",
    "GrdOptions",
    "GrdProduct",
    "grd_options",
    "is_grd_product",
    "open_grd_product",
    "process_grd_items",
    "process_grd_product",
]
