"""The one offset rule (:func:`pipeline.s2.reflectance_scaling`) and its data check.

Metadata shapes are those of the real items in ``tests/data/stac-items`` (CDSE STAC 1.1,
Planetary Computer STAC 1.0) and of Earth Search and Sentinel Hub as they declare them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest

from pipeline.s2 import (
    Scaling,
    check_offset,
    processing_baseline,
    reflectance_scaling,
)

ITEMS = Path(__file__).parent / "data" / "stac-items"


def _real(name: str) -> list[pystac.Item]:
    doc = json.loads((ITEMS / name).read_text())
    feats = doc["features"] if isinstance(doc, dict) else doc
    return [pystac.Item.from_dict(f) for f in feats]


def _item(props: dict[str, Any], asset: dict[str, Any], iid: str = "x") -> pystac.Item:
    item = pystac.Item(iid, None, None, pystac.utils.str_to_datetime("2023-05-01T10:00:00Z"),
                       props)
    item.add_asset("B04", pystac.Asset("B04.tif", extra_fields=asset))
    return item


def test_real_cdse_items_declare_the_offset_on_the_asset():
    for name, baseline in (("cdse_s2l2a_N0500_T36NYH.json", "05.00"),
                           ("cdse_s2l2a_N0512_T55WFR.json", "05.12")):
        (item,) = _real(name)
        for key in ("B04_10m", "B08_10m"):
            assert reflectance_scaling(item, key) == Scaling(1e-4, -0.1, "raster:offset",
                                                             baseline)


def test_real_cdse_2020_scene_has_the_reprocessed_baseline():
    (item,) = _real("cdse_s2l2a_N0500_T36NYH.json")
    assert item.datetime is not None and item.datetime.year == 2020
    assert processing_baseline(item) == "05.00"  # from processing:version, never the date
    del item.assets["B04_10m"].extra_fields["raster:offset"]
    del item.assets["B04_10m"].extra_fields["raster:scale"]
    assert reflectance_scaling(item, "B04_10m").offset == pytest.approx(-0.1)


def test_real_planetary_computer_items_use_the_baseline():
    for item in _real("pc_sentinel-2-l2a.json"):
        sc = reflectance_scaling(item, "B04")
        assert (sc.scale, sc.offset, sc.baseline) == (1e-4, -0.1, "05.10")
        assert sc.source == "processing baseline 05.10"


BAND_V1 = {"raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}


@pytest.mark.parametrize(
    ("props", "asset", "expected"),
    [
        # STAC 1.1 / raster v2 on the asset (CDSE)
        ({}, {"raster:scale": 0.0001, "raster:offset": -0.1}, (1e-4, -0.1, "raster:offset")),
        # STAC 1.1 raster fields inside bands
        ({}, {"bands": [{"name": "B04", "raster:scale": 0.0001, "raster:offset": -0.1}]},
         (1e-4, -0.1, "bands[0].raster:offset")),
        # STAC 1.0 raster:bands
        ({}, BAND_V1, (1e-4, -0.1, "raster:bands[0].offset")),
        # Earth Search sentinel-2-l2a: offset in raster:bands and the flag: the flag wins
        ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, BAND_V1,
         (1e-4, 0.0, "earthsearch:boa_offset_applied")),
        ({"earthsearch:boa_offset_applied": False}, BAND_V1,
         (1e-4, -0.1, "raster:bands[0].offset")),
        # Earth Search sentinel-2-c1-l2a: no flag, the offset in raster:bands
        ({"s2:processing_baseline": "05.10"}, BAND_V1, (1e-4, -0.1, "raster:bands[0].offset")),
        # Sentinel Hub harmonised values: declared with offset 0
        ({}, {"raster:bands": [{"scale": 0.0001, "offset": 0.0}]},
         (1e-4, 0.0, "raster:bands[0].offset")),
        ({"s2:boa_add_offset": -1000}, {}, (1e-4, -0.1, "s2:boa_add_offset")),
        ({"processing:version": "05.00"}, {}, (1e-4, -0.1, "processing baseline 05.00")),
        ({"s2:processing_baseline": "04.00"}, {}, (1e-4, -0.1, "processing baseline 04.00")),
        ({"s2:processing_baseline": "03.01"}, {}, (1e-4, 0.0, "processing baseline 03.01")),
        ({}, {}, (1e-4, 0.0, "no offset declared, no processing baseline")),
    ],
)
def test_offset_rule(props, asset, expected):
    sc = reflectance_scaling(_item(props, asset), "B04")
    assert (sc.scale, sc.offset, sc.source) == pytest.approx(expected)


def test_baseline_from_the_product_name_when_no_property_names_it():
    item = _item({}, {}, iid="S2A_MSIL2A_20220301T100000_N0400_R122_T33UXP_20220301T120000")
    assert processing_baseline(item) == "04.00"
    assert reflectance_scaling(item, "B04").offset == pytest.approx(-0.1)
    old = _item({"s2:product_uri": "S2B_MSIL2A_20190301T100000_N0211_R122_T33UXP.SAFE"}, {})
    assert reflectance_scaling(old, "B04").offset == 0.0


def _pixels(red_refl: float, nir_refl: float, dn_offset: int, cloudy: float = 0.0,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DNs of a 64 x 64 scene: reflectances +-20 % noise, ``dn_offset`` added to the DNs."""
    rng = np.random.default_rng(seed)
    red = red_refl * rng.uniform(0.8, 1.2, (64, 64)) * 1e4 + dn_offset
    nir = nir_refl * rng.uniform(0.8, 1.2, (64, 64)) * 1e4 + dn_offset
    scl = np.where(rng.uniform(size=(64, 64)) < cloudy, 9, 4).astype(np.uint8)
    scl[:, :8] = 5  # a strip of bare soil
    return red.round().astype(np.uint16), nir.round().astype(np.uint16), scl


