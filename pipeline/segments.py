"""Segments: zones for a run without parcels, from the season's observed NDVI.

A tile's cube is read chunk by chunk into a few seasonal composites (median of the
clear NDVI in each sixth of the period; a pixel with none in a part takes its season
median), which are held in memory for the tile (six float32 2-D arrays), cut into objects
by scikit-image's Felzenszwalb graph segmentation, and written back into the cube as
``zone`` / ``zone_core`` (:mod:`pipeline.zones`; the core is the segment less its
border, 8 neighbours). Segments are per tile: a field cut by a tile edge becomes two.

Why Felzenszwalb on six composites: measured on the demo world's truth (4 km² AOI,
2023-04-01..2023-10-31, fields in ``truth/parcels.tif``) with
``benchmarks/bench_segments.py``; the figures are at :data:`CHOICE`. Purity is the
share of a segment's pixels in its majority true field; what matters for context
features is first that a segment does not mix fields (a mixed segment lends one field's
clear pixels to another), second that it is large enough to hold clear pixels on a
partly cloudy date.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from pipeline.blocks import blocks, chunk_edges
from pipeline.zones import erode_zones

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentParams:
    """How segments are cut (scikit-image ``felzenszwalb`` on NDVI composites).

    Attributes:
        periods: seasonal composites (equal parts of the period).
        scale: larger = larger segments (the threshold on NDVI differences grows with it).
        sigma: Gaussian smoothing (pixels) before segmenting.
        min_size: smallest segment in pixels (smaller ones are merged into a neighbour).
    """

    periods: int = 6
    scale: float = 8.0
    sigma: float = 0.3
    min_size: int = 20


#: The parameters a run uses. On the demo world's truth (4 km², 36 dates, 138 fields of
#: 268 pixels on average) the rule "largest mean segment with pixel purity >= 0.9; sizes
#: within 10 % broken by the share of segments >= 90 % pure" picks 6 composites, scale 8,
#: sigma 0.3, min_size 20: purity 0.918, 82 % of segments >= 90 % pure, 59 pixels a
#: segment (686 segments). At the same size squares reach 0.758 (8 x 8) and SLIC 0.81
#: (690 segments, compactness 1) to 0.86 (76 pixels, compactness 0.1); SLIC with as many
#: segments as fields 0.65-0.71. Larger Felzenszwalb segments cost purity fast (min_size
#: 50: 148 pixels, 0.858). Segments need the season: on 10 spring dates (April-May, a
#: 500 m AOI) they reach 0.79 against 0.81 for squares of their size, so segments are
#: opt-in (``--segments``) until the filler shows what they give it.
CHOICE = SegmentParams()


def seasonal_composites(cube: xr.Dataset, periods: int = 3) -> np.ndarray:
    """(periods, y, x) float32 medians of the clear ``ndvi`` in consecutive parts of the
    time axis, read chunk by chunk; gaps take the pixel's season median, else NaN."""
    ndvi = cube["ndvi"]
    t = ndvi.sizes["time"]
    edges = np.linspace(0, t, periods + 1).round().astype(int)
    out = np.full((periods, ndvi.sizes["y"], ndvi.sizes["x"]), np.nan, np.float32)
    chunks = ndvi.chunksizes if ndvi.chunks else {"y": (ndvi.sizes["y"],),
                                                  "x": (ndvi.sizes["x"],)}
    for b in blocks(chunk_edges(chunks["y"]), chunk_edges(chunks["x"])):
        block = ndvi.isel(y=b.rows, x=b.cols).values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            season = np.nanmedian(block, axis=0)
            for p in range(periods):
                part = np.nanmedian(block[edges[p]:edges[p + 1]], axis=0)
                out[p, b.rows, b.cols] = np.where(np.isfinite(part), part, season)
    return out


def make_segments(
    composites: np.ndarray, inside: np.ndarray, params: SegmentParams = CHOICE
) -> np.ndarray:
    """Segment ids (y, x) int32, 1..K inside the AOI (``inside``), 0 outside."""
    from skimage.segmentation import felzenszwalb

    img = np.moveaxis(composites, 0, -1).astype(np.float64)
    fill = np.nanmean(img[inside]) if np.isfinite(img[inside]).any() else 0.0
    img = np.where(np.isfinite(img), img, fill)
    with warnings.catch_warnings():  # "third dimension of 6": the channels are meant
        warnings.filterwarnings("ignore", "Got image with third dimension", RuntimeWarning)
        labels = felzenszwalb(img, scale=params.scale, sigma=params.sigma,
                              min_size=params.min_size, channel_axis=-1).astype(np.int64) + 1
    labels = np.where(inside, labels, 0)
    # consecutive ids 1..K of the segments inside the AOI
    _, ids = np.unique(labels, return_inverse=True)
    ids = ids.reshape(labels.shape).astype(np.int32)
    return ids if labels.min() == 0 else ids + 1


def segment_layers(cube: xr.Dataset, params: SegmentParams = CHOICE) -> xr.Dataset:
    """``zone`` and ``zone_core`` (y, x) int32 of a tile's segments, chunked as the cube."""
    inside = (cube["aoi_mask"].values > 0) if "aoi_mask" in cube else np.ones(
        (cube.sizes["y"], cube.sizes["x"]), bool)
    labels = make_segments(seasonal_composites(cube, params.periods), inside, params)
    core = erode_zones(np.pad(labels, 1, mode="edge"))
    k = int(labels.max())
    log.info("%d segments (mean %.0f pixels)", k, (labels > 0).sum() / max(k, 1))
    attrs = {"n_zones": k, "zones": "segments", "segments": f"felzenszwalb {params}"}
    coords = {"y": cube["y"].values, "x": cube["x"].values}
    ds = xr.Dataset({
        "zone": xr.DataArray(labels, dims=("y", "x"), coords=coords, attrs=attrs),
        "zone_core": xr.DataArray(core, dims=("y", "x"), coords=coords, attrs=attrs),
    })
    chunks = cube["ndvi"].chunksizes
    return ds.chunk({"y": chunks["y"], "x": chunks["x"]})


def segment_purity(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How well segments follow true fields (``truth``: field id per pixel, 0 = none).

    ``purity``: pixel-weighted share of each segment's pixels in its majority field;
    ``pure_share``: share of segments with purity >= 0.9; ``mean_pixels``: mean segment
    size; ``fields_per_segment`` and ``segments_per_field`` (over-segmentation).
    """
    sel = labels > 0
    seg, field = labels[sel].astype(np.int64), truth[sel].astype(np.int64)
    pairs, counts = np.unique(seg * (field.max() + 1) + field, return_counts=True)
    seg_of = pairs // (field.max() + 1)
    field_of = pairs % (field.max() + 1)
    sizes = np.bincount(seg)
    best = np.zeros(sizes.size, np.int64)
    np.maximum.at(best, seg_of, counts)
    ids = np.flatnonzero(sizes)
    purity = best[ids] / sizes[ids]
    real = field_of > 0
    per_field = np.bincount(field_of[real])
    return {
        "segments": float(ids.size),
        "mean_pixels": float(sizes[ids].mean()),
        "purity": float(best[ids].sum() / sizes[ids].sum()),
        "pure_share": float((purity >= 0.9).mean()),
        "segments_per_field": float(per_field[per_field > 0].mean()),
    }
