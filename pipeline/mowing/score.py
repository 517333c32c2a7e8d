"""Scoring detected cuts against reference events: one-to-one matching within a tolerance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Score:
    """Counts and rates of one comparison.

    Attributes:
        tp: detected cuts matched to a reference event.
        fp: detected cuts without a reference event within the tolerance.
        fn: reference events without a detected cut.
        abs_error: sum of the absolute date errors (days) of the matched cuts.
    """

    tp: int
    fp: int
    fn: int
    abs_error: float = 0.0

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 0 when nothing was detected."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 0 when there is no reference event."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                     self.abs_error + other.abs_error)

    @property
    def date_error(self) -> float:
        """Mean absolute date error of the matched cuts (days); NaN without a match."""
        return self.abs_error / self.tp if self.tp else float("nan")


def _match(detected: Sequence[float], reference: Sequence[float], tolerance: float,
           ignore: Iterable[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections (finite), reference dates, and per detection its matched reference
    index (>= 0), -1 = false positive, -2 = unmatched but inside an ``ignore`` span."""
    det = np.asarray([d for d in detected if np.isfinite(d)], float)
    ref = np.asarray(list(reference), float)
    pairs = sorted(
        (abs(d - r), i, j)
        for i, d in enumerate(det)
        for j, r in enumerate(ref)
        if abs(d - r) <= tolerance
    )
    match = np.full(len(det), -1, np.int64)
    used_r: set[int] = set()
    for _, i, j in pairs:
        if match[i] < 0 and j not in used_r:
            match[i] = j
            used_r.add(j)
    spans = list(ignore)
    for i, d in enumerate(det):
        if match[i] < 0 and any(a - tolerance <= d <= b + tolerance for a, b in spans):
            match[i] = -2
    return det, ref, match


def match_events(
    detected: Sequence[float],
    reference: Sequence[float],
    tolerance: float = 12.0,
    ignore: Iterable[tuple[float, float]] = (),
) -> Score:
    """Match detected to reference dates (days) one to one, closest pairs first.

    A detection inside one of the ``ignore`` intervals (e.g. grazing periods,
    widened by the tolerance) that matches no reference event counts neither
    as true nor as false positive. ``abs_error`` sums the date errors of the matches.
    """
    det, ref, match = _match(detected, reference, tolerance, ignore)
    hit = match >= 0
    err = float(np.abs(det[hit] - ref[match[hit]]).sum()) if hit.any() else 0.0
    return Score(tp=int(hit.sum()), fp=int((match == -1).sum()), fn=len(ref) - int(hit.sum()),
                 abs_error=err)


def detection_outcomes(
    detected: Sequence[float],
    reference: Sequence[float],
    tolerance: float = 12.0,
    ignore: Iterable[tuple[float, float]] = (),
) -> np.ndarray:
    """Per finite detection: 1 = matched a reference event, 0 = false, -1 = ignored."""
    _, _, match = _match(detected, reference, tolerance, ignore)
    return np.where(match >= 0, 1, np.where(match == -1, 0, -1))
