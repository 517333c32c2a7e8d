"""Field context: the clear pixels of a zone fill its cloudy ones on the same date."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.baselines import linear
from pipeline.context import (
    CHECK_DATES,
    CHECK_MIN_PIXELS,
    CHECK_PIXELS,
    CHECK_SHARE,
    MIN_CLEAR,
    FillerCheck,
    apply_context,
    calibrate,
    check_cells,
    flat_zones,
    zone_centroids,
    zone_sides,
    zone_table,
)
from pipeline.fill import compute_filled, zone_context


@dataclass(frozen=True)
class LinearWithStd:
    """Linear interpolation with a fixed std, a stand-in for a filler that reports one."""

    std: float = 0.08
    name: str = "linear+std"

    def fill(self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray,
             doy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mean = linear(ndvi)
        return mean, np.full_like(mean, self.std)


def field_world(seed: int = 0, ny: int = 12, nx: int = 12, t: int = 30):
    """Two fields (left and right halves); field 1 is cut at date 14, each pixel has a
    steady offset and 0.01 noise; clouds hide random pixel-dates, and dates 13-16 hide
    the left field's upper half only (a partly clear field around the cut)."""
    rng = np.random.default_rng(seed)
    days = np.arange(t)
    base = 0.3 + 0.5 * np.sin(np.pi * days / t)
    cut = np.where(days >= 14, -0.35 * np.exp(-(days - 14) / 8.0), 0.0)
    zone = np.ones((ny, nx), np.int32)
    zone[:, nx // 2:] = 2
    truth = np.empty((ny, nx, t), np.float32)
    offset = rng.normal(0, 0.04, (ny, nx))
    for z, series in ((1, base + cut), (2, base)):
        truth[zone == z] = series[None, :] + offset[zone == z][:, None]
    obs = truth + rng.normal(0, 0.01, truth.shape).astype(np.float32)
    hidden = rng.random(truth.shape) < 0.3
    hidden[: ny // 2, : nx // 2, 13:17] = True
    obs[hidden] = np.nan
    return truth, obs, zone


def test_zone_table_is_additive_over_blocks():
    _, obs, zone = field_world()
    whole = zone_table(zone, obs, 2)
    parts = zone_table(zone[:5], obs[:5], 2) + zone_table(zone[5:], obs[5:], 2)
    np.testing.assert_array_equal(whole.n_clear, parts.n_clear)
    np.testing.assert_allclose(whole.sum_ndvi, parts.sum_ndvi)
    assert whole.n_pixels.tolist() == [0, 72, 72]
    with pytest.raises(ValueError, match="zone ids"):
        zone_table(zone + 5, obs, 2)


def test_context_recovers_a_cut_the_series_cannot_see():
    truth, obs, zone = field_world()
    t = obs.shape[-1]
    f = linear(obs.reshape(-1, t)).reshape(obs.shape)
    s = np.full_like(f, 0.08)
    table = zone_table(zone, obs, 2)
    mean, std = apply_context(f, s, obs, zone, table, calibrate(obs, zone, table))
    cells = np.zeros(obs.shape, bool)
    cells[: 6, : 6, 14:17] = True  # the cut, hidden in half the field
    cells &= ~np.isfinite(obs)
    lin_err = np.abs(f - truth)[cells].mean()
    ctx_err = np.abs(mean - truth)[cells].mean()
    assert lin_err > 0.05
    assert ctx_err < 0.4 * lin_err
    assert (std[cells] < s[cells]).all()
    # observed cells are never changed
    seen = np.isfinite(obs)
    np.testing.assert_array_equal(mean[seen], f[seen])


def test_without_enough_clear_pixels_the_fill_is_unchanged():
    truth, obs, zone = field_world()
    t = obs.shape[-1]
    obs[..., 20] = np.nan
    obs[0, : MIN_CLEAR - 1, 20] = truth[0, : MIN_CLEAR - 1, 20]  # too few clear pixels
    f = linear(obs.reshape(-1, t)).reshape(obs.shape)
    s = np.full_like(f, 0.08)
    table = zone_table(zone, obs, 2)
    mean, std = apply_context(f, s, obs, zone, table, calibrate(obs, zone, table))
    np.testing.assert_array_equal(mean[..., 20], f[..., 20])
    np.testing.assert_array_equal(std[..., 20], s[..., 20])
    # pixels without a zone are never touched
    none = np.zeros_like(zone)
    table0 = zone_table(none, obs, 0)
    mean0, _ = apply_context(f, s, obs, none, table0, calibrate(obs, none, table0))
    np.testing.assert_array_equal(mean0, f)


def _cube(obs: np.ndarray, zone: np.ndarray) -> xr.Dataset:
    ny, nx, t = obs.shape
    coords = {"time": pd.date_range("2023-04-01", periods=t, freq="6D"),
              "y": np.arange(ny) * -10.0, "x": np.arange(nx) * 10.0}
    nd = np.moveaxis(obs, -1, 0)
    nan = np.full_like(nd, np.nan)
    data = {"ndvi": (("time", "y", "x"), nd)}
    for v in ("vv_asc", "vv_desc", "vh_asc", "vh_desc"):
        data[v] = (("time", "y", "x"), nan)
    data["zone"] = (("y", "x"), zone)
    return xr.Dataset(data, coords=coords)


def test_fill_stage_context_does_not_depend_on_chunks():
    truth, obs, zone = field_world(seed=3)
    cube = _cube(obs, zone)
    a = compute_filled(cube.chunk({"time": -1, "y": 12, "x": 12}), LinearWithStd()).compute()
    b = compute_filled(cube.chunk({"time": -1, "y": 5, "x": 7}), LinearWithStd()).compute()
    np.testing.assert_allclose(a["ndvi_filled"].values, b["ndvi_filled"].values, atol=1e-6)
    np.testing.assert_allclose(a["ndvi_std"].values, b["ndvi_std"].values, atol=1e-6)
    plain = compute_filled(cube.drop_vars("zone").chunk({"time": -1}), LinearWithStd()).compute()
    gap = ~np.isfinite(np.moveaxis(obs, -1, 0))
    ref = np.moveaxis(truth, -1, 0)
    err_ctx = np.abs(a["ndvi_filled"].values - ref)[gap].mean()
    err_plain = np.abs(plain["ndvi_filled"].values - ref)[gap].mean()
    assert err_ctx < err_plain
    ctx = zone_context(cube.chunk({"time": -1, "y": 5, "x": 7}))
    assert ctx is not None
    assert int(ctx.table.n_pixels.sum()) == obs.shape[0] * obs.shape[1]
    assert ctx.calibration.count.sum() > 0
    # global zone ids (a national parcel file): the tables follow the zones present
    far = cube.assign(zone=cube["zone"] * 100_000)
    ctx_far = zone_context(far.chunk({"time": -1, "y": 5, "x": 7}))
    assert ctx_far is not None and ctx_far.ids.tolist() == [100_000, 200_000]
    assert ctx_far.table.n_clear.shape[0] == 3
    c = compute_filled(far.chunk({"time": -1, "y": 5, "x": 7}), LinearWithStd()).compute()
    np.testing.assert_allclose(c["ndvi_filled"].values, b["ndvi_filled"].values, atol=1e-6)


def test_a_segment_lends_its_season_to_no_pixel_without_one():
    """A track merged into a field's segment is flat: with segments it keeps its own
    fill, with parcels (a declared field) it takes the context like every pixel."""
    _, obs, zone = field_world(seed=4)
    rng = np.random.default_rng(4)
    track = np.zeros(zone.shape, bool)
    track[:, 2] = True  # a column of the left field's segment
    flat = 0.35 + rng.normal(0, 0.01, (int(track.sum()), obs.shape[-1]))
    obs[track] = np.where(np.isfinite(obs[track]), flat, np.nan).astype(np.float32)
    table = zone_table(zone, obs, 2)
    assert not flat_zones(table).any()  # both fields have a season
    flat_table = zone_table(track.astype(np.int32), obs, 1)
    assert flat_zones(flat_table).tolist() == [False, True]  # the track alone has none
    cube = _cube(obs, zone).chunk({"time": -1, "y": 5, "x": 7})
    plain = compute_filled(cube.drop_vars("zone"), LinearWithStd()).compute()
    filled = {}
    for kind in ("segments", "parcels"):
        cube["zone"].attrs["zones"] = kind
        filled[kind] = compute_filled(cube, LinearWithStd()).compute()["ndvi_filled"].values
    gap = ~np.isfinite(np.moveaxis(obs, -1, 0))
    on_track = gap & track[None]
    field = gap & ~track[None] & (zone == 1)[None]
    # the track's cells keep the plain fill with segments, not with parcels
    np.testing.assert_array_equal(filled["segments"][on_track],
                                  plain["ndvi_filled"].values[on_track])
    assert (filled["parcels"][on_track] != plain["ndvi_filled"].values[on_track]).any()
    # the field's own pixels take the context either way
    np.testing.assert_array_equal(filled["segments"][field], filled["parcels"][field])
    assert (filled["segments"][field] != plain["ndvi_filled"].values[field]).any()


def test_half_zone_errors_widen_the_variance_for_contiguous_clouds():
    """A field whose east half drifts on some dates (a part cut first, irrigation): one
    pixel left out hardly sees it, its west half predicting the east half does."""
    _, obs, zone = field_world(seed=5)
    ny, nx, t = obs.shape
    obs = obs.copy()
    anomaly = np.zeros(t)
    anomaly[::3] = 0.08
    obs[:, 3:6, :] += anomaly  # the east part of field 1 (columns 0-5)
    yy, xx = np.mgrid[0:ny, 0:nx]
    cent = zone_centroids(zone, xx, -yy, 2)
    sides = zone_sides(zone, xx, -yy, cent)
    assert set(np.unique(sides[zone == 1])) == {0, 1, 2, 3}
    table = zone_table(zone, obs, 2, sides)
    halves = calibrate(obs, zone, table, sides)
    plain = calibrate(obs, zone, zone_table(zone, obs, 2))
    assert halves.half_count > 0 and plain.half_count == 0
    pix = halves.sq_err.sum() / halves.count.sum()
    assert halves.half_sq_err / halves.half_count > 1.5 * pix
    v = halves.variance(np.array([0.95, 0.5, 0.2]))
    assert v[0] < v[1] < v[2]
    # the one-pixel-out part is the same; only the half-zone excess widens it
    np.testing.assert_allclose(plain.sq_err, halves.sq_err)
    assert plain.variance(np.array([0.5]))[0] < v[1]


def test_the_filler_check_hides_the_same_cells_whatever_the_blocks():
    _, obs, zone = field_world(seed=7, ny=20, nx=20)
    ny, nx, _ = obs.shape
    x = np.arange(nx)[None, :] * 10.0 + 5.0
    y = -np.arange(ny)[:, None] * 10.0 - 5.0
    n_pixels = np.bincount(zone.reshape(-1), minlength=3)
    whole = check_cells(obs, zone, x, y, n_pixels).reshape(ny, nx, -1)
    parts = np.zeros_like(whole)
    for rows in (slice(0, 7), slice(7, 20)):
        for cols in (slice(0, 13), slice(13, 20)):
            block = check_cells(obs[rows, cols], zone[rows, cols], x[:, cols], y[rows],
                                n_pixels)
            parts[rows, cols] = block.reshape(parts[rows, cols].shape)
    np.testing.assert_array_equal(whole, parts)
    # hidden cells are clear, at most CHECK_DATES per pixel, never a pixel's first or last
    assert whole.any()
    assert np.isfinite(obs[whole]).all()
    assert whole.sum(axis=-1).max() <= CHECK_DATES
    for iy, ix in zip(*np.nonzero(whole.any(axis=-1)), strict=True):
        clear = np.flatnonzero(np.isfinite(obs[iy, ix]))
        hidden = np.flatnonzero(whole[iy, ix])
        assert clear[0] < hidden.min() and hidden.max() < clear[-1]
    # as many pixels per zone as the rule's share of it (CHECK_PIXELS of a small zone,
    # CHECK_SHARE of a large one, CHECK_MIN_PIXELS over the cube), give or take the hash
    per_zone = np.bincount(zone[whole.any(axis=-1)], minlength=3)[1:]
    n = n_pixels[1:].astype(float)
    share = np.maximum(CHECK_PIXELS / n, max(CHECK_SHARE, CHECK_MIN_PIXELS / n.sum()))
    expected = np.minimum(share, 1.0) * n
    assert (np.abs(per_zone - expected) <= 4 * np.sqrt(expected) + 2).all()


def _check(n: list[int], ratios: list[np.ndarray]) -> FillerCheck:
    """A filler check of zones 1..K whose cells have the given error/variance ratios
    (predicted variance 1 per cell)."""
    k = len(ratios) + 1
    out = [np.zeros(k) for _ in range(5)]
    for z, r in enumerate(ratios, start=1):
        out[0][z], out[1][z], out[2][z] = len(r), r.sum(), len(r)
        out[3][z], out[4][z] = r.sum(), (r**2).sum()
    return FillerCheck(*out)


def test_filler_scale_trusts_a_zone_by_how_much_zones_really_differ():
    rng = np.random.default_rng(0)
    # zones that differ: the filler's std is 4x too wide on half of them, right on the rest
    alike = [rng.chisquare(1, 8) * (1 / 16 if z % 2 else 1.0) for z in range(40)]
    scale = _check([8] * 40, alike).scale()
    assert scale[0] == 1.0
    assert np.median(scale[2::2]) < 0.25 < 0.6 < np.median(scale[1::2])
    # zones that do not differ at all get the pooled ratio, and zones that differ by
    # sampling noise alone are pulled most of the way to it
    one = rng.chisquare(1, 8)
    check = _check([8] * 40, [one] * 40)
    np.testing.assert_allclose(check.scale()[1:], one.mean())
    noise = [rng.chisquare(1, 8) for _ in range(40)]
    own = np.array([r.mean() for r in noise])
    assert np.std(_check([8] * 40, noise).scale()[1:]) < 0.5 * np.std(own)
    # no scored cell: the filler's std is taken as it is
    empty = FillerCheck(*(np.zeros(3) for _ in range(5)))
    np.testing.assert_array_equal(empty.scale(), np.ones(3))


@dataclass(frozen=True)
class ExactWithWideStd:
    """Knows every pixel's true series yet reports a std far too wide, as SF does on easy
    land cover it never trained on. The pixel is named by the cube's ``vv_asc`` (its
    row number there), so the filler needs no matching."""

    truth: np.ndarray
    std: float = 0.08
    name: str = "exact+wide-std"

    def fill(self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray,
             doy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mean = self.truth[vv[:, 0, 0].astype(int)].astype(np.float32)
        return mean, np.full_like(mean, self.std)


def test_the_check_keeps_a_good_filler_whose_std_is_too_wide():
    """Pixels of one field drift apart and back (a sinusoid of their own phase), which the
    context's offset, interpolated across the gap, follows poorly; the filler knows the
    series exactly but claims a wide std. Unchecked, the blend trusts the context; with
    the check it learns on the tile that the filler is better and keeps it."""
    rng = np.random.default_rng(3)
    ny, nx, t = 12, 12, 30
    days = np.arange(t)
    base = 0.3 + 0.5 * np.sin(np.pi * days / t)
    phase = rng.uniform(0, 2 * np.pi, (ny, nx, 1))
    truth = (base + rng.normal(0, 0.04, (ny, nx, 1))
             + 0.04 * np.sin(2 * np.pi * days / 5 + phase)).astype(np.float32)
    obs = truth + rng.normal(0, 0.005, truth.shape).astype(np.float32)
    obs[rng.random(truth.shape) < 0.3] = np.nan
    zone = np.ones((ny, nx), np.int32)
    filler = ExactWithWideStd(truth.reshape(-1, t))
    cube = _cube(obs, zone)
    cube["vv_asc"] = (("time", "y", "x"),
                      np.broadcast_to(np.arange(ny * nx, dtype=np.float32).reshape(ny, nx),
                                      (t, ny, nx)).copy())
    chunked = cube.chunk({"time": -1, "y": 5, "x": 7})
    checked = compute_filled(chunked, filler).compute()
    ctx = zone_context(chunked, filler, None)
    assert ctx is not None and ctx.calibration.filler is not None
    assert ctx.calibration.filler_scale(np.array([1]))[0] < 0.05
    unchecked = zone_context(chunked)
    assert unchecked is not None and unchecked.calibration.filler is None
    f = np.asarray(truth, np.float32)
    mean_u, _ = unchecked.apply(f, np.full_like(f, filler.std), obs, zone)
    gap = ~np.isfinite(obs)
    err_checked = np.abs(np.moveaxis(checked["ndvi_filled"].values, 0, -1) - truth)[gap].mean()
    err_unchecked = np.abs(mean_u - truth)[gap].mean()
    assert err_unchecked > 0.01
    assert err_checked < 0.3 * err_unchecked


@dataclass(frozen=True)
class LinearWithStdNoRadar(LinearWithStd):
    """The same stand-in, saying it reads no Sentinel-1 (as SF's card says it ships)."""

    def reads_s1(self) -> bool:
        return False


def test_the_check_reads_radar_only_for_a_filler_that_uses_it():
    _, obs, zone = field_world(seed=2)
    cube = _cube(obs, zone).drop_vars(["vv_asc", "vv_desc", "vh_asc", "vh_desc"])
    chunked = cube.chunk({"time": -1, "y": 5, "x": 7})
    ctx = zone_context(chunked, LinearWithStdNoRadar(), None)
    assert ctx is not None and ctx.calibration.filler is not None
    assert ctx.calibration.filler.n.sum() > 0
    with pytest.raises(KeyError, match="vv_asc"):
        zone_context(chunked, LinearWithStd(), None)
    # the shipped SF is given no Sentinel-1 (card inference.s1), the 1.2.0 network is
    from pipeline.fill import ModelFiller
    assert not ModelFiller().reads_s1()
    from pipeline.fill import shipped_weights
    assert ModelFiller(str(shipped_weights().with_name("sf-1.2.0.safetensors"))).reads_s1()
