"""GRD test products: the real sample with written LUTs, and GRD-like products of the demo world.

* :func:`sample_product` puts the real S1B GRD metadata shipped in
  ``tests/data/s1-grd-sample`` (annotation XMLs gzipped; see its ``README.md``)
  into a folder (symlinks; the 16685 x 25788 measurement is linked, never
  copied) and writes calibration and noise XMLs in
  the product's schema with known, linear LUTs (bilinear interpolation is exact
  on them, so expected values are computed by hand).
* :func:`demo_grd_product` writes a small GRD-like SAFE product of the demo
  world for one demo Sentinel-1 acquisition: a circular synthetic orbit whose
  right-looking beam sees the demo area, a ground-range image whose pixels are
  located by forward range-Doppler geocoding, DN = sqrt(beta0 * A² + noise)
  with beta0 = gamma0 * cos(inc) / sin(inc) from the demo's own gamma0 raster,
  border noise at the image edges, the annotation (from the real product's XML
  as template: orbit, timing, coordinate conversion, geolocation grid
  replaced), calibration and noise XMLs, and the manifest.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import re
import shutil
import tempfile
import warnings
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

SAMPLE_NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"
#: The shipped copy (in the repository: the tests need no shared data folder).
SAMPLE_SHIPPED = Path(__file__).resolve().parent / "data" / "s1-grd-sample" / SAMPLE_NAME
STAMP = "20210401t052623-20210401t052648-026269-032297"
NAMES = {"vv": f"s1b-iw-grd-vv-{STAMP}-001", "vh": f"s1b-iw-grd-vh-{STAMP}-002"}

WGS84_A, WGS84_B = 6378137.0, 6356752.314245179
OMEGA_EARTH = 7.2921159e-5
GM = 3.986004418e14
C = 299_792_458.0


@functools.cache
def sample_safe() -> Path:
    """The real sample as a plain SAFE folder: the shipped copy with its XMLs unpacked.

    Unpacked once per process into a temporary folder (removed at exit); the
    measurement raster is linked, not copied.
    """
    root = Path(tempfile.mkdtemp(prefix="s1-grd-sample-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    safe = root / SAMPLE_NAME
    for src in SAMPLE_SHIPPED.rglob("*"):
        if not src.is_file():
            continue
        dst = safe / src.relative_to(SAMPLE_SHIPPED)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".gz":
            dst.with_suffix("").write_bytes(gzip.decompress(src.read_bytes()))
        else:
            dst.symlink_to(src)
    return safe


def _fmt_time(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="us"))


def _vec(values: np.ndarray, fmt: str = "{:.9e}") -> str:
    return " ".join(fmt.format(v) for v in np.ravel(values))


def _header(pol: str, start: str, stop: str, mission: str = "S1B") -> str:
    return (
        f"<adsHeader><missionId>{mission}</missionId><productType>GRD</productType>"
        f"<polarisation>{pol.upper()}</polarisation><mode>IW</mode><swath>IW</swath>"
        f"<startTime>{start}</startTime><stopTime>{stop}</stopTime>"
        "<absoluteOrbitNumber>26269</absoluteOrbitNumber>"
        "<missionDataTakeId>205463</missionDataTakeId><imageNumber>001</imageNumber></adsHeader>"
    )


def write_calibration_xml(path: Path, pol: str, times: list[str], lines: np.ndarray,
                          pixels: np.ndarray, sigma: np.ndarray, beta: np.ndarray,
                          gamma: np.ndarray) -> None:
    """A calibration annotation in the S1 Level-1 calibration schema."""
    n = pixels.size
    vecs = "".join(
        f"<calibrationVector><azimuthTime>{t}</azimuthTime><line>{int(li)}</line>"
        f'<pixel count="{n}">{_vec(pixels, "{:d}")}</pixel>'
        f'<sigmaNought count="{n}">{_vec(sigma[k])}</sigmaNought>'
        f'<betaNought count="{n}">{_vec(beta[k])}</betaNought>'
        f'<gamma count="{n}">{_vec(gamma[k])}</gamma>'
        f'<dn count="{n}">{_vec(beta[k])}</dn></calibrationVector>'
        for k, (t, li) in enumerate(zip(times, lines, strict=True))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<calibration>'
        + _header(pol, times[0], times[-1])
        + "<calibrationInformation><absoluteCalibrationConstant>1.000000e+00"
        "</absoluteCalibrationConstant></calibrationInformation>"
        + f'<calibrationVectorList count="{len(times)}">{vecs}</calibrationVectorList>'
        + "</calibration>\n"
    )


def write_noise_xml(path: Path, pol: str, times: list[str], lines: np.ndarray,
                    pixels: np.ndarray, noise_range: np.ndarray,
                    azimuth_blocks: list[tuple[int, int, int, int, np.ndarray, np.ndarray]]
                    ) -> None:
    """A noise annotation (IPF >= 2.90 layout): range vectors and azimuth blocks.

    ``azimuth_blocks``: (first line, last line, first sample, last sample, lines, lut).
    """
    n = pixels.size
    rng = "".join(
        f"<noiseRangeVector><azimuthTime>{t}</azimuthTime><line>{int(li)}</line>"
        f'<pixel count="{n}">{_vec(pixels, "{:d}")}</pixel>'
        f'<noiseRangeLut count="{n}">{_vec(noise_range[k])}</noiseRangeLut></noiseRangeVector>'
        for k, (t, li) in enumerate(zip(times, lines, strict=True))
    )
    az = "".join(
        f"<noiseAzimuthVector><swath>IW{k + 1}</swath><firstAzimuthLine>{fl}</firstAzimuthLine>"
        f"<firstRangeSample>{fs}</firstRangeSample><lastAzimuthLine>{ll}</lastAzimuthLine>"
        f"<lastRangeSample>{ls}</lastRangeSample>"
        f'<line count="{bl.size}">{_vec(bl, "{:d}")}</line>'
        f'<noiseAzimuthLut count="{bv.size}">{_vec(bv)}</noiseAzimuthLut></noiseAzimuthVector>'
        for k, (fl, ll, fs, ls, bl, bv) in enumerate(azimuth_blocks)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<noise>' + _header(pol, times[0], times[-1])
        + f'<noiseRangeVectorList count="{len(times)}">{rng}</noiseRangeVectorList>'
        + f'<noiseAzimuthVectorList count="{len(azimuth_blocks)}">{az}</noiseAzimuthVectorList>'
        + "</noise>\n"
    )


# --- the real sample with known LUTs -------------------------------------------------------

SAMPLE_LINES, SAMPLE_SAMPLES = 16685, 25788


def sample_sigma(line: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """The sigmaNought amplitude written into the sample's calibration LUT."""
    return 400.0 + 0.01 * pixel + 0.002 * line


