"""Sentinel-2 L2A adapter: band names, offsets, the SCL cloud mask and NDVI.

Sensor facts live here as data; ingestion never branches on the sensor.

SCL classes kept as clear: 4 (vegetation), 5 (not vegetated) and 6 (water).
Dropped: 0 no data, 1 saturated/defective, 2 dark area / topographic shadow,
3 cloud shadow, 7 unclassified (mostly cloud edges in growing season),
8/9 cloud medium/high probability, 10 thin cirrus, 11 snow. Keeping 7 would
add observations but lets cloud edges in; haze SCL misses still passes the mask
and biases NDVI low (the demo world simulates exactly that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pystac

#: SCL classes treated as a clear observation.
SCL_CLEAR: tuple[int, ...] = (4, 5, 6)
#: BOA_ADD_OFFSET of processing baseline >= 04.00, in digital numbers.
BOA_ADD_OFFSET_DN = -1000
QUANTIFICATION = 10000.0


@dataclass(frozen=True)
class BandSpec:
    """A canonical band and the asset keys different catalogues use for it.

    Attributes:
        name: canonical name used inside the pipeline.
        asset_keys: candidate STAC asset keys, first match wins.
    """

    name: str
    asset_keys: tuple[str, ...]


@dataclass(frozen=True)
class Sentinel2:
    """Sentinel-2 L2A as the pipeline reads it."""

    red: BandSpec = BandSpec("B04", ("B04_10m", "B04", "red"))
    nir: BandSpec = BandSpec("B08", ("B08_10m", "B08", "nir"))
    scl: BandSpec = BandSpec("SCL", ("SCL_20m", "SCL", "scl"))
    clear_classes: tuple[int, ...] = field(default=SCL_CLEAR)

    @property
    def bands(self) -> tuple[BandSpec, ...]:
        """The bands read for every scene."""
        return (self.red, self.nir, self.scl)


S2 = Sentinel2()


def asset_key(item: pystac.Item, band: BandSpec) -> str:
    """The item's asset key for a canonical band; KeyError names what was looked for."""
    for key in band.asset_keys:
        if key in item.assets:
            return key
    raise KeyError(f"{item.id}: none of the assets {band.asset_keys} for band {band.name}")


@dataclass(frozen=True)
class Scaling:
    """How the digital numbers of a band asset become surface reflectance.

    Attributes:
        scale: reflectance per digital number (1e-4 for Sentinel-2 L2A).
        offset: reflectance added after scaling (-0.1 = BOA_ADD_OFFSET -1000; 0 = none).
        source: the metadata that decided the offset (goes to run.json).
        baseline: processing baseline (``"05.00"``), None where the item names none.
    """

    scale: float
    offset: float
    source: str
    baseline: str | None = None


_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


def processing_baseline(item: pystac.Item) -> str | None:
    """The item's processing baseline as ``"05.00"``; None where nothing names one.

    From ``processing:version`` (CDSE, STAC 1.1), ``s2:processing_baseline`` (Earth
    Search, Planetary Computer), else the ``_Nxxyy_`` of the product name (item id or
    ``s2:product_uri``). Never from the acquisition date: reprocessed collections give
    old dates new baselines (CDSE serves 2020 scenes as N0500).
    """
    props = item.properties
    for key in ("processing:version", "s2:processing_baseline"):
        value = props.get(key)
        if value not in (None, ""):
            return str(value)
    for name in (str(props.get("s2:product_uri", "")), item.id):
        m = _BASELINE_IN_NAME.search(name)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


def _baseline_has_offset(baseline: str | None) -> bool:
    try:
        return baseline is not None and float(baseline) >= 4.0
    except ValueError:
        return False


def _declared(asset: pystac.Asset) -> tuple[dict[str, Any], str] | None:
    """The asset's scale/offset fields and where they were found, if it declares any."""
    extra = asset.extra_fields
    if "raster:scale" in extra or "raster:offset" in extra:  # STAC 1.1 / raster v2, on the asset
        return {"scale": extra.get("raster:scale"), "offset": extra.get("raster:offset")}, (
            "raster:offset"
        )
    for field_name, prefix in (("bands", "raster:"), ("raster:bands", "")):
        bands: Any = extra.get(field_name)
        if bands and isinstance(bands, list) and isinstance(bands[0], dict):
            b = bands[0]
            if f"{prefix}scale" in b or f"{prefix}offset" in b:
                return {"scale": b.get(f"{prefix}scale"), "offset": b.get(f"{prefix}offset")}, (
                    f"{field_name}[0].{prefix}offset"
                )
    return None


