"""Entry checks of option values that name files or reference systems.

Each raises :class:`~pipeline.errors.InputError` with one line naming the option, the
value and what to pass instead; nothing here reads more than a file's header, so the
checks run before any work starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, ProductError

#: A tensor every SF network has (the LSTM's recurrent weights).
_SF_TENSOR = "rnn.weight_hh_l0"
#: Largest safetensors header accepted (the format caps it at 100 MB).
_MAX_HEADER = 100_000_000


def check_weights(path: Path, flag: str = "--model") -> None:
    """``path`` is an SF weights file: safetensors with an SF network's tensors."""
    if not path.is_file():
        raise InputError(f"{flag}: file not found: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            if not 0 < n <= min(_MAX_HEADER, path.stat().st_size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{flag} {path}: not a .safetensors weights file ({exc}); pass SF "
                         "weights such as model/weights/sf.safetensors") from exc
    if not isinstance(header, dict) or _SF_TENSOR not in header:
        raise InputError(f"{flag} {path}: safetensors without the SF network's tensors "
                         f"({_SF_TENSOR} missing); pass weights written by python -m model "
                         "train")


def check_crs(value: str, flag: str = "--crs") -> None:
    """``value`` names a projected CRS whose axes are in metres (the 10 m grid needs it)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_user_input(value)
    except CRSError as exc:
        raise InputError(f"{flag} {value!r}: not a coordinate reference system; pass e.g. "
                         "EPSG:32634") from exc
    units = {a.unit_name for a in crs.axis_info}
    if not crs.is_projected or units != {"metre"}:
        raise InputError(f"{flag} {value}: not a projected CRS in metres "
                         f"({'geographic' if crs.is_geographic else ', '.join(sorted(units))}); "
                         "pass a UTM zone such as EPSG:32634")


#: ``[scheme://]host:port`` of a dask scheduler (host name, IPv4 or [IPv6]).
_SCHEDULER = re.compile(r"^(?:(tcp|tls|ucx|ws|wss)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


def check_scheduler(value: str | None, flag: str = "--scheduler") -> None:
    """``value`` is None, ``threads`` or the address of a dask scheduler."""
    if value is None or value == "threads":
        return
    m = _SCHEDULER.match(value)
    if m is None or not 0 < int(m.group(3)) < 65536:
        raise InputError(f"{flag} {value!r}: not a scheduler address; pass tcp://HOST:PORT of a "
                         "running dask scheduler, 'threads', or leave it out for a local cluster")


def max_workers() -> int:
    """The most local worker processes a run may ask for (more only cost memory)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_range(flag: str, value: float, low: float, high: float, what: str = "") -> None:
    """``value`` is a finite number in ``[low, high]``."""
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{flag} {value:g} is out of range; pass {low:g}..{high:g}"
                         + (f" {what}" if what else ""))


def check_table_output(inp: Path, out: Path) -> None:
    """``--output`` of a table command: a file path that is not the input."""
    if out.is_dir():
        raise InputError(f"--output {out} is a folder; pass a file path such as {out / 'out.csv'}")
    if out.exists() and inp.exists() and out.resolve() == inp.resolve():
        raise InputError(f"--output {out} is the --input file; pass another path so the input "
                         "is kept")


def check_filled_tile(ds: Any, dates: int, tile: str) -> None:
    """ProductError unless a tile's filled cube may become products.

    Every stack has the run's ``dates`` bands; inside the AOI (if the tile holds any
    of it) some cell is observed
    (the tile used scenes, so none observed means they were unreadable or all cloud),
    ``ndvi_filled`` has no infinite value and is finite at every date of each pixel
    with an observation (the fill of an observed series is never missing).
    """
    import dask
    import numpy as np

    for name in ("ndvi_filled", "observed", "aoi_mask"):
        if name not in ds:
            raise ProductError(f"tile {tile}: the cube has no {name}; nothing published")
    if ds.sizes.get("time") != dates:
        raise ProductError(f"tile {tile}: {ds.sizes.get('time')} dates in the cube, the run has "
                           f"{dates}; nothing published")
    inside = ds["aoi_mask"] > 0
    filled = ds["ndvi_filled"]
    seen = (ds["observed"] > 0) & inside
    pixels_seen = seen.any("time")
    n_inside, n_seen, n_inf, n_missing = dask.compute(
        inside.sum(), seen.sum(), (np.isinf(filled) & inside).sum(),
        (filled.isnull() & pixels_seen).sum(),
    )
    if int(n_inside) == 0:
        return  # a tile that only touches the AOI: nodata products by design
    if int(n_seen) == 0:
        raise ProductError(f"tile {tile}: no clear observation in the AOI although scenes were "
                           "used (all cloud or unreadable); nothing published")
    if int(n_inf):
        raise ProductError(f"tile {tile}: {int(n_inf)} infinite ndvi_filled values in the AOI; "
                           "nothing published")
    if int(n_missing):
        raise ProductError(f"tile {tile}: ndvi_filled is missing in {int(n_missing)} cells of "
                           "observed pixels in the AOI; nothing published")


def check_mowing_cube(path: Path, series: str) -> None:
    """InputError when the cube of ``mowing --cube`` has an unfinished or empty fill.

    Only what the cube reader leaves open: a missing store or variable is its message.
    """
    import numpy as np
    import xarray as xr

    store = path / "cube.zarr" if (path / "cube.zarr").is_dir() else path
    if not store.is_dir():
        return
    progress = store.with_name(store.name + ".progress")
    if (progress / "fill").is_dir() and not any(progress.glob("tile-*.done")):
        raise InputError(f"--cube {path}: the run that made this cube did not finish its fill; "
                         "rerun that `python -m pipeline run` to the end first")
    var = "ndvi_filled" if series == "filled" else "ndvi"
    try:
        cube = xr.open_zarr(store, zarr_format=3, consolidated=False)
    except Exception:  # not a cube: the reader says so
        return
    if var not in cube:
        return
    values = cube[var]
    if "aoi_mask" in cube:
        values = values.where(cube["aoi_mask"] > 0)
    if not bool(np.isfinite(values).any().compute()):
        raise InputError(f"--cube {path}: {var} is empty (no value in the AOI); the run that "
                         "made it found no usable scene: check its run.json")
