"""Cube and filled products against the demo world's ground truth.

    python benchmarks/demo_truth.py --out OUT --cache CACHE_ARCHIVE_DIR

OUT is the ``--out`` folder of a demo run, CACHE_ARCHIVE_DIR the demo archive
folder (the one holding ``catalog.json`` and ``truth/``). Prints:

* acquisition level: MAE of cloud-masked NDVI against the clean NDVI, split
  into pixels with and without a thin cloud that SCL missed, and the share of
  the total absolute error those thin clouds explain;
* bin level: MAE of the cube's NDVI against the mean clean NDVI of the same
  acquisitions, and against the daily-mean clean NDVI of the bin;
* fill: MAE and RMSE of ``ndvi_filled`` on cells with no clear observation,
  against the daily-mean truth of the bin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from rasterio.windows import from_bounds

from pipeline.cube import open_cube
from pipeline.ingest import SceneLog, load_s2_ndvi
from pipeline.sources.stac import StaticCatalogSource
from pipeline.timegrid import TimeGrid


def cube_bounds(cube: xr.Dataset) -> tuple[float, float, float, float]:
    """The cube's outer bounds (pixel centres +- half a 10 m pixel)."""
    return (float(cube.x.min()) - 5, float(cube.y.min()) - 5,
            float(cube.x.max()) + 5, float(cube.y.max()) + 5)


def read_truth(
    path: Path, bounds: tuple[float, float, float, float], dtype: type | None = np.float32
) -> tuple[np.ndarray, list[str]]:
    """Bands of a truth stack cut to the cube bounds (same grid), with descriptions;
    ``dtype=None`` keeps the raster's own type (ids, classes)."""
    with rasterio.open(path) as src:
        win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
        data = src.read(window=win)
        return (data if dtype is None else data.astype(dtype)), list(src.descriptions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()

    cube = open_cube(args.out / "cube.zarr")
    gb_bounds = cube_bounds(cube)
    truth_dir = args.cache / "truth"
    acq, acq_desc = read_truth(truth_dir / "ndvi_acq.tif", gb_bounds)
    thin, _ = read_truth(truth_dir / "thin_cloud_acq.tif", gb_bounds)
    bins_truth, bins_desc = read_truth(truth_dir / "ndvi_bins.tif", gb_bounds)
    acq_days = [
        pd.Timestamp(d).tz_localize(None).normalize()
        if pd.Timestamp(d).tzinfo is None
        else pd.Timestamp(d).tz_convert(None).normalize()
        for d in acq_desc
    ]

    # acquisition level, through the pipeline's own reading code
    from odc.geo.geobox import GeoBox

    geobox = GeoBox.from_bbox(gb_bounds, cube.rio.crs.to_wkt(), resolution=10)
    dates = pd.to_datetime(cube.time.values)
    grid = TimeGrid.covering(dates[0].date(), (dates[-1] + pd.Timedelta(days=5)).date())
    src = StaticCatalogSource(str(args.cache / "catalog.json"))
    from pyproj import Transformer
    from shapely.geometry import box

    t = Transformer.from_crs(cube.rio.crs, 4326, always_xy=True)
    w, s = t.transform(gb_bounds[0], gb_bounds[1])
    e, n = t.transform(gb_bounds[2], gb_bounds[3])
    items = src.search_s2(box(w, s, e, n), grid.start, grid.end)
    obs = load_s2_ndvi(items, geobox, SceneLog()).compute()
    day_of = {d: i for i, d in enumerate(acq_days)}
    err_all, err_thin, err_clean = [], [], []
    clear_truth_stack = np.full(obs.shape, np.nan, np.float32)
    for k, when in enumerate(pd.to_datetime(obs.time.values).normalize()):
        i = day_of.get(when)
        if i is None:
            continue
        o = obs.values[k]
        ok = np.isfinite(o)
        diff = np.abs(o - acq[i])[ok]
        th = thin[i][ok] > 0
        err_all.append(diff)
        err_thin.append(diff[th])
        err_clean.append(diff[~th])
        clear_truth_stack[k] = np.where(ok, acq[i], np.nan)
    all_e, thin_e, clean_e = (np.concatenate(x) for x in (err_all, err_thin, err_clean))
    print("acquisition level (SCL-clear pixels):")
    print(f"  MAE all            {all_e.mean():.4f}  (n={all_e.size})")
    print(f"  MAE no thin cloud  {clean_e.mean():.4f}  (n={clean_e.size})")
    print(
        f"  MAE missed thin    {thin_e.mean():.4f}  (n={thin_e.size}, "
        f"{thin_e.size / all_e.size:.1%} of clear pixels)"
    )
    print(f"  share of absolute error from missed thin clouds: {thin_e.sum() / all_e.sum():.1%}")

    # bin level: the same acquisitions' clean NDVI averaged like the cube
    idx = grid.bin_index(obs.time.values)
    cube_ndvi = cube["ndvi"].values
    ref = np.full(cube_ndvi.shape, np.nan, np.float32)
    for b in range(cube_ndvi.shape[0]):
        sel = idx == b
        if sel.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
                ref[b] = np.nanmean(clear_truth_stack[sel], axis=0)
    ok = np.isfinite(cube_ndvi) & np.isfinite(ref)
    print("bin level:")
    print(f"  MAE vs clean NDVI, same acquisitions {np.abs(cube_ndvi - ref)[ok].mean():.4f}")
    bt = {d[:10]: i for i, d in enumerate(bins_desc)}
    cube_dates = [str(d)[:10] for d in cube.time.values]
    daily = np.stack([bins_truth[bt[d]] for d in cube_dates])
    ok2 = np.isfinite(cube_ndvi) & np.isfinite(daily)
    print(f"  MAE vs daily-mean clean NDVI of bin  {np.abs(cube_ndvi - daily)[ok2].mean():.4f}")
    if "ndvi_filled" in cube:
        filled = cube["ndvi_filled"].values
        gap = ~np.isfinite(cube_ndvi) & np.isfinite(filled) & np.isfinite(daily)
        d = (filled - daily)[gap]
        print(f"fill ({cube['ndvi_filled'].attrs.get('method', '?')}), cells without observation:")
        print(f"  MAE {np.abs(d).mean():.4f}  RMSE {np.sqrt((d**2).mean()):.4f}  (n={d.size})")
        lc_path = truth_dir / "landcover.tif"
        if lc_path.exists():
            lc, _ = read_truth(lc_path, gb_bounds)
            with rasterio.open(lc_path) as src:
                names = json.loads(src.tags().get("classes", "{}"))
            cls = np.broadcast_to(lc[0], filled.shape)[gap]
            print("  by land cover (MAE, share of cells):")
            for code in np.unique(cls):
                sel = cls == code
                name = names.get(str(int(code)), str(int(code)))
                print(f"    {name:16s} {np.abs(d[sel]).mean():.4f}  {sel.mean():6.1%}")
    print(f"evaluated {dt.datetime.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
