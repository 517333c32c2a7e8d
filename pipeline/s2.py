"""Sentinel-2 L2A adapter: band names, offsets, the SCL cloud mask and NDVI.

Sensor facts live here as data; ingestion never branches on the sensor.

SCL classes kept as clear: 4 (vegetation), 5 (not vegetated) and 6 (water).
Dropped: 0 no data, 1 saturated/defective, 2 dark area / topographic shadow,
3 cloud shadow, 7 unclassified (mostly cloud edges in growing season),
8/9 cloud medium/high probability, 10 thin cirrus, 11 snow. Keeping 7 would
add observations but lets cloud edges in; haze SCL misses still passes the mask
and biases NDVI low (the demo world simulates exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pystac

#: SCL classes treated as a clear observation.
SCL_CLEAR: tuple[int, ...] = (4, 5, 6)
#: BOA_ADD_OFFSET of processing baseline >= 04.00, in digital numbers.
BOA_ADD_OFFSET_DN = -1000
QUANTIFICATION = 10000.0


@dataclass(frozen=True)
class BandSpec:
    """A canonical band and the asset keys different catalogues use for it.

    Attributes:
        name: canonical name used inside the pipeline.
        asset_keys: candidate STAC asset keys, first match wins.
    """

    name: str
    asset_keys: tuple[str, ...]


@dataclass(frozen=True)
class Sentinel2:
    """Sentinel-2 L2A as the pipeline reads it."""

    red: BandSpec = BandSpec("B04", ("B04_10m", "B04", "red"))
    nir: BandSpec = BandSpec("B08", ("B08_10m", "B08", "nir"))
    scl: BandSpec = BandSpec("SCL", ("SCL_20m", "SCL", "scl"))
    clear_classes: tuple[int, ...] = field(default=SCL_CLEAR)

    @property
    def bands(self) -> tuple[BandSpec, ...]:
        """The bands read for every scene."""
        return (self.red, self.nir, self.scl)


S2 = Sentinel2()


def asset_key(item: pystac.Item, band: BandSpec) -> str:
    """The item's asset key for a canonical band; KeyError names what was looked for."""
    for key in band.asset_keys:
        if key in item.assets:
            return key
    raise KeyError(f"{item.id}: none of the assets {band.asset_keys} for band {band.name}")


def reflectance_scaling(item: pystac.Item, key: str) -> tuple[float, float]:
    """(scale, offset) turning digital numbers of an asset into surface reflectance.

    Order of trust: the asset's ``raster:bands`` scale/offset (CDSE, Earth Search
    declare the baseline offset there); an explicit "offset already applied" flag;
    the processing baseline (>= 04.00 means BOA_ADD_OFFSET -1000). The offset is
    taken from one place only, so it is never subtracted twice.
    """
    asset = item.assets[key]
    bands: Any = asset.extra_fields.get("raster:bands")
    if bands and isinstance(bands, list) and isinstance(bands[0], dict):
        b = bands[0]
        if "scale" in b or "offset" in b:
            return float(b.get("scale", 1.0)), float(b.get("offset", 0.0))
    props = item.properties
    scale = 1.0 / QUANTIFICATION
    if props.get("earthsearch:boa_offset_applied") is True:
        return scale, 0.0
    if "s2:boa_add_offset" in props:
        return scale, float(props["s2:boa_add_offset"]) / QUANTIFICATION
    baseline = str(props.get("s2:processing_baseline", props.get("processing:version", "")))
    try:
        if float(baseline) >= 4.0:
            return scale, BOA_ADD_OFFSET_DN / QUANTIFICATION
    except ValueError:
        pass
    return scale, 0.0


def compute_ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDVI from reflectances; NaN where the sum is not positive or inputs are NaN."""
    red = red.astype(np.float32)
    nir = nir.astype(np.float32)
    total = nir + red
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / total
    ok = (total > 0) & np.isfinite(ndvi)
    return np.where(ok, np.clip(ndvi, -1.0, 1.0), np.float32(np.nan)).astype(np.float32)


def clear_mask(scl: np.ndarray, classes: tuple[int, ...] = SCL_CLEAR) -> np.ndarray:
    """True where the scene classification marks a clear observation."""
    return np.isin(scl, np.asarray(classes, dtype=scl.dtype))
