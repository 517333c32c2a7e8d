"""Write the simulated archive: COGs, the static STAC catalog and the ground truth.

The whole archive is built in a hidden sibling folder and renamed into place, so a
crash never leaves a folder with a ``catalog.json`` that is incomplete.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from odc.geo.geobox import GeoBox

from pipeline.simulate import calibration as cal
from pipeline.simulate.catalog import S1_COLLECTION, S2_COLLECTION, s1_item, s2_item, write_catalog
from pipeline.simulate.landscape import Landscape, make_landscape, parcel_polygons
from pipeline.simulate.optics import (
    NOISE_STREAM,
    clean_reflectance,
    make_sky,
    ndvi_of,
    observe,
    sun_position,
)
from pipeline.simulate.phenology import (
    Calendar,
    day_of_year,
    doy_to_date,
    make_calendar,
    make_weather,
    unit_ndvi,
)
from pipeline.simulate.radar import make_radar_scene, simulate_scene
from pipeline.simulate.spec import (
    WorldSpec,
    lonlat_bounds,
    s1_geobox,
    s1_schedule,
    s2_geobox,
    s2_schedule,
    scl_geobox,
    stream,
)
from pipeline.storage import atomic_dir
from pipeline.timegrid import TimeGrid

log = logging.getLogger(__name__)

#: Mantissa bits kept in the Sentinel-1 rasters (see :func:`round_mantissa`).
S1_MANTISSA_BITS = 10

Index = tuple[slice, slice] | tuple[np.ndarray, np.ndarray]


def round_mantissa(data: np.ndarray, bits: int) -> np.ndarray:
    """float32 rounded to ``bits`` mantissa bits (finite values only), so DEFLATE bites.

    10 bits keep 0.1 % relative precision (0.004 dB), far below speckle.
    """
    out = np.array(data, dtype=np.float32, copy=True)
    finite = np.isfinite(out)
    raw = out.view(np.uint32)
    drop = 23 - bits
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32((0xFFFFFFFF >> drop) << drop)
    raw[finite] = (raw[finite] + half) & mask
    return out


def write_cog(path: Path, data: np.ndarray, geobox: GeoBox, nodata: float | None,
              descriptions: list[str] | None = None, tags: dict[str, str] | None = None,
              resampling: str = "average") -> None:
    """One Cloud-Optimized GeoTIFF (DEFLATE, 256 tiles, internal overviews)."""
    arr = data if data.ndim == 3 else data[None]
    profile: dict[str, Any] = {
        "driver": "COG", "count": arr.shape[0], "height": arr.shape[1], "width": arr.shape[2],
        "dtype": arr.dtype.name, "crs": str(geobox.crs), "transform": geobox.transform,
        "nodata": nodata, "compress": "DEFLATE", "predictor": "YES", "blocksize": 256,
        "overview_resampling": resampling, "bigtiff": "NO",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, text)
        if tags:
            dst.update_tags(**tags)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class _World:
    """The drawn world: landscape, calendar, weather and the per-cell NDVI model."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.land: Landscape = make_landscape(spec)
        self.calendar: Calendar = make_calendar(self.land.unit_class, spec)
        self.weather = make_weather(spec)
        self.year = spec.start.year

    def unit_ndvi(self, times: list[dt.datetime]) -> np.ndarray:
        """(units, times) clean NDVI of the management units."""
        doy = np.array([day_of_year(t, self.year) for t in times])
        return unit_ndvi(self.calendar, doy)

    def cell_state(self, unit_values: np.ndarray, index: Index
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clean red, nir and NDVI of cells ``index`` given their units' NDVI."""
        land = self.land
        u = land.unit[index]
        v = unit_values[u]
        base = self.calendar.base[u]
        target = v + (v - base) * (land.gain[index] - 1.0) + land.offset[index]
        red, nir = clean_reflectance(target, land.bg_red[index], land.bg_nir[index])
        return red, nir, ndvi_of(red, nir)


def _write_s2(root: Path, world: _World) -> tuple[list[pystac.Item], np.ndarray, np.ndarray,
                                                  list[str]]:
    spec, land = world.spec, world.land
    gb10, gb20 = s2_geobox(spec), scl_geobox(spec)
    acqs = s2_schedule(spec)
    values = world.unit_ndvi([a.time for a in acqs])
    ny, nx = gb10.shape
    truth = np.empty((len(acqs), ny, nx), np.float32)
    thin = np.empty((len(acqs), ny, nx), np.uint8)
    core = land.core
    water = land.landcover[core] == cal.WATER
    built = land.landcover[core] == cal.BUILT
    lon, lat = (float(v) for v in np.mean(np.reshape(lonlat_bounds(spec), (2, 2)), axis=0))
    items = []
    for k, acq in enumerate(acqs):
        red, nir, ndvi = world.cell_state(values[:, k], core)
        truth[k] = ndvi
        az, el = sun_position(lon, lat, acq.time)
        sky = make_sky(stream(spec, 5, acq.index), (ny, nx), spec, az, el)
        obs = observe(red, nir, water, built, sky, stream(spec, NOISE_STREAM, acq.index))
        thin[k] = obs.thin_cloud
        folder = root / S2_COLLECTION / acq.item_id
        folder.mkdir(parents=True)
        hrefs = {"B04_10m": (folder / "B04_10m.tif", gb10),
                 "B08_10m": (folder / "B08_10m.tif", gb10),
                 "SCL_20m": (folder / "SCL_20m.tif", gb20)}
        write_cog(hrefs["B04_10m"][0], obs.red_dn, gb10, 0)
        write_cog(hrefs["B08_10m"][0], obs.nir_dn, gb10, 0)
        write_cog(hrefs["SCL_20m"][0], obs.scl, gb20, 0, resampling="nearest")
        cover = 100.0 * float(np.isin(obs.scl, (8, 9, 10)).mean())
        items.append(s2_item(acq, spec, {k_: (str(p), g) for k_, (p, g) in hrefs.items()}, cover))
    return items, truth, thin, [_iso(a.time) for a in acqs]


def _write_s1(root: Path, world: _World) -> list[pystac.Item]:
    spec, land = world.spec, world.land
    gb = s1_geobox(spec)
    radar = make_radar_scene(land, spec)
    acqs = s1_schedule(spec)
    values = world.unit_ndvi([a.time for a in acqs])
    items = []
    for k, acq in enumerate(acqs):
        _, _, ndvi = world.cell_state(values[:, k], (radar.rows, radar.cols))
        vv, vh = simulate_scene(land, radar, ndvi, world.weather.moisture_at(acq.time), acq, spec)
        folder = root / S1_COLLECTION / acq.item_id
        folder.mkdir(parents=True)
        write_cog(folder / "vv.tif", round_mantissa(vv, S1_MANTISSA_BITS), gb, float("nan"))
        write_cog(folder / "vh.tif", round_mantissa(vh, S1_MANTISSA_BITS), gb, float("nan"))
        items.append(s1_item(acq, spec, {"vv": str(folder / "vv.tif"),
                                         "vh": str(folder / "vh.tif")}))
    return items


def _bin_truth(world: _World) -> tuple[np.ndarray, list[str]]:
    """Mean of the daily (noon) clean NDVI over the days of each 6-day bin."""
    spec = world.spec
    grid = TimeGrid.covering(spec.start, spec.end)
    days = [d.date() + dt.timedelta(days=i) for d in grid.starts for i in range(grid.step_days)]
    noons = [dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC) for d in days]
    values = world.unit_ndvi(noons)
    ny, nx = s2_geobox(spec).shape
    out = np.zeros((grid.count, ny, nx), np.float32)
    for j in range(len(days)):
        out[j // grid.step_days] += world.cell_state(values[:, j], world.land.core)[2]
    out /= grid.step_days
    return out, grid.iso_dates()


def _write_truth(root: Path, world: _World, truth_acq: np.ndarray, thin: np.ndarray,
                 acq_times: list[str]) -> None:
    spec, land, cal_ = world.spec, world.land, world.calendar
    folder = root / "truth"
    folder.mkdir()
    gb = s2_geobox(spec)
    names = {str(k): v for k, v in cal.LANDCOVER.items()}
    write_cog(folder / "landcover.tif", land.landcover[land.core], gb, 0,
              tags={"classes": json.dumps(names), **{f"CLASS_{k}": v for k, v in names.items()}},
              resampling="nearest")
    write_cog(folder / "parcels.tif", land.parcel_id[land.core], gb, 0, resampling="nearest")
    write_cog(folder / "ndvi_acq.tif", truth_acq, gb, float("nan"), descriptions=acq_times)
    write_cog(folder / "thin_cloud_acq.tif", thin, gb, None, descriptions=acq_times,
              resampling="nearest")
    bins, labels = _bin_truth(world)
    write_cog(folder / "ndvi_bins.tif", bins, gb, float("nan"), descriptions=labels,
              tags={"step_days": "6", "value": "mean daily clean NDVI of the bin"})

    def dates(doys: np.ndarray) -> list[str]:
        out = [doy_to_date(float(d), world.year) for d in doys if not np.isnan(d)]
        return [d.isoformat() for d in out if spec.start <= d <= spec.end]

    features = []
    for pid, geom in parcel_polygons(land, spec).items():
        u = pid - 1
        cls = int(land.unit_class[u])
        mow = dates(cal_.cuts[u]) if cls == cal.GRASS else None
        harvest = dates(cal_.harvest[u:u + 1])
        features.append({"type": "Feature", "geometry": geom.__geo_interface__, "properties": {
            "parcel_id": pid, "landcover": cal.LANDCOVER[cls], "mowing_dates": mow,
            "grazing_dates": dates(cal_.grazings[u]) if cls == cal.PASTURE else None,
            "harvest_date": harvest[0] if harvest else None}})
    (folder / "parcels.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}, separators=(",", ":")))
    w = world.weather
    rows = [f"{w.first_day + dt.timedelta(days=i)},{r:.1f},{m:.3f}"
            for i, (r, m) in enumerate(zip(w.rain_mm, w.moisture, strict=True))]
    (folder / "weather.csv").write_text("date,rain_mm,moisture_index\n" + "\n".join(rows) + "\n")
    (folder / "README.md").write_text(TRUTH_README)


TRUTH_README = """# Ground truth of the simulated archive

All rasters are on the Sentinel-2 10 m grid of the archive (same CRS and transform as B04_10m).

- `landcover.tif`: class code per pixel; code -> name in the `classes` tag (JSON).
- `parcels.tif`: parcel id per pixel (0 = hedgerow or track, not a parcel).
- `parcels.geojson`: parcels in EPSG:4326 with `parcel_id`, `landcover`, `mowing_dates`
  (ISO dates of cuts within the period; null unless mown grassland), `grazing_dates`,
  `harvest_date`. Cuts happen at 06:00 UTC of their date. Hedgerows and tracks between
  fields are not parcels.
- `ndvi_acq.tif`: clean NDVI (no noise, cloud or shadow) at every Sentinel-2 acquisition;
  band description = acquisition time (ISO, UTC).
- `thin_cloud_acq.tif`: 1 where thin cloud or cirrus that SCL did not flag (as 3, 8, 9, 10)
  contaminates the pixel (opacity >= 0.005); NDVI there is biased low. Same bands.
- `ndvi_bins.tif`: mean of the daily (noon) clean NDVI over each 6-day bin of
  `pipeline.timegrid.TimeGrid.covering(start, end)`; band description = bin start date.
- `weather.csv`: daily rain and the soil-moisture index that drives Sentinel-1 VV/VH.
"""


def _build(root: Path, spec: WorldSpec) -> None:
    t0 = time.perf_counter()
    world = _World(spec)
    s2_items, truth, thin, times = _write_s2(root, world)
    log.info("wrote %d Sentinel-2 scenes (%.1f s)", len(s2_items), time.perf_counter() - t0)
    s1_items = _write_s1(root, world)
    log.info("wrote %d Sentinel-1 scenes (%.1f s)", len(s1_items), time.perf_counter() - t0)
    _write_truth(root, world, truth, thin, times)
    write_catalog(root, spec, s2_items, s1_items)
    log.info("demo archive complete in %.1f s", time.perf_counter() - t0)


def write_archive(root: Path, spec: WorldSpec) -> Path:
    """Write the whole archive under ``root``; return ``root/'catalog.json'``.

    Deterministic for a spec (same spec and seed give byte-identical rasters).
    Built in a sibling temporary folder and renamed into place; if
    ``root/catalog.json`` exists it is returned without regenerating.
    """
    root = Path(root)
    catalog = root / "catalog.json"
    if catalog.exists():
        return catalog
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists, is not empty and holds no catalog.json: "
                              "remove it or pass another folder")
    try:
        with atomic_dir(root, replace=False) as tmp:  # takes the place of an empty folder
            log.info("simulating demo archive into %s", root)
            _build(tmp, spec)
    except OSError:
        if catalog.exists():  # another writer finished first: keep theirs
            return catalog
        raise
    return catalog
