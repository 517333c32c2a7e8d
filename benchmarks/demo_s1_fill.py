"""Where per-pixel radar helps the filler: SF with and without Sentinel-1 on the demo truth.

    python benchmarks/demo_s1_fill.py --out OUT --cache ARCHIVE_DIR

OUT is the ``--out`` folder of a demo run, ARCHIVE_DIR the demo archive. The cube's
pixels are filled twice with the shipped SF weights, once with the per-pixel VV/VH
of the cube (the network's radar branch on) and once without (the shipped default,
card ``inference.s1``), and scored on the cells without a clear observation against
the daily-mean clean NDVI of the bin, per land cover and gap length.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_context import GAP_BUCKETS, gap_length, truth_for

from pipeline.cube import open_cube
from pipeline.fill import S1_VARS, cube_doy, shipped_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()
    from model import load_model

    cube = open_cube(args.out / "cube.zarr")
    _, ref, lc, names = truth_for(cube, args.cache / "truth")
    t = ref.shape[0]
    inside = (cube["aoi_mask"].values > 0).reshape(-1)
    ndvi = np.moveaxis(cube["ndvi"].values, 0, -1).reshape(-1, t)
    rows = inside & np.isfinite(ndvi).any(axis=1)
    vv = np.stack([np.moveaxis(cube[v].values, 0, -1).reshape(-1, t)[rows] for v in S1_VARS[0]],
                  axis=-1)
    vh = np.stack([np.moveaxis(cube[v].values, 0, -1).reshape(-1, t)[rows] for v in S1_VARS[1]],
                  axis=-1)
    doy = cube_doy(cube["time"].values)
    model = load_model(shipped_weights())
    fills = {}
    for label, use in (("without S1", False), ("with S1", True)):
        model.use_s1 = use
        mean, _ = model.predict(ndvi[rows], vv, vh, doy=doy)
        fills[label] = np.asarray(mean)
    obs = ndvi[rows]
    r = np.moveaxis(ref, 0, -1).reshape(-1, t)[rows]
    cell = ~np.isfinite(obs) & np.isfinite(r)
    cls = np.broadcast_to(lc.reshape(-1)[rows][:, None], obs.shape)
    glen = gap_length(~np.isfinite(obs))
    err = {k: np.abs(v - r) for k, v in fills.items()}
    print(f"{int(cell.sum())} cells without a clear observation, {int(rows.sum())} pixels")
    print("| cells | n | SF without S1 | SF with S1 | with vs without |\n|---|---|---|---|---|")

    def row(label: str, sel: np.ndarray) -> None:
        sel = sel & cell
        if not sel.any():
            return
        a, b = float(err["without S1"][sel].mean()), float(err["with S1"][sel].mean())
        print(f"| {label} | {int(sel.sum())} | {a:.4f} | {b:.4f} | {100 * (b / a - 1):+.1f} % |")

    row("all", np.ones_like(cell))
    for code in np.unique(cls[cell]):
        row(names.get(int(code), str(int(code))), cls == code)
    for lo, hi, label in GAP_BUCKETS:
        row(label, (glen >= lo) & (glen <= hi))


if __name__ == "__main__":
    main()
