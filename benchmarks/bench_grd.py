"""Seconds and peak memory of local GRD processing for a 10 km x 10 km AOI.

Uses the real S1B IW GRDH product's metadata (``DATA/s1-grd-sample``; the test
suite's LUT writer supplies calibration and noise files) and a synthetic hilly
DEM, processes VV and VH to gamma0 on a 10 m UTM grid (1000 x 1000 cells) and
prints the wall time per stage, the peak resident memory and a projection for
a season over Lithuania.

    python benchmarks/bench_grd.py --data ../shared/data [--size-km 10] [--radiometry gamma0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pystac
import rasterio
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.grd import GrdOptions, open_grd_product, process_grd_items
from pipeline.ingest import SceneLog
from tests import grd_fixtures

#: Lithuania: 65,300 km²; S1 relative orbits covering it and a 214-day season.
LITHUANIA_KM2 = 65_300.0


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--size-km", type=float, default=10.0)
    ap.add_argument("--radiometry", default="gamma0", choices=("gamma0", "sigma0"))
    ap.add_argument("--speckle", default="none", choices=("none", "boxcar", "lee"))
    args = ap.parse_args()
    grd_fixtures.SAMPLE = (args.data / "s1-grd-sample" / grd_fixtures.SAMPLE.name).resolve()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        safe = grd_fixtures.sample_product(tmp)
        product = open_grd_product(safe)
        gcp = product.gcp.sel(line=8012, pixel=12900)
        lon, lat, h = (float(gcp[v]) for v in ("longitude", "latitude", "height"))
        ex, ey = Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
        half = args.size_km * 500.0
        x0, y0 = np.floor((ex - half) / 10) * 10, np.floor((ey - half) / 10) * 10
        geobox = GeoBox.from_bbox((x0, y0, x0 + 2 * half, y0 + 2 * half), "EPSG:32632",
                                  resolution=10)
        # hilly DEM: 200 m relief with 2 km wavelength, 0.0003 deg (~30 m) steps
        res = 0.0003
        n = int(2 * args.size_km / 100 / res) + 40
        lons = lon - n * res / 2 + res * np.arange(n)
        lats = lat + n * res / 2 - res * np.arange(n)
        hills = h + 100 * np.sin(lons[None, :] * 2 * np.pi / 0.027) * np.cos(
            lats[:, None] * 2 * np.pi / 0.018)
        dem = tmp / "dem.tif"
        with rasterio.open(dem, "w", driver="GTiff", width=n, height=n, count=1,
                           dtype="float32", crs="EPSG:4326",
                           transform=from_origin(lons[0] - res / 2, lats[0] + res / 2, res, res)
                           ) as dst:
            dst.write(hills.astype(np.float32), 1)
        item = pystac.Item(safe.stem, None, None, dt.datetime(2021, 4, 1, tzinfo=dt.UTC), {},
                           collection="sentinel-1-grd")
        item.add_asset("safe_manifest", pystac.Asset(str(safe / "manifest.safe")))
        options = GrdOptions(radiometry=args.radiometry, speckle_filter=args.speckle)
        t0 = time.perf_counter()
        scenes = SceneLog()
        out = process_grd_items([item], geobox, tmp / "cache", dem, options, scenes)
        seconds = time.perf_counter() - t0
        assert out and not scenes.skipped, scenes.skipped
        with rasterio.open(out[0].assets["vv"].href) as src:
            valid = float(np.isfinite(src.read(1)).mean())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cells = geobox.shape[0] * geobox.shape[1]
    km2 = cells * 100 / 1e6
    print(f"AOI {args.size_km:g} km x {args.size_km:g} km ({cells:,} cells at 10 m), "
          f"{args.radiometry}, speckle {args.speckle}: {seconds:.1f} s for VV+VH "
          f"(incl. reading metadata), peak RSS {peak_mb:.0f} MB, {valid:.0%} cells valid")
    per_km2 = seconds / km2
    # A season (Apr-Oct, 214 days): every point of Lithuania is seen by ~4 relative orbits,
    # each every 12 days (S1A alone) -> ~70 acquisitions per point.
    acquisitions = 4 * 214 / 12
    cpu_h = per_km2 * LITHUANIA_KM2 * acquisitions / 3600
    print(f"projection: {per_km2 * 1000:.0f} ms per km² and acquisition; a season over "
          f"Lithuania (~{acquisitions:.0f} acquisitions per point, {LITHUANIA_KM2:,.0f} km²) "
          f"= {cpu_h:,.0f} core-hours, e.g. {cpu_h / 16:,.1f} h on one 16-core VM")


if __name__ == "__main__":
    main()
