"""Open a Sentinel-1 GRD product (SAFE folder) and read its annotations.

Everything the processor needs from a product comes through here, read with
xarray-sentinel: the manifest (pass, orbits, timing), per polarisation the
annotation (orbit state vectors, image timing, ground-range/slant-range
coordinate conversion, geolocation grid) and the calibration and noise LUT
files. Missing files, a measurement raster whose size differs from the
annotation (a truncated download) and unreadable XML raise :class:`GrdError`
with a one-line reason that ends up in ``run.json``.

The azimuth noise vectors are parsed here directly: xarray-sentinel keeps only
the first block of ``noiseAzimuthVectorList``, while an IW GRD product has one
block per sub-swath (and more where the swath changes along the track).
"""

from __future__ import annotations

import logging
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
import xarray_sentinel  # noqa: F401  (registers the "sentinel-1" xarray engine)
from shapely import wkt
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from xarray_sentinel import esa_safe

log = logging.getLogger(__name__)

#: Polarisations the pipeline reads (lower case, as the cube variables).
POLARISATIONS: tuple[str, ...] = ("vv", "vh")


class GrdError(Exception):
    """A GRD product that cannot be processed; the message is the skip reason."""


@dataclass(frozen=True)
class NoiseAzimuthBlock:
    """One block of the azimuth noise LUT: a rectangle of the image and its profile."""

    first_line: int
    """First image line the block covers."""
    last_line: int
    """Last image line (inclusive)."""
    first_sample: int
    """First image sample (range pixel) the block covers."""
    last_sample: int
    """Last image sample (inclusive)."""
    lines: np.ndarray
    """Lines at which the LUT is given."""
    values: np.ndarray
    """Azimuth noise scaling at ``lines`` (multiplies the range noise LUT)."""


@dataclass(frozen=True)
class Luts:
    """Calibration and noise LUTs of one polarisation, on their sparse (line, pixel) grids."""

    cal_lines: np.ndarray
    """Lines of the calibration vectors."""
    cal_pixels: np.ndarray
    """Pixels of the calibration vectors (shared by all vectors)."""
    sigma: np.ndarray
    """(lines, pixels) sigmaNought LUT (amplitude)."""
    beta: np.ndarray
    """(lines, pixels) betaNought LUT (amplitude)."""
    noise_lines: np.ndarray
    """Lines of the range noise vectors."""
    noise_pixels: np.ndarray
    """Pixels of the range noise vectors."""
    noise_range: np.ndarray
    """(lines, pixels) range noise LUT (power, DN²)."""
    noise_azimuth: tuple[NoiseAzimuthBlock, ...]
    """Azimuth noise blocks; empty for products before IPF 2.90 (scaling 1)."""


@dataclass(frozen=True)
class PolarisationFiles:
    """The four files of one polarisation inside the SAFE folder."""

    annotation: Path
    calibration: Path
    noise: Path
    measurement: Path


def _manifest_files(safe: Path) -> tuple[dict[str, Any], dict[str, PolarisationFiles]]:
    manifest = safe / "manifest.safe"
    if not manifest.is_file():
        raise GrdError(f"no manifest.safe in {safe.name}")
    try:
        attrs, files = esa_safe.parse_manifest_sentinel1(str(manifest))
    except (ET.ParseError, ValueError, KeyError) as exc:
        raise GrdError(f"manifest.safe unreadable ({type(exc).__name__}: {exc})") from None
    if attrs.get("product_type") != "GRD":
        raise GrdError(f"product type {attrs.get('product_type')!r} is not GRD")
    kinds = {
        "s1Level1ProductSchema": "annotation",
        "s1Level1CalibrationSchema": "calibration",
        "s1Level1NoiseSchema": "noise",
        "s1Level1MeasurementSchema": "measurement",
    }
    found: dict[str, dict[str, Path]] = {}
    for href, (rep_id, _, _swath, pol, _) in files.items():
        kind = kinds.get(rep_id)
        if kind is not None:
            found.setdefault(pol.lower(), {})[kind] = (safe / href).resolve()
    out: dict[str, PolarisationFiles] = {}
    for pol in POLARISATIONS:
        have = found.get(pol, {})
        missing = [k for k in kinds.values() if k not in have]
        if missing:
            raise GrdError(f"manifest lists no {pol.upper()} {', '.join(missing)} file")
        for kind, path in have.items():
            if not path.is_file():
                raise GrdError(f"missing {pol.upper()} {kind} file {path.relative_to(safe)}")
        out[pol] = PolarisationFiles(**have)
    return attrs, out


def _floats(elem: ET.Element | None) -> np.ndarray:
    text = elem.text if elem is not None and elem.text else ""
    return np.array(text.split(), dtype=np.float64)


def read_noise_azimuth(noise_xml: Path) -> tuple[NoiseAzimuthBlock, ...]:
    """All blocks of ``noiseAzimuthVectorList`` (empty tuple when the list is absent)."""
    root = ET.parse(noise_xml).getroot()
    blocks = []
    for vec in root.iterfind(".//noiseAzimuthVectorList/noiseAzimuthVector"):

        def _int(tag: str, vec: ET.Element = vec) -> int:
            return int(vec.findtext(tag, default="0"))

        blocks.append(
            NoiseAzimuthBlock(
                first_line=_int("firstAzimuthLine"),
                last_line=_int("lastAzimuthLine"),
                first_sample=_int("firstRangeSample"),
                last_sample=_int("lastRangeSample"),
                lines=_floats(vec.find("line")),
                values=_floats(vec.find("noiseAzimuthLut")),
            )
        )
    return tuple(blocks)