RULE = Scaling(1e-4, -0.1, "raster:offset", "05.10")


def test_check_agrees_with_a_correct_offset():
    check = check_offset(*_pixels(0.04, 0.3, 1000), RULE)
    assert check.flag is None and check.scaling == RULE and check.negative_share == 0.0
    assert check.land_pixels == 64 * 64


def test_check_flags_a_double_offset_and_reads_without_it():
    """Offset already applied to the DNs, and declared again: vegetation red goes negative."""
    check = check_offset(*_pixels(0.04, 0.3, 0), RULE)
    assert check.flag and "applied twice" in check.flag
    assert check.negative_share is not None and check.negative_share > 0.8
    assert (check.scaling.scale, check.scaling.offset) == (1e-4, 0.0)
    assert check.record()["flag"] == check.flag


def test_check_flags_an_offset_said_applied_but_still_in_the_dns():
    rule = Scaling(1e-4, 0.0, "earthsearch:boa_offset_applied", "05.09")
    check = check_offset(*_pixels(0.04, 0.3, 1000), rule)
    assert check.flag and "still carry BOA_ADD_OFFSET" in check.flag
    assert check.scaling.offset == pytest.approx(-0.1)
    # the same DNs without the +1000 agree with the flag
    assert check_offset(*_pixels(0.04, 0.3, 0), rule).flag is None


def test_check_leaves_harmonised_values_and_old_baselines_alone():
    for rule in (Scaling(1e-4, 0.0, "raster:bands[0].offset", None),
                 Scaling(1e-4, 0.0, "processing baseline 02.14", "02.14")):
        # bright land (red 0.15) would pass the "offset still in" test; no baseline >= 4
        assert check_offset(*_pixels(0.15, 0.3, 0), rule).flag is None


def test_check_draws_no_verdict_from_a_cloudy_scene():
    red, nir, scl = _pixels(0.04, 0.3, 0, cloudy=1.0)
    scl[:, :6] = 5  # 384 land pixels: enough for a verdict
    assert check_offset(red, nir, scl, RULE).flag is not None
    scl[:, :] = 9
    scl[0, :40] = 4  # 40 land pixels: too few for a verdict
    check = check_offset(red, nir, scl, RULE)
    assert check.flag is None and check.negative_share is None and check.scaling == RULE
    assert check.land_pixels == 40
    red[:] = 0  # no data
    assert check_offset(red, nir, scl, RULE).land_pixels == 0
