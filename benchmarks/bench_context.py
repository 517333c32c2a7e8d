"""Field context against the demo world's truth: SF + context vs SF vs linear.

    python benchmarks/bench_context.py --out OUT --cache ARCHIVE_DIR [--zones truth|cube]

OUT is the ``--out`` folder of a demo run (its cube's observations are filled again
with the shipped SF, alone and with the context), ARCHIVE_DIR the demo archive
(``catalog.json`` and ``truth/``). Zones are the world's true parcels
(``truth/parcels.tif``, default) or the run's own ``zone`` variable (``--zones cube``:
the parcels or segments the run used). Scored on the cells inside the AOI without a
clear observation, against the daily-mean clean NDVI of the bin; printed per land
cover, per gap length, and per clear share of the cell's zone on that date (the
context acts only where part of the zone is clear), with the 90 % interval coverage
of SF and SF + context.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_truth import cube_bounds, read_truth

from pipeline.baselines import linear
from pipeline.context import (
    apply_context,
    calibrate,
    check_filler,
    flat_zones,
    zone_centroids,
    zone_sides,
    zone_table,
)
from pipeline.cube import open_cube
from pipeline.fill import S1_VARS, ModelFiller, cube_doy, fill_block, refiller, s1_pixels

Z90 = 1.6449
GAP_BUCKETS = ((1, 1, "6 d"), (2, 3, "12-18 d"), (4, 5, "24-30 d"), (6, 10, "36-60 d"),
               (11, 10**6, ">60 d"))
SHARE_BUCKETS = ((0.0, 0.0, "0 % (zone all cloudy)"), (1e-9, 0.1, "<10 %"),
                 (0.1, 0.9, "10-90 %"), (0.9, 1.0, ">90 %"))


def truth_for(cube: xr.Dataset, truth: Path
              ) -> tuple[tuple[float, float, float, float], np.ndarray, np.ndarray,
                         dict[int, str]]:
    """The cube's bounds and, cut to them, the truth the cube is scored against: the
    bins' daily-mean clean NDVI on the cube's dates (T, y, x), the land cover (y, x) and
    the land cover's class names."""
    bounds = cube_bounds(cube)
    bins, desc = read_truth(truth / "ndvi_bins.tif", bounds, dtype=None)
    lc = read_truth(truth / "landcover.tif", bounds, dtype=None)[0][0]
    with rasterio.open(truth / "landcover.tif") as src:
        names = {int(k): v for k, v in json.loads(src.tags().get("classes", "{}")).items()}
    by_date = {d[:10]: i for i, d in enumerate(desc)}
    ref = np.stack([bins[by_date[str(d)[:10]]] for d in cube.time.values]).astype(np.float32)
    return bounds, ref, lc, names


def gap_length(missing: np.ndarray) -> np.ndarray:
    """Length in bins of the run of missing bins each cell belongs to (0 where observed)."""
    n, t = missing.shape
    out = np.zeros((n, t), np.int32)
    run = np.zeros(n, np.int32)
    start = np.zeros(n, np.int32)
    for j in range(t + 1):
        m = missing[:, j] if j < t else np.zeros(n, bool)
        ended = (~m) & (run > 0)
        for i in np.nonzero(ended)[0]:
            out[i, start[i]:j] = run[i]
        start = np.where(m & (run == 0), j, start)
        run = np.where(m, run + 1, 0)
    return out


@dataclass(frozen=True)
class PixelTruth:
    """A demo run's pixels inside the AOI with a clear observation, as the filler sees
    them, and the truth they are scored against.

    Attributes:
        obs: (P, T) float32 clear NDVI (NaN = none).
        vv, vh: (P, T, 2) float32 Sentinel-1 dB (ascending, descending).
        doy: (T,) day of year of the bins.
        ref: (P, T) the bins' daily-mean clean NDVI.
        cover: (P,) land-cover code; ``names`` its class names.
    """

    obs: np.ndarray
    vv: np.ndarray
    vh: np.ndarray
    doy: np.ndarray | None
    ref: np.ndarray
    cover: np.ndarray
    names: dict[int, str]


def pixel_truth(out: Path, cache: Path) -> PixelTruth:
    """:class:`PixelTruth` of the run in ``out`` (its ``cube.zarr``) and the demo archive
    ``cache``."""
    cube = open_cube(out / "cube.zarr")
    _, ref, lc, names = truth_for(cube, cache / "truth")
    t = ref.shape[0]
    inside = (cube["aoi_mask"].values > 0).reshape(-1)
    ndvi = np.moveaxis(cube["ndvi"].values, 0, -1).reshape(-1, t)
    rows = inside & np.isfinite(ndvi).any(axis=1)
    vv, vh = s1_pixels(*(np.moveaxis(cube[v].values, 0, -1).reshape(-1, t)[rows]
                         for pair in S1_VARS for v in pair))
    return PixelTruth(ndvi[rows].astype(np.float32), vv, vh, cube_doy(cube["time"].values),
                      np.moveaxis(ref, 0, -1).reshape(-1, t)[rows], lc.reshape(-1)[rows], names)


