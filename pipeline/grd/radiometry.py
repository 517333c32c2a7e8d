"""Radiometry of a GRD image window: thermal noise, calibration, border noise, speckle.

Pure numpy on a window ``(lines, samples)`` of the measurement raster given by
its first line and sample; no file access. Follows the ESA definitions
(S1-RS-MDA-52-7441 for calibration, MPC-0392 "Thermal denoising of Sentinel-1
products" for noise):

    noise      = noiseRangeLut(line, pixel) * noiseAzimuthLut(line, pixel)
    sigma0     = (DN² - noise) / sigmaNought(line, pixel)²
    beta0      = (DN² - noise) / betaNought(line, pixel)²

LUTs are given on sparse (line, pixel) grids and interpolated bilinearly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pipeline.grd.product import Luts

#: Floor of denoised backscatter (linear, -70 dB): noise subtraction can go negative, and
#: ingestion reads values <= 0 as no data.
POWER_FLOOR = 1e-7


def interp_lut(
    lut_lines: np.ndarray,
    lut_pixels: np.ndarray,
    lut: np.ndarray,
    lines: np.ndarray,
    pixels: np.ndarray,
) -> np.ndarray:
    """Bilinear interpolation of a (lines, pixels) LUT onto the grid ``lines`` x ``pixels``.

    Separable: first along pixels for every LUT line, then along lines; values
    beyond the LUT's first/last nodes are held constant.
    """
    along_pixels = np.stack([np.interp(pixels, lut_pixels, row) for row in lut])
    out = np.empty((lines.size, pixels.size), dtype=np.float64)
    for j in range(pixels.size):
        out[:, j] = np.interp(lines, lut_lines, along_pixels[:, j])
    return out


def noise_azimuth_scaling(luts: Luts, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Azimuth noise scaling on the window grid (1 where no block covers a pixel)."""
    out = np.ones((lines.size, pixels.size), dtype=np.float64)
    for block in luts.noise_azimuth:
        rows = (lines >= block.first_line) & (lines <= block.last_line)
        cols = (pixels >= block.first_sample) & (pixels <= block.last_sample)
        if not rows.any() or not cols.any() or block.values.size == 0:
            continue
        if block.values.size == 1:
            profile = np.full(rows.sum(), block.values[0])
        else:
            profile = np.interp(lines[rows], block.lines, block.values)
        out[np.ix_(rows, cols)] = profile[:, None]
    return out


def compute_noise_power(luts: Luts, first_line: int, first_sample: int,
                        shape: tuple[int, int]) -> np.ndarray:
    """Thermal noise power (DN²) on a window."""
    lines = np.arange(first_line, first_line + shape[0], dtype=np.float64)
    pixels = np.arange(first_sample, first_sample + shape[1], dtype=np.float64)
    rng = interp_lut(luts.noise_lines, luts.noise_pixels, luts.noise_range, lines, pixels)
    return rng * noise_azimuth_scaling(luts, lines, pixels)


def compute_calibrated(
    dn: np.ndarray,
    luts: Luts,
    first_line: int,
    first_sample: int,
    lut: str = "sigma",
    denoise: bool = True,
) -> np.ndarray:
    """Calibrated backscatter (linear, float32) of a DN window; NaN where DN is 0.

    ``lut`` is ``"sigma"`` (sigma0, ellipsoid) or ``"beta"`` (beta0, radar brightness).
    Denoised values that fall below :data:`POWER_FLOOR` are set to the floor.
    """
    lines = np.arange(first_line, first_line + dn.shape[0], dtype=np.float64)
    pixels = np.arange(first_sample, first_sample + dn.shape[1], dtype=np.float64)
    table = {"sigma": luts.sigma, "beta": luts.beta}[lut]
    amp = interp_lut(luts.cal_lines, luts.cal_pixels, table, lines, pixels)
    power = dn.astype(np.float64) ** 2
    if denoise:
        power = power - compute_noise_power(luts, first_line, first_sample, dn.shape)
    out = np.maximum(power / amp**2, POWER_FLOOR)
    out[dn == 0] = np.nan
    return out.astype(np.float32)


