"""Mowing detection on field means of a region no detector or filler has seen.

    python benchmarks/mowing_jrc.py DATA [--clear 0.9] [--tolerance 12] [--markdown FILE]

``DATA`` is a folder of the jrc-salms layout: ``tsdir/{ID}_s2_idx_ts.csv`` (per date,
parcel statistics of NDVI, with ``hist.0``..``hist.11`` the parcel's pixels per SCL
class) and ``gtdir/FOIinfo.csv`` (``ID``, ``Event_date`` dd/mm/yyyy: the reference
cuts). Per parcel, the dates whose share of vegetation, bare-soil and water pixels
(SCL 4, 5, 6) is at least ``--clear`` give the parcel's median NDVI (the statistics
are over all its pixels, cloudy or not, so only nearly clear dates describe the
field); the others are cloudy. The table goes through ``python -m pipeline
mowing-table`` as a user would feed it, once per detector and series, with the
shipped weights and defaults; cuts are matched one to one within ``--tolerance``
days and pooled over the parcels. Nothing is tuned here: the region is one the
shipped detectors and thresholds never saw. The sample is small (ten parcels,
seventeen cuts in the reference data), so the figures say whether a detector holds
up, not which one is best by a small margin.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.__main__ import main as cli
from pipeline.mowing.score import Score, match_events

#: (label, mowing-table options) of each row, the CLI's default first.
RUNS = (
    ("learned (default)", []),
    ("learned-fast", ["--detector", "learned-fast"]),
    ("drop, raw", ["--detector", "drop", "--method", "raw"]),
    ("drop, linear", ["--detector", "drop", "--method", "linear"]),
    ("drop, sf", ["--detector", "drop", "--method", "sf"]),
    ("zdrop, sf", ["--detector", "zdrop", "--method", "sf"]),
)


def clear_ndvi(table: Path, clear: float, stat: str) -> pd.DataFrame:
    """``date,ndvi`` of one ``{ID}_s2_idx_ts.csv`` table: the parcel's NDVI statistic
    ``stat`` (``P50``, ``MEAN``, ...) on dates where at least ``clear`` of its pixels are
    SCL-clear (4, 5, 6), NaN on the others."""
    d = pd.read_csv(table)
    d = d[d["band"] == "NDVI"]
    share = d[["hist.4", "hist.5", "hist.6"]].sum(axis=1) / d["count"]
    return pd.DataFrame({"date": d["date"], "ndvi": d[stat].where(share >= clear)})


def field_table(data: Path, clear: float) -> pd.DataFrame:
    """``id,date,ndvi`` of every parcel: the median NDVI on nearly clear dates, else empty."""
    parts = [clear_ndvi(f, clear, "P50").assign(id=f.name.split("_")[0])[["id", "date", "ndvi"]]
             for f in sorted((data / "tsdir").glob("*_s2_idx_ts.csv"))]
    if not parts:
        raise SystemExit(f"{data}/tsdir: no *_s2_idx_ts.csv tables")
    return pd.concat(parts, ignore_index=True)


def reference(data: Path) -> dict[str, list[float]]:
    """Reference cut days (ordinal) per parcel id."""
    ev = pd.read_csv(data / "gtdir" / "FOIinfo.csv")
    days = pd.to_datetime(ev["Event_date"], format="%d/%m/%Y")
    out: dict[str, list[float]] = {}
    for pid, day in zip(ev["ID"].astype(str), days, strict=True):
        out.setdefault(pid, []).append(float(day.toordinal()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="jrc-salms layout folder")
    ap.add_argument("--clear", type=float, default=0.9,
                    help="least share of clear pixels (SCL 4-6) of a usable date")
    ap.add_argument("--tolerance", type=float, default=12.0)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    table = field_table(args.data, args.clear)
    truth = reference(args.data)
    ids = sorted(set(table["id"]))
    lines = [f"Mowing detection on the jrc-salms field means (`benchmarks/mowing_jrc.py`, "
             f"clear share >= {args.clear}, ±{args.tolerance:g} days): {len(ids)} parcels, "
             f"{sum(len(truth.get(i, [])) for i in ids)} reference cuts, "
             f"{int(table['ndvi'].notna().sum())} of {len(table)} dates clear.", "",
             "| detector, series | P | R | F1 | TP | FP | FN |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fields.csv"
        table.to_csv(src, index=False)
        for label, options in RUNS:
            out = Path(tmp) / "cuts.csv"
            if cli(["mowing-table", "--input", str(src), "--output", str(out), "-q",
                    *options]) != 0:
                raise SystemExit(f"mowing-table {' '.join(options)} failed")
            found = pd.read_csv(out, dtype={"id": str})
            days = pd.to_datetime(found["event_date"]).map(lambda t: float(t.toordinal()))
            score = Score(0, 0, 0)
            for pid in ids:
                score = score + match_events(list(days[found["id"] == pid]),
                                             truth.get(pid, []), args.tolerance)
            lines.append(f"| {label} | {score.precision:.3f} | {score.recall:.3f} | "
                         f"{score.f1:.3f} | {score.tp} | {score.fp} | {score.fn} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
