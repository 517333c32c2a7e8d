"""Segments against the demo world's true fields: which method and parameters to use.

    python benchmarks/bench_segments.py --out OUT --cache CACHE_ARCHIVE_DIR

OUT is the ``--out`` folder of a demo run (its cube's clear NDVI is segmented),
CACHE_ARCHIVE_DIR the demo archive folder (``truth/parcels.tif``). Prints one line per
method and setting: number of segments, mean size (pixels), pixel-weighted purity
(share of a segment's pixels in its majority true field; hedges and tracks count as a
field of their own), share of segments at least 90 % pure, and segments per true field.
The run's choice (:data:`pipeline.segments.CHOICE`) is marked with ``*``; squares of a
few sizes are the floor any segmentation must beat.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_truth import cube_bounds, read_truth

from pipeline.cube import open_cube
from pipeline.segments import CHOICE, make_segments, seasonal_composites, segment_purity


def _slic(comp: np.ndarray, inside: np.ndarray, n: int, compactness: float) -> np.ndarray:
    from skimage.segmentation import slic

    img = np.moveaxis(comp, 0, -1).astype(np.float64)
    img = np.where(np.isfinite(img), img, np.nanmean(img))
    lab = slic(img, n_segments=n, compactness=compactness, channel_axis=-1, mask=inside,
               start_label=1)
    return np.where(inside, lab, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()
    cube = open_cube(args.out / "cube.zarr")
    truth = read_truth(args.cache / "truth" / "parcels.tif", cube_bounds(cube), dtype=None)[0][0]
    inside = cube["aoi_mask"].values > 0
    assert truth.shape == inside.shape, (truth.shape, inside.shape)
    n_fields = np.unique(truth[inside & (truth > 0)]).size
    print(f"{inside.sum()} pixels, {cube.sizes['time']} dates, {n_fields} true fields, "
          f"mean field {(inside & (truth > 0)).sum() / n_fields:.0f} pixels")
    results = []
    for periods in (1, 3, 6):
        comp = seasonal_composites(cube, periods)
        for scale in (2.0, 8.0, 16.0):
            for sigma in (0.3, 0.5):
                for min_size in (10, 20, 50):
                    p = replace(CHOICE, periods=periods, scale=scale, sigma=sigma,
                                min_size=min_size)
                    t0 = time.perf_counter()
                    lab = make_segments(comp, inside, p)
                    results.append((f"felzenszwalb periods={periods} scale={scale:g} "
                                    f"sigma={sigma:g} min_size={min_size}"
                                    + (" *" if p == CHOICE else ""),
                                    segment_purity(lab, truth), time.perf_counter() - t0))
        if periods == 6:
            for n in (n_fields, 2 * n_fields, 5 * n_fields):
                for compact in (0.1, 1.0):
                    t0 = time.perf_counter()
                    lab = _slic(comp, inside, n, compact)
                    results.append((f"slic periods=6 n_segments={n} compactness={compact}",
                                    segment_purity(lab, truth), time.perf_counter() - t0))
    rows, cols = np.indices(inside.shape)
    for side in (4, 6, 8, 12, 16):  # the floor: squares that know nothing of the fields
        squares = np.where(inside, (rows // side) * 10_000 + cols // side + 1, 0)
        results.append((f"squares {side} x {side}", segment_purity(squares, truth), 0.0))
    print(f"{'method':58s} {'segs':>5s} {'pixels':>7s} {'purity':>7s} {'>=90%':>6s} "
          f"{'seg/fld':>7s} {'s':>5s}")
    for name, m, secs in results:
        print(f"{name:58s} {m['segments']:5.0f} {m['mean_pixels']:7.0f} {m['purity']:7.3f} "
              f"{m['pure_share']:6.3f} {m['segments_per_field']:7.2f} {secs:5.2f}")


if __name__ == "__main__":
    main()
