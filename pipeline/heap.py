"""The long-lived objects of a process kept out of Python's cyclic garbage collector.

A full collection traverses every tracked object of the process: a run holds a few
hundred thousand before its chunks start (the STAC items, the dask graph, xarray,
torch once a filler is loaded), none of which becomes garbage while chunks are read
and written. The chunks allocate containers fast enough to trigger full collections
anyway, and each one holds the GIL for tens of milliseconds while every other thread
waits. :func:`gc.freeze` moves the objects alive now into a permanent generation that
collections skip; what the chunks allocate is collected as before, and so are cycles
among the frozen objects once they are unfrozen.

Measured on the 4 km demo AOI (ingest, 2 threads, one process), in 4 runs alternating
with and without: 5-13 % less CPU time (ratios 0.87, 0.95, 0.89, 0.95) and 3-18 %
less wall time with the objects of the set-up frozen. The products do not change:
freezing decides only when garbage is found, never what is computed.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_depth = 0


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """Objects alive on entry are not traversed by collections until the block ends
    (nested and concurrent blocks: from the first entry to the last exit)."""
    global _depth
    with _LOCK:
        if _depth == 0:
            gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()


def freeze_for_good() -> None:
    """Freeze what is alive now for the rest of the process (a worker after its
    start-up: modules, the model), unless a :func:`frozen` block is open (its exit
    would unfreeze them)."""
    with _LOCK:
        if _depth == 0:
            gc.freeze()
