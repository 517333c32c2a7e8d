"""Field context on a real Sentinel-2 field: hide part of the field on clear dates, score.

    python benchmarks/context_real.py DATA_DIR [--seeds 0 1 2]

DATA_DIR holds ``fusets_raw_s2_ndvi_field.nc`` and ``fusets_field.geojson`` (a real
CDSE L2A pixel cube of one field, 2019, and the field's boundary). The cube's NDVI is
masked with SCL (4, 5, 6 clear), binned on the 6-day grid from April to October like
a run's cube, and the field's pixels form one zone. For each gap seed, on every date
on which at least 80 % of the field is clear, a straight cloud edge at a random angle
and position hides 20-80 % of the field (the partial cover a cloud edge gives); the
hidden clear values are the truth. Printed: MAE of linear, SF and SF + context on the
hidden cells, and the 90 % coverage of SF and SF + context, per seed and pooled.

``--zones segments``: the same hidden cells, but the zones are what a run without
parcels gets, the product's segments (:mod:`pipeline.segments`) of the whole image
(the field and the land around it), cut from the observations left after hiding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import xarray as xr
from rasterio.features import rasterize
from shapely.geometry import shape
from shapely.ops import transform

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
from pipeline.fill import ModelFiller, cube_doy, fill_block, refiller
from pipeline.s2 import clear_mask
from pipeline.segments import segment_layers
from pipeline.timegrid import TimeGrid

Z90 = 1.6449


def load(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, x, T) binned clear NDVI, (y, x) zone (1 = the field), (T,) bin starts."""
    ds = xr.open_dataset(data / "fusets_raw_s2_ndvi_field.nc")
    red = ds["B04"].values.astype(np.float64)
    nir = ds["B08"].values.astype(np.float64)
    scl = np.nan_to_num(ds["SCL"].values).astype(np.int16)
    ndvi = np.where(clear_mask(scl) & (red + nir > 0), (nir - red) / (nir + red), np.nan)
    grid = TimeGrid.covering("2019-04-01", "2019-10-31")
    idx = grid.bin_index(ds["t"].values)
    t = len(grid.starts)
    binned = np.full((t, *ndvi.shape[1:]), np.nan)
    for b in range(t):
        sel = idx == b
        if sel.any():
            with np.errstate(all="ignore"):
                stack = ndvi[sel]
                cnt = np.isfinite(stack).sum(0)
                binned[b] = np.where(cnt > 0, np.nansum(stack, 0) / np.maximum(cnt, 1), np.nan)
    geom = shape(json.loads((data / "fusets_field.geojson").read_text()))
    from pyproj import CRS, Transformer

    crs = CRS.from_cf(ds["crs"].attrs) if ds["crs"].attrs else CRS.from_epsg(32630)
    to = Transformer.from_crs(4326, crs, always_xy=True).transform
    x, y = ds["x"].values, ds["y"].values
    from rasterio.transform import from_origin

    res = float(x[1] - x[0])
    tf = from_origin(float(x[0]) - res / 2, float(y[0]) + res / 2, res, res)
    zone = rasterize([(transform(to, geom), 1)], out_shape=(len(y), len(x)), transform=tf,
                     fill=0, dtype="int32")
    return np.moveaxis(binned, 0, -1).astype(np.float32), zone, grid.starts.values


def hide(obs: np.ndarray, zone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mask of hidden cells: a straight cloud edge over the field on its clear dates."""
    ny, nx, t = obs.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    field = zone > 0
    out = np.zeros(obs.shape, bool)
    for j in range(t):
        clear = np.isfinite(obs[..., j]) & field
        if clear.sum() < 0.8 * field.sum():
            continue
        for _ in range(20):
            a = rng.uniform(0, 2 * np.pi)
            proj = np.cos(a) * xx + np.sin(a) * yy
            cut = rng.uniform(proj[field].min(), proj[field].max())
            side = (proj > cut) & clear
            if 0.2 <= side.sum() / field.sum() <= 0.8:
                out[..., j] = side
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--zones", choices=("field", "segments"), default="field")
    args = ap.parse_args()
    obs, zone, starts = load(args.data)
    yy, xx = np.mgrid[0:zone.shape[0], 0:zone.shape[1]]
    doy = cube_doy(starts)
    filler = ModelFiller()
    t = obs.shape[-1]
    field = zone > 0
    clear_bins = (np.isfinite(obs) & field[..., None]).sum((0, 1)) >= 0.8 * field.sum()
    print(f"field: {int(field.sum())} px, {t} bins; bins with the field >= 80 % clear: "
          f"{int(clear_bins.sum())}")
    print("| seed | hidden cells | linear MAE | SF MAE | SF+context MAE | context vs SF "
          "| SF 90 % cov. | SF+context 90 % cov. |\n|---|---|---|---|---|---|---|---|")
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("lin", "sf", "ctx", "csf", "cctx")}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        mask = hide(obs, zone, rng)
        seen = np.where(mask, np.nan, obs)
        nan = np.full(seen.shape, np.nan, np.float32)
        mean, std = fill_block(filler, seen, nan, nan, nan, nan, doy=doy)
        zones = zone if args.zones == "field" else segments_of(seen)
        k = int(zones.max())
        sides = zone_sides(zones, xx, -yy, zone_centroids(zones, xx, -yy, k))
        table = zone_table(zones, seen, k, sides)
        refill = refiller(filler, nan, nan, nan, nan, doy=doy)
        cal = calibrate(seen, zones, table, sides).with_filler(
            check_filler(seen, zones, xx, -yy, table.n_pixels, k, refill))
        ctx, ctx_sd = apply_context(mean, std, seen, zones, table, cal,
                                    flat_zones(table) if args.zones == "segments" else None)
        if seed == args.seeds[0] and args.zones == "segments":
            print(f"(seed {seed}: {k} segments of {zones.size / k:.0f} px on average; "
                  f"the field lies in {len(np.unique(zones[field]))} of them)")
        lin = linear(seen.reshape(-1, t)).reshape(seen.shape)
        truth = obs[mask]
        e = {"lin": np.abs(lin[mask] - truth), "sf": np.abs(mean[mask] - truth),
             "ctx": np.abs(ctx[mask] - truth),
             "csf": np.abs(mean[mask] - truth) <= Z90 * std[mask],
             "cctx": np.abs(ctx[mask] - truth) <= Z90 * ctx_sd[mask]}
        for k, v in e.items():
            pooled[k].append(v)
        _row(str(seed), e)
    _row("pooled", {k: np.concatenate(v) for k, v in pooled.items()})


def segments_of(seen: np.ndarray) -> np.ndarray:
    """(y, x) segment ids of the product's segmentation of a (y, x, T) NDVI block."""
    ny, nx, t = seen.shape
    cube = xr.Dataset({"ndvi": (("time", "y", "x"), np.moveaxis(seen, -1, 0))},
                      coords={"time": np.arange(t), "y": -np.arange(ny) * 10.0,
                              "x": np.arange(nx) * 10.0})
    return np.asarray(segment_layers(cube.chunk({"time": -1}))["zone"].values, np.int64)


def _row(label: str, e: dict[str, np.ndarray]) -> None:
    lm, sm, cm = (float(e[k].mean()) for k in ("lin", "sf", "ctx"))
    print(f"| {label} | {e['lin'].size} | {lm:.4f} | {sm:.4f} | {cm:.4f} | "
          f"{100 * (cm / sm - 1):+.1f} % | {e['csf'].mean():.1%} | {e['cctx'].mean():.1%} |")


if __name__ == "__main__":
    main()
