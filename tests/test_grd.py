"""GRD processing on the real product's metadata (shipped in tests/data/s1-grd-sample).

The sample's calibration and noise LUTs are written by the tests with known,
linear values, so every expected number below is computed by hand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.transform import from_origin

from pipeline.grd import GrdOptions, open_grd_product, process_grd_items
from pipeline.grd.geocode import compute_radar_coordinates, make_radar_geometry
from pipeline.grd.radiometry import compute_border_mask, compute_calibrated, filter_speckle
from pipeline.ingest import SceneLog
from tests.grd_fixtures import (
    SAMPLE_AZ_SCALE,
    SAMPLE_AZ_SPLIT,
    sample_beta,
    sample_noise_range,
    sample_product,
    sample_sigma,
    write_flat_dem,
    write_sparse_measurement,
)

#: A geolocation grid point in the middle of the sample (line, pixel).
GCP_LINE, GCP_PIXEL = 8012, 12900


def _item(safe: Path) -> pystac.Item:
    item = pystac.Item(safe.stem, None, None, dt.datetime(2021, 4, 1, tzinfo=dt.UTC), {},
                       collection="sentinel-1-grd")
    item.add_asset("safe_manifest", pystac.Asset(str(safe / "manifest.safe")))
    return item


def test_calibration_and_noise_match_hand_computed_values(tmp_path: Path) -> None:
    product = open_grd_product(sample_product(tmp_path))
    luts = product.luts("vv")
    r0, c0 = 8000, SAMPLE_AZ_SPLIT - 3  # straddles the two azimuth noise blocks
    with rasterio.open(product.files["vv"].measurement) as src:
        dn = src.read(1, window=((r0, r0 + 4), (c0, c0 + 6)))
    assert (dn == 1).all()
    sigma0 = compute_calibrated(dn, luts, r0, c0, lut="sigma")
    beta0 = compute_calibrated(dn, luts, r0, c0, lut="beta")
    line, pixel = np.meshgrid(np.arange(r0, r0 + 4.0), np.arange(c0, c0 + 6.0), indexing="ij")
    noise = sample_noise_range(line, pixel) * np.where(pixel >= SAMPLE_AZ_SPLIT,
                                                       SAMPLE_AZ_SCALE, 1.0)
    np.testing.assert_allclose(sigma0, (1.0 - noise) / sample_sigma(line, pixel) ** 2, rtol=1e-5)
    np.testing.assert_allclose(beta0, (1.0 - noise) / sample_beta(line, pixel) ** 2, rtol=1e-5)
    # e.g. line 8000, pixel 10000: noise (0.2 + 0.1) * 1.5 = 0.45, A = 400 + 100 + 16 = 516
    assert sigma0[0, 3] == pytest.approx(0.55 / 516.0**2, rel=1e-5)
    raw = compute_calibrated(dn, luts, r0, c0, lut="sigma", denoise=False)
    np.testing.assert_allclose(raw, 1.0 / sample_sigma(line, pixel) ** 2, rtol=1e-5)


def test_geolocation_grid_points_geocode_within_a_pixel(tmp_path: Path) -> None:
    product = open_grd_product(sample_product(tmp_path))
    gcp = product.gcp
    x, y, z = Transformer.from_crs(4979, 4978, always_xy=True).transform(
        gcp.longitude.values, gcp.latitude.values, gcp.height.values)
    points = xr.DataArray(np.stack([x, y, z]), dims=("axis", "row", "col"))
    radar = compute_radar_coordinates(points, make_radar_geometry(product))
    d_line = radar["line"].values - gcp.line.values[:, None]
    d_pixel = radar["pixel"].values - gcp.pixel.values[None, :]
    assert d_line.size == 210
    # measured: 0.21 lines, 0.008 pixels at worst
    assert np.abs(d_line).max() < 0.5
    assert np.abs(d_pixel).max() < 0.1


def test_bright_target_lands_on_its_map_position_and_gamma0_is_flattened(
        tmp_path: Path) -> None:
    patch = np.full((512, 512), 100, np.uint16)
    patch[256 - 1:256 + 2, 256 - 1:256 + 2] = 3000  # a 3 x 3 target centred on the gcp
    meas = write_sparse_measurement(tmp_path / "sparse.tiff",
                                    [(GCP_LINE - 256, GCP_PIXEL - 256, patch)])
    safe = sample_product(tmp_path / "p", measurement=meas)
    product = open_grd_product(safe)
    gcp = product.gcp.sel(line=GCP_LINE, pixel=GCP_PIXEL)
    lon, lat, h = (float(gcp[v]) for v in ("longitude", "latitude", "height"))
    to_utm = Transformer.from_crs(4326, 32632, always_xy=True)
    ex, ey = to_utm.transform(lon, lat)
    x0, y0 = np.floor(ex / 10) * 10 - 500, np.floor(ey / 10) * 10 - 500
    geobox = GeoBox.from_bbox((x0, y0, x0 + 1000, y0 + 1000), "EPSG:32632", resolution=10)
    dem = write_flat_dem(tmp_path / "dem.tif", (lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05),
                         height=h)
    out = {}
    for radiometry in ("sigma0", "gamma0"):
        scenes = SceneLog()
        items = process_grd_items([_item(safe)], geobox, tmp_path / "cache", dem,
                                  GrdOptions(radiometry=radiometry), scenes)
        assert not scenes.skipped
        with rasterio.open(items[0].assets["vv"].href) as src:
            out[radiometry] = src.read(1)
        assert items[0].properties["sat:orbit_state"] == "descending"
        assert items[0].properties["sat:relative_orbit"] == 168
    sigma = out["sigma0"]
    background = float(np.nanmedian(sigma))
    weight = np.clip(sigma - 2 * background, 0, None)
    yy, xx = np.mgrid[0:100, 0:100]
    cx = x0 + 10 * (np.sum(weight * xx) / weight.sum() + 0.5)
    cy = y0 + 1000 - 10 * (np.sum(weight * yy) / weight.sum() + 0.5)
    assert np.hypot(cx - ex, cy - ey) < 10.0  # within one output pixel
    # flat terrain: gamma0 = beta0 * tan(incidence), away from the target
    inc = np.deg2rad(float(gcp["incidenceAngle"]))
    noise = (0.2 + 1e-5 * GCP_PIXEL) * SAMPLE_AZ_SCALE
    expected = (100.0**2 - noise) / 237.0**2 * np.tan(inc)
    assert float(np.nanmedian(out["gamma0"][:20, :20])) == pytest.approx(expected, rel=0.03)


def test_border_noise_is_masked_from_the_image_edges() -> None:
    dn = np.full((40, 60), 50, np.uint16)
    noise = np.full(dn.shape, 100.0)  # DN² = 100 is the noise floor
    dn[:, :8] = 6  # near-range border noise (DN² = 36 < noise)
    dn[:, :2] = 0
    dn[:3, :] = 5  # first lines
    dn[20, 30] = 0  # a no-data pixel inside
    dn[10:12, 40:45] = 5  # dark but inside the image: not border noise
    mask = compute_border_mask(dn, noise, 0, 0, (1000, 2000), search_px=20, margin_px=1)
    assert mask[:, :9].all() and mask[:4, :].all()  # run + 1 pixel margin
    assert not mask[5:, 10:30].any()
    assert mask[20, 30]
    assert not mask[10:12, 40:45].any()
    # a window that does not touch an image edge masks only no-data
    inner = compute_border_mask(dn, noise, 100, 100, (1000, 2000), search_px=20)
    assert inner.sum() == (dn == 0).sum()


def test_speckle_filters_keep_the_mean_and_the_gaps() -> None:
    rng = np.random.default_rng(1)
    data = (0.1 * rng.gamma(4.4, 1 / 4.4, (80, 80))).astype(np.float32)
    data[40, 40] = np.nan
    for method in ("boxcar", "lee"):
        out = filter_speckle(data, method, 5)
        assert np.isnan(out[40, 40])
        assert np.nanmean(out) == pytest.approx(np.nanmean(data), rel=0.02)
        assert np.nanstd(out) < 0.7 * np.nanstd(data)
    assert filter_speckle(data, "none", 5) is data


def test_broken_or_distant_products_are_skipped_with_the_reason(tmp_path: Path) -> None:
    no_annotation = sample_product(tmp_path / "a", drop=("annotation-vh",))
    truncated = tmp_path / "truncated.tiff"
    with rasterio.open(truncated, "w", driver="GTiff", width=300, height=200, count=1,
                       dtype="uint16", crs="EPSG:4326", transform=from_origin(10, 50, 1e-3, 1e-3)
                       ) as dst:
        dst.write(np.ones((1, 200, 300), np.uint16))
    cut = sample_product(tmp_path / "b", measurement=truncated)
    good = sample_product(tmp_path / "c")
    near = open_grd_product(good).gcp.sel(line=GCP_LINE, pixel=GCP_PIXEL)
    ex, ey = Transformer.from_crs(4326, 32632, always_xy=True).transform(
        float(near["longitude"]), float(near["latitude"]))
    x0, y0 = np.floor(ex / 10) * 10, np.floor(ey / 10) * 10
    inside = GeoBox.from_bbox((x0, y0, x0 + 200, y0 + 200), "EPSG:32632", resolution=10)
    # the AOI in Lithuania is far from the product (northern Italy)
    far = GeoBox.from_bbox((672000, 6180000, 673000, 6181000), "EPSG:32634", resolution=10)
    scenes = SceneLog()
    items = [_item(no_annotation), _item(cut)]
    items[1].id = "cut"
    assert process_grd_items(items, inside, tmp_path / "cache", None, GrdOptions(), scenes) == []
    far_item = _item(good)
    far_item.id = "far"
    assert process_grd_items([far_item], far, tmp_path / "cache", None, GrdOptions(),
                             scenes) == []
    reasons = {s["id"]: s["reason"] for s in scenes.skipped}
    assert "missing VH annotation file" in reasons[no_annotation.stem]
    assert "truncated" in reasons["cut"]
    assert "does not intersect the AOI" in reasons["far"]
    # sentinelhub mode leaves GRD products to Sentinel Hub
    scenes = SceneLog()
    assert process_grd_items([_item(good)], far, tmp_path / "cache", None, GrdOptions(),
                             scenes, processing="sentinelhub") == []
    assert "--s1-processing local" in scenes.skipped[0]["reason"]
