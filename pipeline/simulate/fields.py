"""Spatially correlated random fields (FFT filtered white noise)."""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft as sfft


def _radial_frequency(shape: tuple[int, int]) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return np.sqrt(fy * fy + fx * fx)


def _filtered(rng: np.random.Generator, shape: tuple[int, int], gain: np.ndarray) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=shape)
    std = float(field.std())
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def gaussian_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std field smoothed by a Gaussian of ``scale_px`` cells (periodic)."""
    k = _radial_frequency(shape)
    return _filtered(rng, shape, np.exp(-2.0 * (np.pi * scale_px * k) ** 2))


def powerlaw_field(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, outer_px: float
) -> np.ndarray:
    """Zero-mean, unit-std fractal field with power spectrum ~ k^-beta (cloud-like).

    ``outer_px`` is the largest structure size; below ~2 cells the spectrum is cut
    so edges stay a few pixels soft, as cloud edges are at 10 m.
    """
    k = _radial_frequency(shape)
    k0 = 1.0 / outer_px
    amp = (k * k + k0 * k0) ** (-beta / 4.0) * np.exp(-((k / 0.25) ** 2))
    return _filtered(rng, shape, amp)


def lorentzian_field(rng: np.random.Generator, shape: tuple[int, int], corner: float
                     ) -> np.ndarray:
    """Zero-mean, unit-std field with amplitude spectrum 1 / (1 + (k / corner)^2).

    ``corner`` is in cycles per cell. Its autocorrelation falls off more slowly than a
    Gaussian's beyond the first lag, as the speckle of geocoded GRD images does. Drawn
    for every Sentinel-1 scene, so it runs in single precision with a cached spectrum, on
    a grid grown to FFT-friendly sizes and cropped (not periodic, same correlation).
    """
    big = (sfft.next_fast_len(shape[0], real=True), sfft.next_fast_len(shape[1], real=True))
    noise = rng.standard_normal(big, dtype=np.float32)
    field = sfft.irfft2(sfft.rfft2(noise) * _lorentzian(big, corner), s=big)
    field = field[:shape[0], :shape[1]]
    std = float(field.std())
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _lorentzian(shape: tuple[int, int], corner: float) -> np.ndarray:
    return (1.0 / (1.0 + (_radial_frequency(shape) / corner) ** 2)).astype(np.float32)