def reflectance_scaling(item: pystac.Item, key: str) -> Scaling:
    """The scale and offset turning an asset's digital numbers into surface reflectance.

    One rule, first match wins, so the offset is taken from one place only and never
    subtracted twice:

    1. ``earthsearch:boa_offset_applied`` on the item (Earth Search ``sentinel-2-l2a``):
       true = the DNs carry no offset, whatever ``raster:bands`` says (Earth Search
       declares offset -0.1 there *and* sets the flag; its maintainers say the flag is
       the truth); false = the offset below is used.
    2. the asset's own ``raster:scale``/``raster:offset`` (STAC 1.1, raster v2: CDSE),
       then the same fields inside ``bands[0]``, then ``raster:bands[0]`` ``scale``/
       ``offset`` (STAC 1.0, raster v1). Harmonised values (Sentinel Hub's
       ``harmonizeValues``; openEO) are declared this way with offset 0.
    3. ``s2:boa_add_offset`` on the item (DN, e.g. -1000).
    4. the processing baseline (:func:`processing_baseline`): >= 04.00 means
       BOA_ADD_OFFSET -1000, older baselines have none.

    The scale is the declared one where a rule declares it, else 1e-4. The data check
    :func:`check_offset` may still overrule the result for a scene whose pixels
    contradict it.
    """
    asset = item.assets[key]
    props = item.properties
    baseline = processing_baseline(item)
    declared = _declared(asset)
    scale = 1.0 / QUANTIFICATION
    if declared and declared[0]["scale"] is not None:
        scale = float(declared[0]["scale"])
    flag = props.get("earthsearch:boa_offset_applied")
    if flag is True:
        return Scaling(scale, 0.0, "earthsearch:boa_offset_applied", baseline)
    if declared and declared[0]["offset"] is not None:
        return Scaling(scale, float(declared[0]["offset"]), declared[1], baseline)
    if declared:  # a declared scale without an offset: no offset
        return Scaling(scale, 0.0, declared[1], baseline)
    if "s2:boa_add_offset" in props:
        return Scaling(scale, float(props["s2:boa_add_offset"]) / QUANTIFICATION,
                       "s2:boa_add_offset", baseline)
    if _baseline_has_offset(baseline):
        return Scaling(scale, BOA_ADD_OFFSET_DN / QUANTIFICATION,
                       f"processing baseline {baseline}", baseline)
    return Scaling(scale, 0.0, f"processing baseline {baseline}" if baseline else
                   "no offset declared, no processing baseline", baseline)


#: Share of valid land pixels whose reflectance may come out negative before a scene's
#: offset is doubted. Land (SCL 4, 5) is never darker than 0 in B04/B08 beyond noise,
#: so a large share means the DNs do not carry the offset being subtracted.
NEGATIVE_SHARE_MAX = 0.2
#: Share of vegetation pixels (SCL 4) with red below 0.1 under which DNs that are said
#: to carry no offset look like they still carry BOA_ADD_OFFSET (+1000): vegetation red
#: reflectance is 0.02-0.08, so without the offset nearly all such pixels are below 0.1.
OFFSET_KEPT_SHARE_MIN = 0.02
#: Fewest sampled pixels a verdict is drawn from.
MIN_CHECK_PIXELS = 50
LAND_CLASSES: tuple[int, ...] = (4, 5)
VEGETATION_CLASS = 4


