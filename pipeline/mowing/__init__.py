"""Grassland mowing detection on (gap-filled) NDVI series.

:mod:`.detect` holds the detectors (numpy, one series per row), :mod:`.series`
the 6-day grid helpers and the ``mowing-table`` command, :mod:`.raster` the
cube path (per-pixel rasters, per-parcel tables), :mod:`.score` the matching
used by the benchmark.
"""

from pipeline.mowing.detect import DEFAULTS, MAX_EVENTS, METHODS, PRIOR, DetectParams, detect
from pipeline.mowing.score import Score, match_events

__all__ = [
    "DEFAULTS", "MAX_EVENTS", "METHODS", "PRIOR", "DetectParams", "Score", "detect",
    "match_events",
]
