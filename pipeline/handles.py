"""Open raster datasets kept for reuse across the chunks of an ingest.

A chunk of the cube reads a window of every scene's assets. Opening an asset costs a
header parse (an HTTP request on a remote archive) and, closed again, it takes its
decoded blocks with it: a block shared by two neighbouring chunks is then decoded
twice, four times where a chunk's window straddles two block rows and columns. Kept
open, the next chunk finds the header parsed and, while GDAL's block cache holds
them, the blocks decoded.

The pool is shared by the threads of a process. A dataset is used by one thread at a
time: a thread takes an idle handle of the href (or opens one) and gives it back when
done, so two threads reading the same asset at once hold two handles. At most
:data:`MAX_IDLE` idle handles are kept (least recently used closed first), a share of
the process's open-file limit.

The decoded blocks live in GDAL's block cache, whose default size is a share of the
machine's RAM (5 %, over 1 GB on a 24 GB machine, per process): with handles kept
open it fills with the blocks of every scene an AOI touches, so a worker's memory grew
with the AOI. The pool bounds it to :data:`BLOCK_CACHE_MB` per process when it opens
its first dataset, unless ``GDAL_CACHEMAX`` is set in the environment (the user's
choice is kept). JPEG2000 rasters with blocks larger than a chunk (Sentinel-2's
1024-pixel tiles on EODATA) are the exception: each chunk task reserves room for their
decoded blocks over its tile (:func:`reserve_block_cache`, sized by
:func:`pipeline.warp.large_blocks`) and reads them through one handle per process at
a time (``shared``), so a tile is decoded once for the chunks inside it, not once per
chunk and handle; that part of the cache follows the tile's scenes, never the AOI,
and stays under :func:`cache_cap`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from collections import OrderedDict
from collections.abc import Iterator

import rasterio
import rasterio.env
from rasterio.io import DatasetReader


def _max_idle() -> int:
    """A quarter of the soft open-file limit, between 16 and 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 4))


#: Idle handles kept by the pool of a process.
MAX_IDLE = _max_idle()

#: GDAL block cache of a process that reads through the pool, MiB. bench_scale's 16x
#: AOI (4 km, 48-pixel chunks, 2 workers) peaked at 1.17x its 1x AOI with 64 MiB, 1.37x
#: with 256 MiB and 1.34x with the default 5 % of RAM; in exchange the 4 km ingest
#: (chunk 256, 2 threads) uses about 15-20 % more CPU than with 256 MiB (blocks of
#: Sentinel-1 shared by neighbouring chunks are decoded again).
BLOCK_CACHE_MB = 64

_CACHE_LOCK = threading.Lock()
_cache_bounded = False


def bound_block_cache() -> None:
    """Set GDAL's block cache to :data:`BLOCK_CACHE_MB` once per process, unless the
    environment sets ``GDAL_CACHEMAX``."""
    global _cache_bounded
    with _CACHE_LOCK:
        if _cache_bounded:
            return
        _cache_bounded = True
        if "GDAL_CACHEMAX" not in os.environ:
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", BLOCK_CACHE_MB * 2**20)


def cache_cap() -> int:
    """The most block cache, bytes, :func:`reserve_block_cache` gives a process: its
    share of half the machine's memory (one process per core), at least
    :data:`BLOCK_CACHE_MB`."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not known on this platform
        return BLOCK_CACHE_MB * 2**20
    return max(BLOCK_CACHE_MB * 2**20, ram // 2 // max(1, os.cpu_count() or 1))


_reserved = 0


def reserve_block_cache(nbytes: int) -> None:
    """Grow this process's GDAL block cache to hold ``nbytes`` of decoded blocks
    besides the :data:`BLOCK_CACHE_MB` every process has (never shrunk; at most
    :func:`cache_cap`), unless the environment sets ``GDAL_CACHEMAX``.

    For JPEG2000 blocks larger than a chunk (Sentinel-2's 1024-pixel tiles on EODATA
    against 256-pixel chunks), every chunk inside a block decodes it again unless the
    cache keeps it until the last of them has read it.
    """
    global _reserved
    bound_block_cache()
    with _CACHE_LOCK:
        if "GDAL_CACHEMAX" in os.environ or nbytes <= _reserved:
            return
        _reserved = nbytes
        size = min(cache_cap(), BLOCK_CACHE_MB * 2**20 + nbytes)
        rasterio.env.set_gdal_config("GDAL_CACHEMAX", size)


class DatasetPool:
    """Idle rasterio datasets by asset version (href, and size and mtime of local
    files, so a rewritten file is opened afresh), least recently used first."""

    def __init__(self, max_idle: int = MAX_IDLE):
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._idle: OrderedDict[tuple[str, int, int], list[DatasetReader]] = OrderedDict()
        self._busy: dict[tuple[str, int, int], int] = {}
        self._count = 0

    @contextlib.contextmanager
    def dataset(self, href: str, shared: bool = False) -> Iterator[DatasetReader]:
        """An open dataset of ``href`` for this thread alone until the block ends.

        ``shared``: while another thread uses a handle of ``href``, wait for it instead
        of opening a second one. GDAL caches decoded blocks per handle, so two threads
        reading a large block through two handles both decode it; through one, the
        second finds it decoded (for blocks larger than a chunk, which neighbouring
        chunks read at about the same time).
        """
        key = (href, *asset_version(href))
        with self._lock:
            while True:
                handles = self._idle.get(key)
                src = handles.pop() if handles else None
                if src is not None:
                    self._count -= 1
                if src is not None or not shared or not self._busy.get(key):
                    break
                self._returned.wait()
            self._busy[key] = self._busy.get(key, 0) + 1
        try:
            if src is None:
                bound_block_cache()
                src = rasterio.open(href)
            yield src
        except BaseException:
            if src is not None:
                src.close()  # its state after a failed read is not worth keeping
            self._give_back(key, None)
            raise
        self._give_back(key, src)

    def _give_back(self, key: tuple[str, int, int], src: DatasetReader | None) -> None:
        """A handle of ``key`` back to the idle ones (None: it was closed)."""
        closing = []
        with self._lock:
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
            if src is not None:
                self._idle.setdefault(key, []).append(src)
                self._idle.move_to_end(key)
                self._count += 1
            while self._count > self.max_idle:
                oldest = next(iter(self._idle))
                closing.append(self._idle[oldest].pop(0))
                self._count -= 1
                if not self._idle[oldest]:
                    del self._idle[oldest]
            self._returned.notify_all()
        for old in closing:
            old.close()

    def idle(self) -> int:
        """How many handles are open and idle."""
        return self._count

    def clear(self) -> None:
        """Close every idle handle."""
        with self._lock:
            idle, self._idle, self._count = list(self._idle.values()), OrderedDict(), 0
        for handles in idle:
            for src in handles:
                src.close()


def asset_version(href: str) -> tuple[int, int]:
    """(size, mtime in ns) of a local file; (0, 0) for a URL or a GDAL virtual path."""
    try:
        st = os.stat(href)
    except OSError:  # a URL or a GDAL virtual path
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


#: The process's pool.
POOL = DatasetPool()