@dataclass(frozen=True)
class GrdProduct:
    """An opened GRD product: manifest facts, file paths and lazily read metadata.

    Attributes:
        safe: the ``.SAFE`` folder.
        attrs: manifest attributes as xarray-sentinel reports them (``pass``,
            ``relative_orbit_number``, ``orbit_number``, ``number``, ``start_time`` ...).
        files: per polarisation (``vv``, ``vh``) the annotation, LUT and measurement paths.
    """

    safe: Path
    attrs: dict[str, Any]
    files: dict[str, PolarisationFiles]

    @property
    def id(self) -> str:
        """Product name without ``.SAFE``."""
        return self.safe.name.removesuffix(".SAFE")

    @property
    def swath(self) -> str:
        """Swath group name (``IW`` or ``EW``)."""
        return str(self.attrs["swaths"][0]).upper()

    @property
    def orbit_state(self) -> str:
        """``ascending`` or ``descending``."""
        return str(self.attrs["pass"]).lower()

    def _open(self, pol: str, sub: str | None = None) -> xr.Dataset:
        group = f"{self.swath}/{pol.upper()}" + (f"/{sub}" if sub else "")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                return xr.open_dataset(str(self.safe), engine="sentinel-1", group=group)
        except (OSError, ValueError, KeyError, ET.ParseError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else ""
            raise GrdError(f"{group} unreadable ({type(exc).__name__}: {msg})") from None

    @cached_property
    def image(self) -> dict[str, Any]:
        """Image facts of the VV annotation (timing, spacing, size), shared by VH."""
        ds = self._open("vv")
        attrs = dict(ds.attrs)
        attrs["number_of_lines"] = int(ds.sizes["azimuth_time"])
        attrs["number_of_samples"] = int(ds.sizes["ground_range"])
        ds.close()
        return attrs

    @cached_property
    def orbit(self) -> xr.Dataset:
        """Orbit state vectors (``position``, ``velocity``; ECEF, metres)."""
        return self._open("vv", "orbit").load()

    @cached_property
    def gcp(self) -> xr.Dataset:
        """The annotation's geolocation grid (latitude, longitude, height by line/pixel)."""
        return self._open("vv", "gcp").load()

    @cached_property
    def coordinate_conversion(self) -> xr.Dataset:
        """Slant range to ground range polynomials along the track."""
        return self._open("vv", "coordinate_conversion").load()

    @cached_property
    def footprint(self) -> BaseGeometry:
        """Footprint polygon (EPSG:4326) from the manifest (the geolocation grid if absent)."""
        root = ET.parse(self.safe / "manifest.safe").getroot()
        text = root.findtext(".//{http://www.opengis.net/gml}coordinates")
        if text:
            pairs = [tuple(float(v) for v in p.split(",")) for p in text.split()]
            if len(pairs) >= 3:
                return Polygon([(lon, lat) for lat, lon in pairs])
        return wkt.loads(self.gcp.attrs["geospatial_bounds"])

    def luts(self, pol: str) -> Luts:
        """Calibration and noise LUTs of one polarisation."""
        cal = self._open(pol, "calibration").load()
        noise = self._open(pol, "noise_range").load()
        try:
            azimuth = read_noise_azimuth(self.files[pol].noise)
        except ET.ParseError as exc:
            raise GrdError(f"{pol.upper()} noise file unreadable ({exc})") from None
        return Luts(
            cal_lines=cal["line"].values.astype(np.float64),
            cal_pixels=cal["pixel"].values.astype(np.float64),
            sigma=cal["sigmaNought"].values.astype(np.float64),
            beta=cal["betaNought"].values.astype(np.float64),
            noise_lines=noise["line"].values.astype(np.float64),
            noise_pixels=noise["pixel"].values.astype(np.float64),
            noise_range=noise["noiseRangeLut"].values.astype(np.float64),
            noise_azimuth=azimuth,
        )

    def check_measurements(self) -> None:
        """GrdError unless every measurement raster opens with the annotated size."""
        for pol, files in self.files.items():
            # read from the XML: xarray-sentinel cannot open a group whose raster mismatches
            try:
                info = ET.parse(files.annotation).getroot().find(".//imageInformation")
                assert info is not None
                lines = int(info.findtext("numberOfLines", ""))
                samples = int(info.findtext("numberOfSamples", ""))
            except (ET.ParseError, AssertionError, ValueError) as exc:
                raise GrdError(f"{pol.upper()} annotation unreadable ({exc})") from None
            try:
                with warnings.catch_warnings():
                    # GRD rasters are georeferenced by GCPs or not at all: not a problem here
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    src = rasterio.open(files.measurement)
                with src:
                    shape = (src.height, src.width)
            except rasterio.errors.RasterioIOError as exc:
                msg = str(exc).splitlines()[0]
                raise GrdError(f"{pol.upper()} measurement unreadable ({msg})") from None
            if shape != (lines, samples):
                raise GrdError(
                    f"{pol.upper()} measurement is {shape[0]} x {shape[1]} pixels, the "
                    f"annotation says {lines} x {samples} (truncated product?)"
                )


def open_grd_product(safe: str | Path) -> GrdProduct:
    """Open a SAFE folder (or its ``manifest.safe``); GrdError with the reason if unusable."""
    path = Path(safe)
    if path.name == "manifest.safe":
        path = path.parent
    if path.suffix.lower() == ".zip":
        raise GrdError(f"zipped product {path.name}: unzip it (or use the EODATA folder)")
    if not path.is_dir():
        raise GrdError(f"product folder not found: {path}")
    attrs, files = _manifest_files(path)
    product = GrdProduct(safe=path, attrs=attrs, files=files)
    log.debug("opened %s (%s, orbit %s)", product.id, product.orbit_state,
              attrs.get("relative_orbit_number"))
    return product
