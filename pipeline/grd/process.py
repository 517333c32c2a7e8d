"""GRD products -> calibrated, terrain-corrected backscatter items on the run's grid.

For each product: open and check it (:mod:`.product`), geocode the padded run
grid block by block (:mod:`.geocode`), read only the window of the measurement
rasters that the block needs, remove thermal noise, calibrate, mask border
noise, optionally filter speckle (:mod:`.radiometry`), sample, flatten the
terrain (gamma0), and write one float32 GeoTIFF per polarisation on the run's
grid into the cache. The returned STAC item has ``vv``/``vh`` assets (linear
power) and the orbit facts ingestion needs, so ingestion is unchanged.

Per-product policy: a product that cannot be processed (missing or truncated
files, outside the AOI) is skipped and recorded with the reason; the run goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.windows import Window
from shapely.geometry import mapping

from pipeline.errors import InputError
from pipeline.grd.dem import read_dem
from pipeline.grd.geocode import (
    RadarGeometry,
    compute_area_ratio,
    compute_radar_coordinates,
    make_dem_ecef,
    make_radar_geometry,
    sample_bilinear,
)
from pipeline.grd.product import POLARISATIONS, GrdError, GrdProduct, open_grd_product
from pipeline.grd.radiometry import (
    border_window,
    compute_border_mask,
    compute_calibrated,
    compute_noise_power,
    filter_speckle,
)
from pipeline.ingest import SceneLog
from pipeline.storage import atomic_write

log = logging.getLogger(__name__)

#: Collection ids whose items are GRD products in radar geometry.
GRD_COLLECTIONS: tuple[str, ...] = ("sentinel-1-grd",)
#: Asset keys that point at a product's manifest.safe or .SAFE folder, first match wins.
SAFE_ASSET_KEYS: tuple[str, ...] = ("safe_manifest", "manifest", "safe", "product")
#: Processing modes of ``--s1-processing``.
S1_PROCESSING: tuple[str, ...] = ("local", "sentinelhub")
#: Bump when the output of the processor changes (invalidates the cache).
PROCESSOR_VERSION = "1"


@dataclass(frozen=True)
class GrdOptions:
    """How GRD products are turned into backscatter (a value handed to every product).

    Attributes:
        radiometry: ``gamma0`` (terrain-flattened, like Sentinel Hub's CARD4L
            backscatter) or ``sigma0`` (ellipsoid, no terrain flattening).
        speckle_filter: ``none``, ``boxcar`` (multilook) or ``lee``, in radar geometry.
        filter_size: window edge of the speckle filter (GRD pixels).
        grouping: GRD lines and slant-range samples per radar bin of the terrain-flattening
            area sum (6: bins of about 60 x 60 m in slant geometry; smaller bins alias with
            the 10 m grid, 3 gives a +-4 % moire, 6 less than 1 %).
        border_search_px: distance from the image edges searched for border noise.
        height_offset_m: added to DEM heights (geoid undulation for EGM2008 DEMs).
        block: edge (cells) of the grid blocks geocoded at once (bounds memory).
        pad: cells added around each block (terrain flattening needs the facets of the
            bins at the block edge: more than two bins, about 200 m).
        eodata: EODATA mount (GRD products and the Copernicus DEM).
    """

    radiometry: str = "gamma0"
    speckle_filter: str = "none"
    filter_size: int = 5
    grouping: int = 6
    border_search_px: int = 1000
    height_offset_m: float = 0.0
    block: int = 1024
    pad: int = 32
    eodata: str = "/eodata"

    def __post_init__(self) -> None:
        if self.radiometry not in ("gamma0", "sigma0"):
            raise ValueError(f"radiometry {self.radiometry!r}: use gamma0 or sigma0")
        if self.speckle_filter not in ("none", "boxcar", "lee"):
            raise ValueError(f"speckle_filter {self.speckle_filter!r}: use none, boxcar or lee")


def grd_options(eodata: str | None = None) -> GrdOptions:
    """Default options, with the EODATA mount when ``eodata`` is a folder path."""
    if eodata and eodata.startswith("/"):
        return GrdOptions(eodata=eodata)
    return GrdOptions()


def is_grd_product(item: pystac.Item) -> bool:
    """True for items that are GRD products in radar geometry (not calibrated backscatter)."""
    return item.collection_id in GRD_COLLECTIONS or any(k in item.assets for k in SAFE_ASSET_KEYS)


def safe_path(item: pystac.Item, eodata: str = "/eodata") -> Path:
    """Local path of an item's SAFE folder (``s3://eodata/...`` mapped onto the mount)."""
    for key in SAFE_ASSET_KEYS:
        if key in item.assets:
            href = item.assets[key].get_absolute_href() or item.assets[key].href
            break
    else:
        raise GrdError("no manifest.safe / SAFE asset in the item")
    for prefix in ("s3://eodata/", "/vsis3/eodata/", "s3://EODATA/"):
        if href.startswith(prefix):
            href = str(Path(eodata) / href[len(prefix):])
    if href.startswith("file://"):
        href = href[len("file://"):]
    if "://" in href:
        raise GrdError(f"remote product {href}: mount it (EODATA) or download the SAFE folder")
    path = Path(href)
    return path.parent if path.name == "manifest.safe" else path


