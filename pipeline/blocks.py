"""Cutting a 2-D grid into blocks: cube chunk regions, GeoTIFF windows, download tiles.

One walk for everything that visits a raster block by block: the edges come from the
dask chunks (:func:`chunk_edges`) or from a largest block size (:func:`even_edges`),
:func:`blocks` yields the row/column slices between them, rows outer, columns inner.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    """One block of a grid.

    Attributes:
        iy: block row.
        ix: block column.
        rows: its rows (pixel indices, ``y``).
        cols: its columns (pixel indices, ``x``).
    """

    iy: int
    ix: int
    rows: slice
    cols: slice

    @property
    def key(self) -> str:
        """Stable name, ``"<row>-<column>"`` (resume markers use it)."""
        return f"{self.iy}-{self.ix}"

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


def chunk_edges(chunks: Sequence[int]) -> list[int]:
    """Edges of consecutive chunks of the given sizes: (0, c0, c0 + c1, ...)."""
    return [int(e) for e in np.cumsum((0, *chunks))]


def even_edges(n: int, max_size: int) -> list[int]:
    """Edges of the fewest near-equal parts of ``n`` pixels, none longer than ``max_size``."""
    parts = math.ceil(n / max_size)
    return [int(e) for e in np.linspace(0, n, parts + 1).round().astype(int)]


def blocks(row_edges: Sequence[int], col_edges: Sequence[int]) -> Iterator[Block]:
    """The blocks between the edges, row by row."""
    for iy in range(len(row_edges) - 1):
        for ix in range(len(col_edges) - 1):
            yield Block(iy, ix, slice(row_edges[iy], row_edges[iy + 1]),
                        slice(col_edges[ix], col_edges[ix + 1]))


def n_chunks(shape: Sequence[int], chunk: int) -> int:
    """Spatial chunks of ``chunk`` pixels that cover a (height, width) grid."""
    return math.ceil(shape[0] / chunk) * math.ceil(shape[1] / chunk)