def sample_beta(line: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """The betaNought amplitude written into the sample's calibration LUT."""
    return 237.0 + 0.0 * pixel + 0.0 * line


def sample_noise_range(line: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """The range noise LUT (DN²) written into the sample's noise file."""
    return 0.2 + 1e-5 * pixel + 0.0 * line


#: Azimuth noise scaling per sub-swath block: samples < 10000 x1.0, the rest x1.5.
SAMPLE_AZ_SPLIT, SAMPLE_AZ_SCALE = 10000, 1.5


def sample_product(folder: Path, measurement: Path | None = None, drop: tuple[str, ...] = ()
                   ) -> Path:
    """The real sample as a SAFE folder with written LUTs; returns the SAFE path.

    ``measurement`` replaces both polarisations' rasters (default: the real VV
    raster, all DN = 1, linked for VV and VH). ``drop`` names files to leave out
    (e.g. ``"annotation-vh"``).
    """
    sample = sample_safe()
    safe = folder / SAMPLE_NAME
    (safe / "annotation" / "calibration").mkdir(parents=True)
    (safe / "measurement").mkdir()
    (safe / "manifest.safe").symlink_to(sample / "manifest.safe")
    meas = measurement or sample / "measurement" / f"{NAMES['vv']}.tiff"
    lines = np.array([0, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 16684])
    pixels = np.arange(0, SAMPLE_SAMPLES + 40, 40).clip(max=SAMPLE_SAMPLES - 1)
    pixels = np.unique(pixels)
    ll, pp = np.meshgrid(lines.astype(float), pixels.astype(float), indexing="ij")
    t0 = np.datetime64("2021-04-01T05:26:23.794457")
    times = [_fmt_time(t0 + np.timedelta64(int(li * 1498.376640333055), "us")) for li in lines]
    for pol, name in NAMES.items():
        if f"annotation-{pol}" not in drop:
            (safe / "annotation" / f"{name}.xml").symlink_to(sample / "annotation" / f"{name}.xml")
        if f"measurement-{pol}" not in drop:
            (safe / "measurement" / f"{name}.tiff").symlink_to(meas)
        cal = safe / "annotation" / "calibration"
        write_calibration_xml(cal / f"calibration-{name}.xml", pol, times, lines, pixels,
                              sample_sigma(ll, pp), sample_beta(ll, pp),
                              sample_beta(ll, pp) / 1.3)
        blocks = [
            (0, SAMPLE_LINES - 1, 0, SAMPLE_AZ_SPLIT - 1, np.array([0, SAMPLE_LINES - 1]),
             np.array([1.0, 1.0])),
            (0, SAMPLE_LINES - 1, SAMPLE_AZ_SPLIT, SAMPLE_SAMPLES - 1,
             np.array([0, SAMPLE_LINES - 1]), np.array([SAMPLE_AZ_SCALE, SAMPLE_AZ_SCALE])),
        ]
        write_noise_xml(cal / f"noise-{name}.xml", pol, times, lines, pixels,
                        sample_noise_range(ll, pp), blocks)
    return safe


def write_sparse_measurement(path: Path, patches: list[tuple[int, int, np.ndarray]]) -> Path:
    """A uint16 raster of the sample's full size with only ``patches`` (row, col, data) written.

    Unwritten tiles stay sparse (read as 0 = no data), so the file is tiny.
    """
    with rasterio.open(path, "w", driver="GTiff", width=SAMPLE_SAMPLES, height=SAMPLE_LINES,
                       count=1, dtype="uint16", tiled=True, blockxsize=512, blockysize=512,
                       compress="deflate", sparse_ok=True, crs="EPSG:4326",
                       transform=from_origin(0, 0, 1e-5, 1e-5)) as dst:
        for row, col, data in patches:
            dst.write(data.astype(np.uint16), 1,
                      window=((row, row + data.shape[0]), (col, col + data.shape[1])))
    return path


# --- geometry of the synthetic orbit ---------------------------------------------------------


@dataclass(frozen=True)
class CircularOrbit:
    """A circular orbit (ECEF at t = seconds from the reference time) right-looking at a target."""

    radius: float
    inclination: float
    raan: float
    u0: float

    def position(self, t: np.ndarray) -> np.ndarray:
        """(n, 3) ECEF positions."""
        t = np.asarray(t, dtype=np.float64)
        u = self.u0 + np.sqrt(GM / self.radius**3) * t
        ci, si = np.cos(self.inclination), np.sin(self.inclination)
        co, so = np.cos(self.raan), np.sin(self.raan)
        x = self.radius * (co * np.cos(u) - so * np.sin(u) * ci)
        y = self.radius * (so * np.cos(u) + co * np.sin(u) * ci)
        z = self.radius * np.sin(u) * si
        th = OMEGA_EARTH * t
        return np.stack([np.cos(th) * x + np.sin(th) * y, -np.sin(th) * x + np.cos(th) * y, z],
                        axis=-1)

    def velocity(self, t: np.ndarray) -> np.ndarray:
        """(n, 3) ECEF velocities (central differences)."""
        h = 1e-3
        return (self.position(np.asarray(t) + h) - self.position(np.asarray(t) - h)) / (2 * h)


def make_orbit(lon: float, lat: float, direction: str) -> CircularOrbit:
    """An S1-like orbit (693 km, 98.18 deg) that sees (lon, lat) right-looking at ~37 deg."""
    inc = np.deg2rad(98.18)
    s = np.clip(np.sin(np.deg2rad(lat)) / np.sin(inc), -1, 1)
    u0 = np.arcsin(s) if direction == "ascending" else np.pi - np.arcsin(s)
    dlon = 445e3 / (111.32e3 * np.cos(np.deg2rad(lat)))
    sub_lon = np.deg2rad(lon - dlon if direction == "ascending" else lon + dlon)
    raan = sub_lon - np.arctan2(np.sin(u0) * np.cos(inc), np.cos(u0))
    return CircularOrbit(7071e3, float(inc), float(raan), float(u0))


def forward_geocode(pos: np.ndarray, vel: np.ndarray, slant: np.ndarray, height: float
                    ) -> np.ndarray:
    """Ground points (n, 3) at ``height`` on the right of the track at slant range ``slant``."""
    vhat = vel / np.linalg.norm(vel, axis=-1, keepdims=True)
    down = -(pos - np.sum(pos * vhat, axis=-1, keepdims=True) * vhat)
    down /= np.linalg.norm(down, axis=-1, keepdims=True)
    right = np.cross(down, vhat)
    a2, b2 = (WGS84_A + height) ** 2, (WGS84_B + height) ** 2

    def g(beta: np.ndarray) -> np.ndarray:
        x = pos + slant[..., None] * (np.cos(beta)[..., None] * down
                                      + np.sin(beta)[..., None] * right)
        return (x[..., 0] ** 2 + x[..., 1] ** 2) / a2 + x[..., 2] ** 2 / b2 - 1.0

    beta = np.full(slant.shape, np.deg2rad(33.0))
    for _ in range(30):
        d = 1e-7
        step = g(beta) / ((g(beta + d) - g(beta - d)) / (2 * d))
        beta = beta - step
        if np.max(np.abs(step)) < 1e-12:
            break
    return pos + slant[..., None] * (np.cos(beta)[..., None] * down
                                     + np.sin(beta)[..., None] * right)


def _incidence(points: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Ellipsoid incidence angle (rad) at ground points seen from ``pos``."""
    lon, lat, _ = Transformer.from_crs(4978, 4979, always_xy=True).transform(
        points[..., 0], points[..., 1], points[..., 2])
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    normal = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    look = points - pos
    look /= np.linalg.norm(look, axis=-1, keepdims=True)
    return np.arccos(np.clip(-np.sum(look * normal, axis=-1), -1, 1))


# --- the demo-world product ------------------------------------------------------------------

#: Ground (ellipsoidal) height of the demo world in the GRD products and the test DEM.
DEMO_HEIGHT = 100.0
#: Calibration constant of beta0 (as in real IW GRDH products) and thermal noise (DN²).
DEMO_BETA_LUT, DEMO_NOISE = 237.0, 50.0
#: Image size of the demo products (lines, samples) and border-noise width (samples/lines).
DEMO_SHAPE, DEMO_BORDER = (260, 260), 12


def write_flat_dem(path: Path, bounds: tuple[float, float, float, float],
                   height: float = DEMO_HEIGHT) -> Path:
    """A constant-height DEM in EPSG:4326 (0.0003 deg steps) covering ``bounds`` (w, s, e, n)."""
    w, s, e, n = bounds
    res = 0.0003
    width, rows = int((e - w) / res) + 3, int((n - s) / res) + 3
    with rasterio.open(path, "w", driver="GTiff", width=width, height=rows, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(w - res, n + res, res, res), nodata=-9999) as dst:
        dst.write(np.full((rows, width), height, np.float32), 1)
    return path


def _sample_raster(path: str, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    with rasterio.open(path) as src:
        data = src.read(1)
        inv = ~src.transform
        col, row = inv * (lon, lat)
    r = np.floor(row).astype(int)
    c = np.floor(col).astype(int)
    ok = (r >= 0) & (r < data.shape[0]) & (c >= 0) & (c < data.shape[1])
    out = np.full(lon.shape, np.nan, np.float32)
    out[ok] = data[r[ok], c[ok]]
    return out


def demo_grd_product(folder: Path, item: pystac.Item, lon: float, lat: float) -> pystac.Item:
    """A GRD-like SAFE product of a demo S1 acquisition centred on (lon, lat); its STAC item.

    The item is in collection ``sentinel-1-grd`` with a ``safe_manifest`` asset.
    """
    import xarray as xr
    from sarsen import geocoding
    from sarsen.orbit import OrbitPolyfitInterpolator

    direction = item.properties["sat:orbit_state"]
    when = np.datetime64(item.datetime.replace(tzinfo=None), "ns")
    orbit = make_orbit(lon, lat, direction)
    sv_t = np.arange(-60.0, 61.0, 10.0)
    sv_pos, sv_vel = orbit.position(sv_t), orbit.velocity(sv_t)
    sv_times = when + (sv_t * 1e9).astype("timedelta64[ns]")
    # zero-Doppler time and slant range of the target
    target = np.array(Transformer.from_crs(4979, 4978, always_xy=True).transform(
        lon, lat, DEMO_HEIGHT))
    pos_da = xr.DataArray(sv_pos.T, dims=("axis", "azimuth_time"),
                          coords={"azimuth_time": sv_times, "axis": [0, 1, 2]})
    interp = OrbitPolyfitInterpolator.from_position(pos_da)
    acq = geocoding.backward_geocode(
        xr.DataArray(target, dims="axis", coords={"axis": [0, 1, 2]}), interp, 0.0)
    t_c = (acq["azimuth_time"].values - when) / np.timedelta64(1, "s")
    r_c = float(np.sqrt((acq["dem_distance"] ** 2).sum()))
    n_lines, n_samples = DEMO_SHAPE
    spacing, az_dt = 10.0, 10.0 / 6760.0
    # ground range along the surface at the centre time: srgr / grsr polynomials
    p_c, v_c = orbit.position(np.array([t_c]))[0], orbit.velocity(np.array([t_c]))[0]
    probe = np.arange(-2000.0, 2000.0, 5.0) + r_c
    pts = forward_geocode(np.broadcast_to(p_c, (probe.size, 3)),
                          np.broadcast_to(v_c, (probe.size, 3)), probe, DEMO_HEIGHT)
    dist = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    centre = float(np.interp(r_c, probe, dist))
    ground = dist - (centre - spacing * (n_samples - 1) / 2)  # target at the image centre
    r_near = float(np.interp(0.0, ground, probe))
    srgr = np.polynomial.polynomial.polyfit(probe - r_near, ground, 5)
    grsr = np.polynomial.polynomial.polyfit(ground, probe, 5)
    t_first = t_c - az_dt * (n_lines - 1) / 2

    def geolocate(line: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, np.ndarray]:
        t = t_first + line * az_dt
        slant = np.polynomial.polynomial.polyval(pixel * spacing, grsr)
        pos, vel = orbit.position(t.ravel()), orbit.velocity(t.ravel())
        x = forward_geocode(pos, vel, slant.ravel(), DEMO_HEIGHT)
        return x.reshape(*line.shape, 3), _incidence(x, pos).reshape(line.shape), slant, t

    # measurement
    ll, pp = np.meshgrid(np.arange(n_lines, dtype=float), np.arange(n_samples, dtype=float),
                         indexing="ij")
    xyz, inc, _, _ = geolocate(ll, pp)
    glon, glat, _ = Transformer.from_crs(4978, 4979, always_xy=True).transform(
        xyz[..., 0], xyz[..., 1], xyz[..., 2])
    name = item.id
    safe = folder / f"{name}.SAFE"
    (safe / "annotation" / "calibration").mkdir(parents=True)
    (safe / "measurement").mkdir()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    start, stop = (_fmt_time(when + np.timedelta64(int(s * 1e9), "ns"))
                   for s in (t_first, t_first + az_dt * (n_lines - 1)))
    cal_lines = np.unique(np.r_[np.arange(0, n_lines, 50), n_lines - 1])
    cal_pixels = np.unique(np.r_[np.arange(0, n_samples, 40), n_samples - 1])
    cl, cp = np.meshgrid(cal_lines.astype(float), cal_pixels.astype(float), indexing="ij")
    _, cinc, _, _ = geolocate(cl, cp)
    cal_times = [_fmt_time(when + np.timedelta64(int((t_first + li * az_dt) * 1e9), "ns"))
                 for li in cal_lines]
    beta_lut = np.full(cl.shape, DEMO_BETA_LUT)
    for pol in ("vv", "vh"):
        gamma0 = _sample_raster(item.assets[pol].get_absolute_href() or "", glon, glat)
        beta0 = gamma0 * np.cos(inc) / np.sin(inc)
        dn = np.sqrt(beta0 * DEMO_BETA_LUT**2 + DEMO_NOISE)
        dn = np.where(np.isfinite(dn), np.round(dn), 0)
        below = np.round(np.sqrt(0.5 * DEMO_NOISE * rng.uniform(0.2, 1.0, dn.shape)))
        edge = np.zeros(dn.shape, bool)
        b = DEMO_BORDER
        edge[:, :b] = edge[:, -b:] = edge[:5, :] = edge[-5:, :] = True
        dn[edge] = below[edge]
        dn[:, :3] = 0
        fname = NAMES[pol]
        with warnings.catch_warnings():  # real GRD rasters carry GCPs; these carry none
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(safe / "measurement" / f"{fname}.tiff", "w", driver="GTiff",
                               width=n_samples, height=n_lines, count=1, dtype="uint16") as dst:
                dst.write(dn.astype(np.uint16), 1)
        write_calibration_xml(
            safe / "annotation" / "calibration" / f"calibration-{fname}.xml", pol, cal_times,
            cal_lines, cal_pixels, DEMO_BETA_LUT / np.sqrt(np.sin(cinc)), beta_lut,
            DEMO_BETA_LUT / np.sqrt(np.tan(cinc)))
        write_noise_xml(
            safe / "annotation" / "calibration" / f"noise-{fname}.xml", pol, cal_times,
            cal_lines, cal_pixels, np.full(cl.shape, DEMO_NOISE),
            [(0, n_lines - 1, 0, n_samples - 1, np.array([0, n_lines - 1]),
              np.array([1.0, 1.0]))])
        _write_annotation(safe / "annotation" / f"{fname}.xml", pol, direction, when,
                          (sv_times, sv_pos, sv_vel), start, stop, az_dt, r_near, srgr, grsr,
                          geolocate, float(np.rad2deg(inc[n_lines // 2, n_samples // 2])))
    corners = [(0, 0), (0, n_samples - 1), (n_lines - 1, n_samples - 1), (n_lines - 1, 0)]
    coords = " ".join(f"{glat[r, c]:.6f},{glon[r, c]:.6f}" for r, c in corners)
    _write_manifest(safe / "manifest.safe", item, direction, start, stop, coords)
    grd = pystac.Item(name, item.geometry, item.bbox, item.datetime,
                      {k: v for k, v in item.properties.items()
                       if k.startswith(("sat:", "sar:", "platform"))},
                      collection="sentinel-1-grd")
    grd.add_asset("safe_manifest", pystac.Asset(str(safe / "manifest.safe"),
                                                media_type="application/xml"))
    return grd


def _set(root: ET.Element, path: str, value: str) -> None:
    elem = root.find(path)
    assert elem is not None, path
    elem.text = value


def _replace_list(root: ET.Element, path: str, children: list[ET.Element]) -> None:
    parent = root.find(path)
    assert parent is not None, path
    for child in list(parent):
        parent.remove(child)
    parent.extend(children)
    parent.set("count", str(len(children)))


def _elem(tag: str, fields: dict[str, object]) -> ET.Element:
    out = ET.Element(tag)
    for key, val in fields.items():
        if isinstance(val, ET.Element):
            out.append(val)
        else:
            ET.SubElement(out, key).text = str(val)
    return out


def _write_annotation(path: Path, pol: str, direction: str, when: np.datetime64,
                      state: tuple[np.ndarray, np.ndarray, np.ndarray], start: str, stop: str,
                      az_dt: float, r_near: float, srgr: np.ndarray, grsr: np.ndarray,
                      geolocate: object, mid_incidence: float) -> None:
    root = ET.parse(sample_safe() / "annotation" / f"{NAMES[pol]}.xml").getroot()
    for tag, val in (("startTime", start), ("stopTime", stop)):
        _set(root, f"adsHeader/{tag}", val)
    _set(root, "generalAnnotation/productInformation/pass", direction.capitalize())
    times, pos, vel = state
    orbits = []
    for t, p, v in zip(times, pos, vel, strict=True):
        o = ET.Element("orbit")
        ET.SubElement(o, "time").text = _fmt_time(t)
        ET.SubElement(o, "frame").text = "Earth Fixed"
        for tag, vec in (("position", p), ("velocity", v)):
            sub = ET.SubElement(o, tag)
            for axis, val in zip("xyz", vec, strict=True):
                ET.SubElement(sub, axis).text = f"{val:.9e}"
        orbits.append(o)
    _replace_list(root, "generalAnnotation/orbitList", orbits)
    for lst in ("antennaPattern/antennaPatternList", "dopplerCentroid/dcEstimateList",
                "generalAnnotation/attitudeList"):
        _replace_list(root, lst, [])
    info = "imageAnnotation/imageInformation/"
    n_lines, n_samples = DEMO_SHAPE
    for tag, val in (("productFirstLineUtcTime", start), ("productLastLineUtcTime", stop),
                     ("slantRangeTime", f"{2 * r_near / C:.15e}"),
                     ("numberOfSamples", str(n_samples)), ("numberOfLines", str(n_lines)),
                     ("azimuthTimeInterval", f"{az_dt:.15e}"),
                     ("incidenceAngleMidSwath", f"{mid_incidence:.9e}")):
        _set(root, info + tag, val)
    conv = []
    t0 = np.datetime64(start)
    for t in (t0 - np.timedelta64(1, "s"), np.datetime64(stop) + np.timedelta64(1, "s")):
        conv.append(_elem("coordinateConversion", {
            "azimuthTime": _fmt_time(t), "slantRangeTime": f"{2 * r_near / C:.15e}",
            "sr0": f"{r_near:.9e}", "srgrCoefficients": None, "gr0": "0", "grsrCoefficients": None,
        }))
        for tag, coef in (("srgrCoefficients", srgr), ("grsrCoefficients", grsr)):
            elem = conv[-1].find(tag)
            assert elem is not None
            elem.text = _vec(coef, "{:.15e}")
            elem.set("count", str(coef.size))
    _replace_list(root, "coordinateConversion/coordinateConversionList", conv)
    gl = np.linspace(0, n_lines - 1, 6).round()
    gp = np.linspace(0, n_samples - 1, 6).round()
    ll, pp = np.meshgrid(gl, gp, indexing="ij")
    xyz, inc, slant, t = geolocate(ll, pp)  # type: ignore[operator]
    lon, lat, h = Transformer.from_crs(4978, 4979, always_xy=True).transform(
        xyz[..., 0], xyz[..., 1], xyz[..., 2])
    points = []
    for idx in np.ndindex(ll.shape):
        points.append(_elem("geolocationGridPoint", {
            "azimuthTime": _fmt_time(when + np.timedelta64(int(t.reshape(ll.shape)[idx] * 1e9),
                                                           "ns")),
            "slantRangeTime": f"{2 * slant[idx] / C:.15e}", "line": int(ll[idx]),
            "pixel": int(pp[idx]), "latitude": f"{lat[idx]:.12e}",
            "longitude": f"{lon[idx]:.12e}", "height": f"{h[idx]:.6e}",
            "incidenceAngle": f"{np.rad2deg(inc[idx]):.9e}",
            "elevationAngle": f"{np.rad2deg(inc[idx]) - 3.5:.9e}",
        }))
    _replace_list(root, "geolocationGrid/geolocationGridPointList", points)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def _write_manifest(path: Path, item: pystac.Item, direction: str, start: str, stop: str,
                    coordinates: str) -> None:
    text = (sample_safe() / "manifest.safe").read_text()
    rel = item.properties.get("sat:relative_orbit", 1)
    absolute = item.properties.get("sat:absolute_orbit") or 1
    number = str(item.properties.get("platform", "sentinel-1a"))[-1].upper()
    subs = [
        (r"<s1:pass>\w+</s1:pass>", f"<s1:pass>{direction.upper()}</s1:pass>"),
        (r'(<safe:relativeOrbitNumber type="\w+">)\d+', rf"\g<1>{rel}"),
        (r'(<safe:orbitNumber type="\w+">)\d+', rf"\g<1>{absolute}"),
        (r"<safe:startTime>[^<]+", f"<safe:startTime>{start}"),
        (r"<safe:stopTime>[^<]+", f"<safe:stopTime>{stop}"),
        (r"<safe:number>\w</safe:number>", f"<safe:number>{number}</safe:number>"),
        (r"<gml:coordinates>[^<]+", f"<gml:coordinates>{coordinates}"),
    ]
    for pattern, repl in subs:
        text = re.sub(pattern, repl, text)
    path.write_text(text)