def _window(radar: Any, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int] | None:
    line, pixel = radar["line"].values, radar["pixel"].values
    ok = np.isfinite(line) & np.isfinite(pixel)
    ok &= (line > -1) & (line < shape[0]) & (pixel > -1) & (pixel < shape[1])
    if not ok.any():
        return None
    r0 = max(int(np.floor(line[ok].min())) - margin, 0)
    r1 = min(int(np.ceil(line[ok].max())) + margin + 1, shape[0])
    c0 = max(int(np.floor(pixel[ok].min())) - margin, 0)
    c1 = min(int(np.ceil(pixel[ok].max())) + margin + 1, shape[1])
    return r0, r1, c0, c1


def _read_window(path: Path, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            return src.read(1, window=Window.from_slices(rows, cols))
    except rasterio.errors.RasterioIOError as exc:
        msg = str(exc).splitlines()[0]
        raise GrdError(f"measurement {path.name} unreadable ({msg}; truncated?)") from None


def _process_block(
    product: GrdProduct,
    geom: RadarGeometry,
    luts: dict[str, Any],
    heights: np.ndarray,
    geobox: GeoBox,
    options: GrdOptions,
) -> dict[str, np.ndarray] | None:
    """Backscatter per polarisation on the padded block ``geobox``; None if outside the image."""
    dem_ecef = make_dem_ecef(heights, geobox)
    radar = compute_radar_coordinates(dem_ecef, geom).transpose("y", "x", ...)
    margin = 2 + (options.filter_size if options.speckle_filter != "none" else 0)
    win = _window(radar, geom.shape, margin)
    if win is None:
        return None
    rows, cols = border_window(win[:2], win[2:], geom.shape, options.border_search_px)
    ratio = None
    if options.radiometry == "gamma0":
        ratio = compute_area_ratio(dem_ecef, radar, geom, options.grouping)
    line = radar["line"].values - rows[0]
    pixel = radar["pixel"].values - cols[0]
    out = {}
    for pol in POLARISATIONS:
        dn = _read_window(product.files[pol].measurement, rows, cols)
        noise = compute_noise_power(luts[pol], rows[0], cols[0], dn.shape)
        lut = "beta" if options.radiometry == "gamma0" else "sigma"
        data = compute_calibrated(dn, luts[pol], rows[0], cols[0], lut=lut)
        mask = compute_border_mask(dn, noise, rows[0], cols[0], geom.shape,
                                   search_px=options.border_search_px)
        data[mask] = np.nan
        data = filter_speckle(data, options.speckle_filter, options.filter_size)
        values = sample_bilinear(data, line, pixel)
        if ratio is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(ratio > 1e-3, values / ratio, np.nan)
        out[pol] = values.astype(np.float32)
    return out


def compute_backscatter(
    product: GrdProduct, geobox: GeoBox, heights: np.ndarray, options: GrdOptions
) -> dict[str, np.ndarray]:
    """Backscatter (linear, NaN where none) per polarisation on ``geobox``.

    ``heights`` are ellipsoidal heights on ``geobox.pad(options.pad)``. GrdError
    if no cell of the grid falls inside the product's image.
    """
    geom = make_radar_geometry(product)
    luts = {pol: product.luts(pol) for pol in POLARISATIONS}
    out = {pol: np.full(geobox.shape, np.nan, np.float32) for pol in POLARISATIONS}
    pad, step = options.pad, options.block
    hit = False
    for y0 in range(0, geobox.shape[0], step):
        for x0 in range(0, geobox.shape[1], step):
            y1, x1 = min(y0 + step, geobox.shape[0]), min(x0 + step, geobox.shape[1])
            block = geobox[y0:y1, x0:x1].pad(pad)
            block_heights = heights[y0:y1 + 2 * pad, x0:x1 + 2 * pad]
            res = _process_block(product, geom, luts, block_heights, block, options)
            if res is None:
                continue
            hit = True
            for pol, values in res.items():
                out[pol][y0:y1, x0:x1] = values[pad:-pad, pad:-pad]
    if not hit:
        raise GrdError("the AOI lies outside the product's image")
    return out


def _write_tif(path: Path, data: np.ndarray, geobox: GeoBox, tags: dict[str, str]) -> None:
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": "float32", "crs": str(geobox.crs), "transform": geobox.transform,
        "nodata": float("nan"), "compress": "DEFLATE", "tiled": True,
        "blockxsize": 256, "blockysize": 256,
    }
    with atomic_write(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags)