@dataclass(frozen=True)
class OffsetCheck:
    """The data check of a scene's offset (goes to run.json, ``offset_check``).

    Attributes:
        scaling: the scaling to use (the rule's, or the one the data supports).
        land_pixels: sampled valid land pixels (SCL 4/5, B04 and B08 > 0).
        negative_share: share of them negative in B04 or B08 with the rule's offset.
        flag: why the rule's offset was overruled; None where the data agrees.
    """

    scaling: Scaling
    land_pixels: int
    negative_share: float | None
    flag: str | None = None

    def record(self) -> dict[str, Any]:
        """The run.json form."""
        out: dict[str, Any] = {"land_pixels": self.land_pixels,
                               "negative_share": self.negative_share}
        if self.flag:
            out["flag"] = self.flag
        return out


def check_offset(red: np.ndarray, nir: np.ndarray, scl: np.ndarray, rule: Scaling) -> OffsetCheck:
    """Test the rule's offset against a sample of the scene's pixels (pure).

    ``red``, ``nir``, ``scl`` are digital numbers on one (decimated) grid. Two ways the
    metadata can be wrong, both seen in real catalogs:

    * the DNs carry no offset but one is subtracted (offset applied twice, e.g. an
      Earth Search item with an offset in ``raster:bands`` whose DNs were already
      shifted): more than :data:`NEGATIVE_SHARE_MAX` of the valid land pixels come out
      negative in B04 or B08. The scene is flagged and read without the offset.
    * the DNs still carry BOA_ADD_OFFSET but the metadata says none (a baseline >= 04.00
      scene flagged as "offset applied"): fewer than :data:`OFFSET_KEPT_SHARE_MIN` of the
      vegetation pixels would be negative with the undeclared -1000. The scene is
      flagged and read with the offset.

    Policy: apply what the data supports and flag, rather than skip: a consistent
    DN distribution decides which of two metadata readings is true, and the scene's
    observations are as good as any other's once read right. Where too few land
    pixels are sampled (clouds, sea), the rule stands unflagged.
    """
    valid = (red > 0) & (nir > 0)
    land = valid & np.isin(scl, LAND_CLASSES)
    n_land = int(land.sum())
    if n_land < MIN_CHECK_PIXELS:
        return OffsetCheck(rule, n_land, None)

    def negative(band: np.ndarray, offset: float, where: np.ndarray) -> np.ndarray:
        return (band[where].astype(np.float64) * rule.scale + offset) < 0

    neg = negative(red, rule.offset, land) | negative(nir, rule.offset, land)
    share = round(float(neg.mean()), 4)
    if rule.offset < 0 and share > NEGATIVE_SHARE_MAX:
        return OffsetCheck(
            replace(rule, offset=0.0, source=f"data check (metadata: {rule.source})"),
            n_land, share,
            f"offset {rule.offset:g} from {rule.source} makes {share:.0%} of the valid land "
            "pixels negative: the DNs carry no offset (applied twice upstream?); read "
            "without it",
        )
    alt = BOA_ADD_OFFSET_DN / QUANTIFICATION
    veg = valid & (scl == VEGETATION_CLASS)
    if rule.offset == 0 and _baseline_has_offset(rule.baseline) and veg.sum() >= MIN_CHECK_PIXELS:
        kept = float(negative(red, alt, veg).mean())
        if kept < OFFSET_KEPT_SHARE_MIN:
            return OffsetCheck(
                replace(rule, offset=alt, source=f"data check (metadata: {rule.source})"),
                n_land, share,
                f"{rule.source} says no offset, but with baseline {rule.baseline}'s "
                f"{alt:g} only {kept:.1%} of the vegetation pixels would be negative "
                "(red DN >= 1000): the DNs still carry BOA_ADD_OFFSET; read with it",
            )
    return OffsetCheck(rule, n_land, share)


def compute_ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDVI from reflectances; NaN where the sum is not positive or inputs are NaN."""
    red = red.astype(np.float32)
    nir = nir.astype(np.float32)
    total = nir + red
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / total
    ok = (total > 0) & np.isfinite(ndvi)
    return np.where(ok, np.clip(ndvi, -1.0, 1.0), np.float32(np.nan)).astype(np.float32)


def clear_mask(scl: np.ndarray, classes: tuple[int, ...] = SCL_CLEAR) -> np.ndarray:
    """True where the scene classification marks a clear observation."""
    return np.isin(scl, np.asarray(classes, dtype=scl.dtype))
