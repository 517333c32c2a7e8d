"""Range-Doppler terrain correction of a GRD product onto a map grid, with sarsen.

Backward geocoding: every cell of the (padded) output grid, lifted to its DEM
height and to Earth-centred coordinates, is solved for the zero-Doppler time on
the product's orbit (:func:`sarsen.geocoding.backward_geocode`, Newton on the
polynomial orbit fitted to the annotation's state vectors). The slant range of
that time gives, through the annotation's slant-to-ground-range polynomials
(:func:`xarray_sentinel.slant_range_time_to_ground_range`), the GRD pixel;
the zero-Doppler time gives the GRD line. Calibrated backscatter is then
sampled there (bilinear). No precise orbit file is needed: the annotation's
state vectors give geolocation well within a 10 m pixel (tested on the real
product's geolocation grid).

Terrain flattening (gamma0, Small 2011) uses sarsen too: each DEM facet's
area projected perpendicular to the look direction
(:func:`sarsen.radiometry.compute_gamma_area`) is summed into a coarse radar
grid (``grouping`` GRD pixels per bin, bilinear weights,
:func:`sarsen.radiometry.gamma_weights_bilinear`) and normalised by the bin's
beta0 reference area: gamma0 = beta0 / (sum of projected area / beta0 area).
Facets beyond the padded grid do not contribute (pad the grid by a few bins).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor sarsen uses)
import xarray as xr
from odc.geo.geobox import GeoBox
from sarsen import geocoding, radiometry, scene
from sarsen.orbit import OrbitPolyfitInterpolator
from sarsen.sentinel1 import azimuth_slant_range_grid
from scipy import ndimage

from pipeline.grd.product import GrdProduct

log = logging.getLogger(__name__)

SPEED_OF_LIGHT = 299_792_458.0
ONE_SECOND = np.timedelta64(1_000_000_000, "ns")


@dataclass(frozen=True)
class RadarGeometry:
    """What geocoding needs from a product's annotation.

    Attributes:
        orbit: polynomial orbit fitted to the annotation's state vectors.
        coordinate_conversion: slant/ground range polynomials along the track.
        first_line_time: zero-Doppler time of image line 0.
        azimuth_interval_s: time between lines.
        range_spacing_m: ground range pixel spacing.
        shape: (lines, samples) of the image.
        image_attrs: the annotation's image facts (for sarsen's radar grid).
    """

    orbit: OrbitPolyfitInterpolator
    coordinate_conversion: xr.Dataset
    first_line_time: np.datetime64
    azimuth_interval_s: float
    range_spacing_m: float
    shape: tuple[int, int]
    image_attrs: dict[str, Any]


def make_radar_geometry(product: GrdProduct) -> RadarGeometry:
    """The radar geometry of a product (reads orbit, timing and coordinate conversion)."""
    img = product.image
    return RadarGeometry(
        orbit=OrbitPolyfitInterpolator.from_position(product.orbit["position"]),
        coordinate_conversion=product.coordinate_conversion,
        first_line_time=np.datetime64(img["product_first_line_utc_time"], "ns"),
        azimuth_interval_s=float(img["azimuth_time_interval"]),
        range_spacing_m=float(img["range_pixel_spacing"]),
        shape=(int(img["number_of_lines"]), int(img["number_of_samples"])),
        image_attrs=dict(img),
    )


def make_dem_ecef(heights: np.ndarray, geobox: GeoBox) -> xr.DataArray:
    """Earth-centred coordinates (axis, y, x) of the cells of ``geobox`` at ``heights``.

    ``heights`` are ellipsoidal heights (metres) of the cell centres.
    """
    coords = geobox.coordinates
    dem = xr.DataArray(
        heights.astype(np.float64),
        dims=("y", "x"),
        coords={"y": coords["y"].values, "x": coords["x"].values},
        name="dem",
    )
    assert geobox.crs is not None
    return scene.convert_to_dem_ecef(dem, source_crs=geobox.crs.to_wkt())


def compute_radar_coordinates(points_ecef: xr.DataArray, geom: RadarGeometry) -> xr.Dataset:
    """Zero-Doppler time, slant range, GRD line and pixel of Earth-centred points.

    ``points_ecef`` has a dimension ``axis`` (x, y, z in metres, EPSG:4978) and
    any others. Returns ``azimuth_time``, ``slant_range_time``, ``line``,
    ``pixel`` (fractional image coordinates, pixel centres at integers) and
    ``direction`` (unit vector from the sensor to the point).
    """
    if "axis" not in points_ecef.coords:
        points_ecef = points_ecef.assign_coords(axis=np.arange(3))
    acq = geocoding.backward_geocode(points_ecef, geom.orbit, 0.0)
    slant_range = np.sqrt((acq["dem_distance"] ** 2).sum("axis"))
    slant_range_time = 2.0 / SPEED_OF_LIGHT * slant_range
    ground_range = xr.apply_ufunc(
        compute_ground_range,
        acq["azimuth_time"],
        slant_range,
        kwargs={"conversion": geom.coordinate_conversion},
    )
    line = (acq["azimuth_time"] - geom.first_line_time) / ONE_SECOND / geom.azimuth_interval_s
    pixel = ground_range / geom.range_spacing_m
    return xr.Dataset(
        {
            "azimuth_time": acq["azimuth_time"],
            "slant_range_time": slant_range_time,
            "line": line,
            "pixel": pixel,
            "direction": acq["dem_distance"] / slant_range,
        }
    )


def compute_ground_range(
    azimuth_time: np.ndarray, slant_range: np.ndarray, conversion: xr.Dataset
) -> np.ndarray:
    """Ground range (m) of slant ranges (m) by the coordinate-conversion record nearest in time.

    The IPF applies each record to the lines nearest to it: interpolating the
    polynomial coefficients between records (as
    :func:`xarray_sentinel.slant_range_time_to_ground_range` does) misplaces
    the real product's geolocation grid points by up to 1.5 pixels, the
    nearest record by 0.01 pixel.
    """
    times = conversion["azimuth_time"].values
    idx = np.clip(np.searchsorted(times, azimuth_time), 1, times.size - 1)
    before = times[idx - 1]
    nearest = np.where(azimuth_time - before < times[idx] - azimuth_time, idx - 1, idx)
    coef = conversion["srgrCoefficients"].transpose("azimuth_time", "degree").values
    degree = conversion["degree"].values
    x = slant_range - conversion["sr0"].values[nearest]
    out = np.zeros_like(x, dtype=np.float64)
    for j in np.argsort(degree)[::-1]:  # Horner, highest degree first
        out = out * x + coef[nearest, j]
    return out


def compute_area_ratio(
    dem_ecef: xr.DataArray, radar: xr.Dataset, geom: RadarGeometry, grouping: int
) -> np.ndarray:
    """Terrain-flattening normaliser per cell: projected facet area / beta0 reference area.

    gamma0 = beta0 / ratio. On flat ground the ratio is ``1 / tan(incidence)``.
    """
    gamma_area = radiometry.compute_gamma_area(dem_ecef, radar["direction"])
    coords = xr.Dataset(
        {
            "azimuth_time": radar["azimuth_time"],
            "slant_range_time": radar["slant_range_time"],
            "gamma_area": gamma_area,
        }
    )
    # The beta0 reference area of a bin needs the true ground length of a line; the
    # annotation's azimuthPixelSpacing is nominal (4.5 % short on the real sample).
    attrs = dict(geom.image_attrs)
    attrs["azimuth_pixel_spacing"] = measure_azimuth_spacing(radar)
    params = azimuth_slant_range_grid(attrs, (float(grouping), float(grouping)))
    ratio = radiometry.gamma_weights_bilinear(coords, **params)
    return np.asarray(ratio.transpose("y", "x").values, dtype=np.float64)


def measure_azimuth_spacing(radar: xr.Dataset) -> float:
    """Ground distance (m) between two image lines, from the geocoded line numbers of a grid."""
    step_x = float(abs(radar["x"].values[1] - radar["x"].values[0]))
    step_y = float(abs(radar["y"].values[1] - radar["y"].values[0]))
    dy, dx = np.gradient(radar["line"].transpose("y", "x").values, step_y, step_x)
    return float(1.0 / np.nanmedian(np.hypot(dx, dy)))


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at fractional (rows, cols); NaN-aware, NaN outside."""
    valid = np.isfinite(image)
    filled = np.where(valid, image, 0.0).astype(np.float64)
    coords = np.stack([rows.ravel(), cols.ravel()])
    total = ndimage.map_coordinates(filled, coords, order=1, mode="constant", cval=0.0)
    weight = ndimage.map_coordinates(valid.astype(np.float64), coords, order=1,
                                     mode="constant", cval=0.0)
    inside = (
        (coords[0] >= -0.5) & (coords[0] <= image.shape[0] - 0.5)
        & (coords[1] >= -0.5) & (coords[1] <= image.shape[1] - 0.5)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(inside & (weight > 0.5), total / weight, np.nan)
    return out.reshape(rows.shape)