def _cache_key(product: GrdProduct, geobox: GeoBox, dem: Path | None, options: GrdOptions) -> str:
    dem_id = "eodata"
    if dem is not None:
        st = Path(dem).stat()
        dem_id = f"{Path(dem).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    text = json.dumps([PROCESSOR_VERSION, product.id, str(geobox), dem_id, asdict(options)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_item(product: GrdProduct, hrefs: dict[str, Path], geobox: GeoBox,
              options: GrdOptions) -> pystac.Item:
    """STAC item of processed backscatter: ``vv``/``vh`` assets and orbit facts."""
    footprint = geobox.footprint("EPSG:4326").geom.intersection(product.footprint)
    if footprint.is_empty:
        footprint = geobox.footprint("EPSG:4326").geom
    start = dt.datetime.fromisoformat(str(product.attrs["start_time"])).replace(tzinfo=dt.UTC)
    props: dict[str, Any] = {
        "platform": f"sentinel-1{str(product.attrs.get('number', '')).lower()}",
        "constellation": "sentinel-1",
        "sat:orbit_state": product.orbit_state,
        "sat:relative_orbit": int(product.attrs["relative_orbit_number"]),
        "sat:absolute_orbit": int(product.attrs["orbit_number"]),
        "sar:product_type": "GRD",
        "sar:instrument_mode": str(product.attrs.get("mode", "")),
        "s1s2:processing": f"local {options.radiometry} (pipeline.grd {PROCESSOR_VERSION})",
    }
    item = pystac.Item(product.id, mapping(footprint), list(footprint.bounds), start, props,
                       collection="sentinel-1-grd-local")
    for pol, href in hrefs.items():
        item.add_asset(pol, pystac.Asset(
            str(href), title=f"{pol.upper()} {options.radiometry}, linear power",
            media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
    return item


def process_grd_product(
    product: GrdProduct, geobox: GeoBox, heights: np.ndarray, folder: Path, options: GrdOptions
) -> dict[str, Path]:
    """Write ``vv.tif``/``vh.tif`` for one product into ``folder`` (skipped if already there)."""
    hrefs = {pol: folder / f"{pol}.tif" for pol in POLARISATIONS}
    if all(p.is_file() for p in hrefs.values()):
        log.info("GRD %s: cached in %s", product.id, folder)
        return hrefs
    product.check_measurements()
    values = compute_backscatter(product, geobox, heights, options)
    folder.mkdir(parents=True, exist_ok=True)
    for pol, href in hrefs.items():
        _write_tif(href, values[pol], geobox, {"product": product.id,
                                               "radiometry": options.radiometry})
    return hrefs


def process_grd_items(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    cache: Path,
    dem: Path | None,
    options: GrdOptions,
    scenes: SceneLog,
    processing: str = "local",
) -> list[pystac.Item]:
    """Replace GRD product items by items of calibrated backscatter on ``geobox``.

    Items that are not GRD products pass through unchanged. With
    ``processing="sentinelhub"`` GRD products are skipped (Sentinel Hub does the
    processing; they need ``--source sentinelhub``). Products that cannot be
    processed are skipped and recorded in ``scenes``.
    """
    grd = [it for it in items if is_grd_product(it)]
    out = [it for it in items if not is_grd_product(it)]
    if not grd:
        return out
    if processing != "local":
        for item in grd:
            scenes.skip(item, "GRD product in radar geometry; pass --s1-processing local "
                              "to calibrate and terrain-correct it here")
        return out
    aoi = geobox.footprint("EPSG:4326").geom
    heights: np.ndarray | None = None
    for item in grd:
        try:
            product = open_grd_product(safe_path(item, options.eodata))
            if not product.footprint.intersects(aoi):
                raise GrdError("the product does not intersect the AOI")
            product.check_measurements()
            if heights is None:
                heights = read_dem(geobox.pad(options.pad), dem, Path(options.eodata),
                                   options.height_offset_m)
            folder = cache / product.id / _cache_key(product, geobox, dem, options)
            hrefs = process_grd_product(product, geobox, heights, folder, options)
        except GrdError as exc:
            scenes.skip(item, f"GRD: {exc}")
            continue
        except InputError:
            raise
        except Exception as exc:  # xarray-sentinel, rasterio and sarsen raise many types
            msg = str(exc).splitlines()[0] if str(exc) else ""
            scenes.skip(item, f"GRD: processing failed ({type(exc).__name__}: {msg})")
            continue
        processed = make_item(product, hrefs, geobox, options)
        log.info("GRD %s: %s on the run grid", product.id, options.radiometry)
        out.append(processed)
    return sorted(out, key=lambda it: (it.datetime or dt.datetime.min.replace(tzinfo=dt.UTC),
                                       it.id))
