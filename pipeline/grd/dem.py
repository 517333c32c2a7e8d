"""Elevation for terrain correction: a local DEM file or Copernicus DEM GLO-30 on EODATA.

Heights are read once per run onto the (padded) run grid with bilinear
resampling. Copernicus DEM heights refer to the EGM2008 geoid while geocoding
needs ellipsoidal heights: ``height_offset_m`` adds the geoid undulation
(about +20 to +24 m over Lithuania; PROJ's geoid grids are not shipped, so it
is a constant per run). A height error dh shifts a pixel by about
dh / tan(incidence) in ground range: 1 m of error is 1.2 to 1.7 m.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject

from pipeline.errors import InputError

log = logging.getLogger(__name__)

#: Where EODATA keeps the Copernicus DEM GLO-30 COG tiles (1 x 1 degree).
EODATA_COPDEM = "auxdata/CopDEM_COG/copernicus-dem-30m"


def copernicus_tile_paths(geobox: GeoBox, eodata: Path) -> list[Path]:
    """Copernicus DEM GLO-30 tiles under an EODATA mount that cover ``geobox``."""
    w, s, e, n = geobox.footprint("EPSG:4326").boundingbox
    out = []
    for lat in range(math.floor(s), math.floor(n) + 1):
        for lon in range(math.floor(w), math.floor(e) + 1):
            ns = f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}_00"
            ew = f"{'E' if lon >= 0 else 'W'}{abs(lon):03d}_00"
            name = f"Copernicus_DSM_COG_10_{ns}_{ew}_DEM"
            out.append(eodata / EODATA_COPDEM / name / f"{name}.tif")
    return out


def read_dem(
    geobox: GeoBox,
    dem: Path | None,
    eodata: Path = Path("/eodata"),
    height_offset_m: float = 0.0,
) -> np.ndarray:
    """Heights (float64, metres, NaN where unknown) of the cells of ``geobox``.

    ``dem`` is a raster in any CRS; without it, the Copernicus DEM tiles on
    the EODATA mount are used (tiles missing there, i.e. open sea, read 0 m).
    InputError when there is no DEM or it does not cover the grid.
    """
    out = np.full(geobox.shape, np.nan, dtype=np.float64)
    if dem is not None:
        sources = [Path(dem)]
        if not sources[0].is_file():
            raise InputError(f"--dem: file not found: {dem}")
    else:
        if not (eodata / EODATA_COPDEM).is_dir():
            raise InputError(
                "--dem: GRD products need a DEM for terrain correction; pass --dem PATH "
                f"(e.g. Copernicus DEM GLO-30) or run where EODATA is mounted at {eodata}"
            )
        sources = copernicus_tile_paths(geobox, eodata)
        missing = [p for p in sources if not p.is_file()]
        if len(missing) == len(sources):
            raise InputError(f"--dem: no Copernicus DEM tile under {eodata} covers the AOI")
        out[:] = 0.0  # sea: tiles that do not exist
        sources = [p for p in sources if p.is_file()]
    assert geobox.crs is not None
    for src_path in sources:
        with rasterio.open(src_path) as src:
            reproject(
                source=rasterio.band(src, 1),
                destination=out,
                dst_transform=geobox.transform,
                dst_crs=geobox.crs.to_wkt(),
                dst_nodata=np.nan,
                resampling=Resampling.bilinear,
                init_dest_nodata=False,
            )
    if np.isnan(out).all():
        raise InputError(f"--dem: {dem} does not cover the AOI")
    if np.isnan(out).any():
        log.warning("DEM leaves %.1f%% of the grid without height: no backscatter there",
                    100.0 * float(np.isnan(out).mean()))
    return out + height_offset_m
