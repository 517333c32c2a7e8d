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

from bench_context import cover_and_gap_cells, gap_length, pixel_truth

from pipeline.fill import shipped_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()
    from model import load_model

    px = pixel_truth(args.out, args.cache)
    model = load_model(shipped_weights())
    fills = {}
    for label, use in (("without S1", False), ("with S1", True)):
        model.use_s1 = use
        mean, _ = model.predict(px.obs, px.vv, px.vh, doy=px.doy)
        fills[label] = np.asarray(mean)
    obs, r = px.obs, px.ref
    cell = ~np.isfinite(obs) & np.isfinite(r)
    cls = np.broadcast_to(px.cover[:, None], obs.shape)
    glen = gap_length(~np.isfinite(obs))
    err = {k: np.abs(v - r) for k, v in fills.items()}
    print(f"{int(cell.sum())} cells without a clear observation, {len(obs)} pixels")
    print("| cells | n | SF without S1 | SF with S1 | with vs without |\n|---|---|---|---|---|")
    for label, sel in cover_and_gap_cells(cell, cls, px.names, glen):
        a, b = float(err["without S1"][sel].mean()), float(err["with S1"][sel].mean())
        print(f"| {label} | {int(sel.sum())} | {a:.4f} | {b:.4f} | {100 * (b / a - 1):+.1f} % |")


if __name__ == "__main__":
    main()