def _edge_run(bad: np.ndarray) -> np.ndarray:
    """Cells of the contiguous run of ``bad`` starting at index 0 along axis 1."""
    return np.logical_and.accumulate(bad, axis=1)


def compute_border_mask(
    dn: np.ndarray,
    noise: np.ndarray,
    first_line: int,
    first_sample: int,
    image_shape: tuple[int, int],
    search_px: int = 1000,
    margin_px: int = 2,
) -> np.ndarray:
    """True where a window pixel is border noise (or no data) and must be masked.

    GRD products carry a strip of noise along the near and far range edges and
    at the first and last lines, where the image holds no echo. A pixel is
    border noise when it lies within ``search_px`` of an image edge and belongs
    to the run of pixels, contiguous from that edge, whose power does not exceed
    the thermal noise (DN² <= noise, DN = 0 included); the run grows by
    ``margin_px`` pixels inward. Pixels with DN = 0 are always masked. The
    window must include the edge whenever it comes within ``search_px`` of it
    (see :func:`border_window`).
    """
    bad = dn.astype(np.float64) ** 2 <= noise
    mask = dn == 0
    n_lines, n_samples = image_shape
    h, w = dn.shape
    run = np.zeros_like(mask)
    lim_c, lim_r = min(search_px, w), min(search_px, h)
    if first_sample == 0:  # near range edge inside the window
        run[:, :lim_c] |= _edge_run(bad[:, :lim_c])
    if first_sample + w == n_samples:  # far range edge
        run[:, w - lim_c:] |= _edge_run(bad[:, ::-1][:, :lim_c])[:, ::-1]
    if first_line == 0:  # first lines
        run[:lim_r, :] |= _edge_run(bad[:lim_r, :].T).T
    if first_line + h == n_lines:  # last lines
        run[h - lim_r:, :] |= _edge_run(bad[::-1][:lim_r, :].T).T[::-1]
    if margin_px > 0 and run.any():
        run = ndimage.binary_dilation(run, iterations=margin_px)
    return mask | run


def border_window(
    rows: tuple[int, int], cols: tuple[int, int], image_shape: tuple[int, int], search_px: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Grow a window ``(row0, row1), (col0, col1)`` to any image edge within ``search_px``."""
    n_lines, n_samples = image_shape
    r0, r1 = rows
    c0, c1 = cols
    r0 = 0 if r0 <= search_px else r0
    c0 = 0 if c0 <= search_px else c0
    r1 = n_lines if n_lines - r1 <= search_px else r1
    c1 = n_samples if n_samples - c1 <= search_px else c1
    return (r0, r1), (c0, c1)


def _nan_mean(data: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    valid = np.isfinite(data)
    filled = np.where(valid, data, 0.0)
    weight = ndimage.uniform_filter(valid.astype(np.float64), size, mode="nearest")
    total = ndimage.uniform_filter(filled.astype(np.float64), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight, weight


def filter_speckle(data: np.ndarray, method: str, size: int, looks: float = 4.4) -> np.ndarray:
    """Speckle filter of linear power in radar geometry; NaN stays NaN.

    ``boxcar``: mean over ``size`` x ``size`` pixels (multilooking at full
    sampling). ``lee``: the Lee (1980) minimum mean square error filter with
    the product's equivalent number of looks ``looks`` (IW GRDH: 4.4).
    ``none`` returns the data unchanged.
    """
    if method == "none" or size <= 1:
        return data
    mean, weight = _nan_mean(data, size)
    if method == "boxcar":
        out = mean
    elif method == "lee":
        sq, _ = _nan_mean(data.astype(np.float64) ** 2, size)
        var = np.maximum(sq - mean**2, 0.0)
        noise_var = mean**2 / looks
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.clip((var - noise_var) / var, 0.0, 1.0)
        k = np.where(var > 0, k, 0.0)
        out = mean + k * (data - mean)
    else:
        raise ValueError(f"speckle filter {method!r}: use none, boxcar or lee")
    out = np.where(np.isfinite(data) & (weight > 0), out, np.nan)
    return out.astype(np.float32)