def cover_and_gap_cells(cell: np.ndarray, cls: np.ndarray, names: dict[int, str],
                        glen: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The (label, cells) rows the demo-truth benchmarks print: all ``cell``, each land
    cover of ``cls`` (names from ``names``), each gap-length bucket of ``glen``; empty
    rows left out."""
    rows = [("all", cell)]
    rows += [(names.get(int(code), str(int(code))), cell & (cls == code))
             for code in np.unique(cls[cell])]
    rows += [(label, cell & (glen >= lo) & (glen <= hi)) for lo, hi, label in GAP_BUCKETS]
    return [(label, sel) for label, sel in rows if sel.any()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--zones", choices=("truth", "cube"), default="truth")
    args = ap.parse_args()

    cube = open_cube(args.out / "cube.zarr")
    truth = args.cache / "truth"
    bounds, ref, lc, names = truth_for(cube, truth)
    if args.zones == "truth":
        zone = read_truth(truth / "parcels.tif", bounds, dtype=None)[0][0].astype(np.int64)
    else:
        zone = cube["zone"].values.astype(np.int64)
    inside = cube["aoi_mask"].values > 0 if "aoi_mask" in cube else np.ones(zone.shape, bool)
    zone = np.where(inside, zone, 0)
    ids, zone = np.unique(zone, return_inverse=True)
    if ids[0] != 0:  # keep 0 = no zone
        zone = zone + 1
    zone = zone.reshape(inside.shape)
    n_zones = int(zone.max())

    # (y, x, T) as the fill stage sees a block
    obs = np.moveaxis(cube["ndvi"].values, 0, -1)
    ref = np.moveaxis(ref, 0, -1)
    obs = np.where(inside[..., None], obs, np.nan)
    # SF alone, whatever the run did (its own fill may already hold a context)
    s1 = [np.moveaxis(cube[v].values, 0, -1) for pair in S1_VARS for v in pair]
    sf, sd = fill_block(ModelFiller(), obs, *s1, inside=inside,
                        doy=cube_doy(cube["time"].values))
    xx = cube["x"].values[None, :]
    yy = cube["y"].values[:, None]
    sides = zone_sides(zone, xx, yy, zone_centroids(zone, xx, yy, n_zones))
    table = zone_table(zone, obs, n_zones, sides)
    # the product's calibration: the context's errors and the filler's check on this cube
    refill = refiller(ModelFiller(), *s1, doy=cube_doy(cube["time"].values))
    cal = calibrate(obs, zone, table, sides).with_filler(
        check_filler(obs, zone, xx, yy, table.n_pixels, n_zones, refill))
    # segments, as the run's fill treats them: no context for a pixel without a season
    # from a zone with one (parcels and the world's true fields: every pixel takes it)
    segments = args.zones == "cube" and cube["zone"].attrs.get("zones") == "segments"
    ctx, ctx_sd = apply_context(sf, sd, obs, zone, table, cal,
                                flat_zones(table) if segments else None)
    t = obs.shape[-1]
    lin = linear(obs.reshape(-1, t)).reshape(obs.shape)

    cell = (~np.isfinite(obs)) & inside[..., None] & np.isfinite(sf) & np.isfinite(ref)
    share = table.clear_share[zone]
    share = np.where(zone[..., None] > 0, share, np.nan)
    glen = gap_length(~np.isfinite(obs).reshape(-1, t)).reshape(obs.shape)
    cls = np.broadcast_to(lc[..., None], obs.shape)
    e = {k: np.abs(v - ref) for k, v in (("linear", lin), ("SF", sf), ("SF+context", ctx))}
    cov_sf = np.abs(sf - ref) <= Z90 * sd
    cov_ctx = np.abs(ctx - ref) <= Z90 * ctx_sd

    def row(label: str, sel: np.ndarray) -> None:
        sel = sel & cell
        n = int(sel.sum())
        if n == 0:
            return
        lm, sm, cm = (float(e[k][sel].mean()) for k in ("linear", "SF", "SF+context"))
        print(f"| {label} | {n} | {lm:.4f} | {sm:.4f} | {cm:.4f} | {100 * (cm / sm - 1):+.1f} % "
              f"| {cov_sf[sel].mean():.1%} | {cov_ctx[sel].mean():.1%} |")

    head = ("| cells | n | linear MAE | SF MAE | SF+context MAE | context vs SF "
            "| SF 90 % cov. | SF+context 90 % cov. |\n|---|---|---|---|---|---|---|---|")
    print(f"zones: {args.zones} ({n_zones} zones), "
          f"cells without a clear observation: {int(cell.sum())}")
    print("\nall and by clear share of the cell's zone on its date\n" + head)
    row("all", np.ones_like(cell))
    row("no zone", np.broadcast_to(zone[..., None] == 0, cell.shape))
    for lo, hi, label in SHARE_BUCKETS:
        s = np.nan_to_num(share, nan=-1.0)
        row(f"zone clear {label}", (s >= lo) & (s <= hi) if hi > 0 else s == 0)
    partly = (np.nan_to_num(share, nan=-1.0) >= 0.1) & (np.nan_to_num(share, nan=-1.0) <= 0.9)
    print("\nby land cover, all cells | partly clear zone (10-90 %)\n" + head)
    for code in np.unique(cls[cell]):
        name = names.get(int(code), str(int(code)))
        row(name, cls == code)
        row(f"{name}, partly clear", (cls == code) & partly)
    print("\nby gap length\n" + head)
    for lo, hi, label in GAP_BUCKETS:
        row(label, (glen >= lo) & (glen <= hi))
        row(f"{label}, partly clear", (glen >= lo) & (glen <= hi) & partly)


if __name__ == "__main__":
    main()
