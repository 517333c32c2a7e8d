"""Per-pixel training series from demo-world cubes (input of ``python -m model train``).

    python benchmarks/demo_series.py --cube OUT1/cube.zarr --cube OUT2/cube.zarr \\
        --landcover CACHE/demo-*/truth/landcover.tif --exclude-y 6180778 6182860 \\
        --n 30000 --seed 0 --npz demo_series.npz

Reads the cubes written by ``python -m pipeline run`` (``ndvi`` with NaN where no clear
observation, ``vv_asc``/``vh_asc``/``vv_desc``/``vh_desc`` in dB, 6-day bins; ``time`` =
bin start) and samples pixels, stratified by the truth land-cover class when
``--landcover`` is given (equal share per class, capped by what a class has), so
rare classes (water, built-up) are not drowned by the fields. Pixels whose y lies in
``--exclude-y`` (plus ``--margin`` metres) are never taken: that is the evaluation
area of ``benchmarks/demo_truth.py``. Land cover is used only to choose pixels; the
series are the pipeline's own observations (training stays self-supervised).

Writes an ``.npz`` with ``ndvi (N, T)``, ``vv (N, T, 2)``, ``vh (N, T, 2)`` (last axis:
ascending, descending), ``start`` (bin start of the first date, ``datetime64[D]``),
``landcover (N,)``, ``x``, ``y`` (N,) and ``classes`` (JSON code -> name).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio

from pipeline.cube import open_cube


def cube_pixels(
    cube_path: Path, exclude_y: tuple[float, float] | None, margin: float
) -> dict[str, np.ndarray]:
    """All AOI pixels of one cube as flat series (outside the excluded y range)."""
    cube = open_cube(cube_path)
    x, y = cube.x.to_numpy(), cube.y.to_numpy()
    xx, yy = np.meshgrid(x, y)
    keep = np.ones(xx.shape, dtype=bool)
    if "aoi_mask" in cube:
        keep &= cube["aoi_mask"].to_numpy().astype(bool)
    if exclude_y is not None:
        lo, hi = exclude_y
        keep &= (yy < lo - margin) | (yy > hi + margin)

    def flat(name: str) -> np.ndarray:
        arr = cube[name].transpose("time", "y", "x").to_numpy().astype(np.float32)
        return arr.reshape(arr.shape[0], -1)[:, keep.ravel()].T

    vv = np.stack([flat("vv_asc"), flat("vv_desc")], axis=-1)
    vh = np.stack([flat("vh_asc"), flat("vh_desc")], axis=-1)
    return {
        "ndvi": flat("ndvi"), "vv": vv, "vh": vh,
        "x": xx[keep], "y": yy[keep],
        "start": np.asarray(cube.time.to_numpy()[0]).astype("datetime64[D]"),
    }


def landcover_at(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Land-cover codes at pixel centres and the code -> name JSON tag."""
    with rasterio.open(path) as src:
        band = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, x, y)
        classes = src.tags().get("classes", "{}")
    return band[np.asarray(rows), np.asarray(cols)].astype(np.int64), classes


def stratified(codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices: equal share per class (leftover quota goes to the larger classes)."""
    uniq = np.unique(codes)
    pools = {c: rng.permutation(np.flatnonzero(codes == c)) for c in uniq}
    quota = dict.fromkeys(uniq, 0)
    left = n
    while left > 0:
        open_ = [c for c in uniq if quota[c] < len(pools[c])]
        if not open_:
            break
        share = max(left // len(open_), 1)
        for c in open_:
            add = min(share, len(pools[c]) - quota[c], left)
            quota[c] += add
            left -= add
    return np.sort(np.concatenate([pools[c][: quota[c]] for c in uniq]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cube", type=Path, action="append", required=True)
    ap.add_argument("--landcover", type=Path, default=None)
    ap.add_argument("--exclude-y", type=float, nargs=2, default=None, metavar=("YMIN", "YMAX"))
    ap.add_argument("--margin", type=float, default=50.0)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--min-clear", type=int, default=4, help="min clear NDVI dates per pixel")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--npz", type=Path, required=True)
    args = ap.parse_args()

    ex = tuple(args.exclude_y) if args.exclude_y is not None else None
    parts = [cube_pixels(p, ex, args.margin) for p in args.cube]
    starts = {str(p["start"]) for p in parts}
    if len(starts) != 1:
        raise SystemExit(f"cubes start on different dates: {sorted(starts)}")
    data = {k: np.concatenate([p[k] for p in parts]) for k in ("ndvi", "vv", "vh", "x", "y")}
    ok = np.isfinite(data["ndvi"]).sum(axis=1) >= args.min_clear
    data = {k: v[ok] for k, v in data.items()}
    if args.landcover is not None:
        codes, classes = landcover_at(args.landcover, data["x"], data["y"])
    else:
        codes, classes = np.zeros(len(data["x"]), dtype=np.int64), "{}"
    rng = np.random.default_rng(args.seed)
    idx = stratified(codes, args.n, rng)
    names = json.loads(classes) if classes else {}
    for c in np.unique(codes[idx]):
        print(f"class {c} {names.get(str(c), '?')}: {int((codes[idx] == c).sum())} of "
              f"{int((codes == c).sum())} pixels")
    args.npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.npz, ndvi=data["ndvi"][idx], vv=data["vv"][idx], vh=data["vh"][idx],
        x=data["x"][idx], y=data["y"][idx], landcover=codes[idx],
        start=np.asarray(parts[0]["start"]), classes=np.asarray(classes),
    )
    print(f"wrote {len(idx)} series x {data['ndvi'].shape[1]} dates to {args.npz}")


if __name__ == "__main__":
    main()
