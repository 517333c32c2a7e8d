"""The time grid and AOI validation."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.aoi import make_geobox, read_aoi
from pipeline.errors import InputError
from pipeline.timegrid import EPOCH, TimeGrid


def test_bins_anchored_to_epoch_and_shared_between_periods():
    a = TimeGrid.covering("2023-04-01", "2023-10-31")
    b = TimeGrid.covering("2023-06-03", "2023-12-31")
    assert a.count == 36 and a.iso_dates()[0] == "2023-04-01"
    shared = set(a.iso_dates()) & set(b.iso_dates())
    assert shared and all((dt.date.fromisoformat(d) - EPOCH).days % 6 == 0 for d in shared)


@given(st.dates(dt.date(2015, 1, 1), dt.date(2030, 1, 1)), st.integers(0, 400))
def test_every_day_falls_in_exactly_its_bin(start, span):
    end = start + dt.timedelta(days=span)
    g = TimeGrid.covering(start, end)
    days = [start + dt.timedelta(days=k) for k in range(0, span + 1, max(1, span // 7 or 1))]
    idx = g.bin_index([d.isoformat() for d in days])
    assert (idx >= 0).all()
    for d, i in zip(days, idx, strict=True):
        first = g.starts[i].date()
        assert first <= d < first + dt.timedelta(days=6)


def test_end_before_start_raises():
    with pytest.raises(ValueError):
        TimeGrid.covering("2023-05-01", "2023-04-01")


def test_example_aoi_grid_is_utm_10m_aligned():
    aoi = read_aoi("examples/lithuania.geojson")
    gb = make_geobox(aoi)
    assert gb.crs.epsg == 32634
    assert gb.resolution.x == 10 and gb.resolution.y == -10
    assert gb.affine.c % 10 == 0 and gb.affine.f % 10 == 0


def _write(tmp_path, obj, name="a.geojson"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _poly(coords):
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
                                                              "coordinates": [coords]}}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ({"foo": 1}, "not a GeoJSON object"),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [23, 55]}},
         "no Polygon"),
        (_poly([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), "invalid geometry"),
        (_poly([[500000, 6000000], [501000, 6000000], [501000, 6001000], [500000, 6000000]]),
         "outside the lon/lat range"),
        (_poly([[20, 50], [25, 50], [25, 55], [20, 50]]), "exceeds the limit"),
        ({"type": "Polygon", "coordinates": []}, "is empty"),
    ],
)
def test_bad_aoi_one_line_errors(tmp_path, content, fragment):
    with pytest.raises(InputError) as exc:
        read_aoi(_write(tmp_path, content))
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_aoi_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_aoi(tmp_path / "nope.geojson")
