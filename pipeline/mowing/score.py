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
    """

    tp: int
    fp: int
    fn: int

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
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def match_events(
    detected: Sequence[float],
    reference: Sequence[float],
    tolerance: float = 12.0,
    ignore: Iterable[tuple[float, float]] = (),
) -> Score:
    """Match detected to reference dates (days) one to one, closest pairs first.

    A detection inside one of the ``ignore`` intervals (e.g. grazing periods,
    widened by the tolerance) that matches no reference event counts neither
    as true nor as false positive.
    """
    det = np.asarray([d for d in detected if np.isfinite(d)], float)
    ref = np.asarray(list(reference), float)
    pairs = sorted(
        (abs(d - r), i, j)
        for i, d in enumerate(det)
        for j, r in enumerate(ref)
        if abs(d - r) <= tolerance
    )
    used_d: set[int] = set()
    used_r: set[int] = set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
    spans = list(ignore)
    fp = sum(
        1
        for i, d in enumerate(det)
        if i not in used_d and not any(a - tolerance <= d <= b + tolerance for a, b in spans)
    )
    return Score(tp=len(used_d), fp=fp, fn=len(ref) - len(used_r))
