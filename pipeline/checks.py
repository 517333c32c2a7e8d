"""Entry checks of option values that name files or reference systems.

Each raises :class:`~pipeline.errors.InputError` with one line naming the option, the
value and what to pass instead; nothing here reads more than a file's header, so the
checks run before any work starts.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from pipeline.errors import InputError

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


def check_table_output(inp: Path, out: Path) -> None:
    """``--output`` of a table command: a file path that is not the input."""
    if out.is_dir():
        raise InputError(f"--output {out} is a folder; pass a file path such as {out / 'out.csv'}")
    if out.exists() and inp.exists() and out.resolve() == inp.resolve():
        raise InputError(f"--output {out} is the --input file; pass another path so the input "
                         "is kept")
