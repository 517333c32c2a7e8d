"""Surfaces without a season: SF, SF with the linear fill of flat pixels, and linear.

    python benchmarks/demo_flat_fill.py --out OUT --cache ARCHIVE_DIR [--amplitude A ...]

OUT is the ``--out`` folder of a demo run (any world seed: ``run --seed``), ARCHIVE_DIR
its demo archive. The cube's observations are filled with the shipped SF network
everywhere (``ModelFiller(flat_amplitude=0)``), with the product's filler (pixels
whose clear observations show no season filled by linear interpolation,
:func:`pipeline.baselines.flat_pixels`; one column per ``--amplitude``, default the
product's :data:`pipeline.baselines.FLAT_AMPLITUDE`) and by linear interpolation alone, and
scored on the cells inside the AOI without a clear observation against the bin's
daily-mean clean NDVI, per land cover and gap length. Printed with the share of
pixels the rule fills linearly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_context import cover_and_gap_cells, gap_length, pixel_truth

from pipeline.baselines import FLAT_AMPLITUDE, flat_pixels, linear
from pipeline.fill import ModelFiller


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--amplitude", type=float, nargs="+", default=[FLAT_AMPLITUDE])
    args = ap.parse_args()

    px = pixel_truth(args.out, args.cache)
    obs, vv, vh, doy = px.obs, px.vv, px.vh, px.doy
    fills = {"SF": ModelFiller(flat_amplitude=0.0).fill(obs, vv, vh, doy=doy)[0]}
    for a in args.amplitude:
        fills[f"SF, flat < {a:g} linear"] = ModelFiller(flat_amplitude=a).fill(
            obs, vv, vh, doy=doy)[0]
    fills["linear"] = linear(obs)
    r = px.ref
    cell = ~np.isfinite(obs) & np.isfinite(r)
    cls = np.broadcast_to(px.cover[:, None], obs.shape)
    glen = gap_length(~np.isfinite(obs))
    err = {k: np.abs(v - r) for k, v in fills.items()}
    shares = ", ".join(f"{flat_pixels(obs, a).mean():.1%} of the pixels flat at {a:g}"
                       for a in args.amplitude)
    print(f"{int(cell.sum())} cells without a clear observation, {len(obs)} pixels; "
          f"{shares}")
    keys = list(fills)
    print("| cells | n | " + " | ".join(keys) + " | rule vs SF |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    for label, sel in cover_and_gap_cells(cell, cls, px.names, glen):
        m = [float(err[k][sel].mean()) for k in keys]
        rel = " / ".join(f"{100 * (v / m[0] - 1):+.1f} %" for v in m[1:-1])
        print(f"| {label} | {int(sel.sum())} | " + " | ".join(f"{v:.4f}" for v in m)
              + f" | {rel} |")


if __name__ == "__main__":
    main()
