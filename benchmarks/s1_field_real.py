"""Does field-level Sentinel-1 backscatter help fill NDVI gaps? Real parcels, left out.

    python benchmarks/s1_field_real.py DATA_DIR [--seeds 0 1 2]

DATA_DIR is ``jrc-salms`` (``tsdir/{ID}_s2_idx_ts.csv`` and ``{ID}_s1_bs_ts.csv``: ten
real grassland parcels, 2020, per-date parcel statistics). Per parcel, the NDVI mean of
the dates on which at least 95 % of its pixels are SCL-clear (4, 5, 6) and the VV and
VH field means (linear power, then dB, each acquisition track's own mean removed: tracks
differ in incidence) are binned on the 6-day grid of April-October, as a run's parcel
tables are. Gaps are hidden as in ``evaluate`` (runs of clear bins of 6, 12-18, 24-30 and
36-60 days with a clear bin on both sides; gap seeds 0-2) and filled by

* a base filler: linear interpolation, or SF (Sentinel-1 withheld, as it ships);
* the base plus ``b_vv * r_vv + b_vh * r_vh``, where ``r`` is the field's backscatter
  in the hidden bin less its own linear interpolation across the gap (what the radar
  did inside the gap that the anchors do not say) and ``b`` is fitted by least squares
  on the other nine parcels' hidden bins (leave one parcel out: no parcel's own NDVI
  sets its coefficients).

Printed: MAE per gap bucket of each base with and without the radar term, the change,
the best of linear, Akima, quadratic and Whittaker (as ``evaluate`` scores them) with
SF against it, and the fitted coefficients' range. The ten parcels are the only real field-level
series with both sensors here; the demo world's radar response is an assumption
calibrated on them, so it cannot answer this.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from mowing_jrc import clear_ndvi

from pipeline.baselines import akima, linear, quadratic, whittaker
from pipeline.fill import ModelFiller, cube_doy
from pipeline.timegrid import TimeGrid

BUCKETS = ((1, 1, "6 d"), (2, 3, "12-18 d"), (4, 5, "24-30 d"), (6, 10, "36-60 d"))
CLEAR_SHARE = 0.95


def load(data: Path, grid: TimeGrid) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parcel ids, (P, T) binned clear NDVI and (P, T, 2) binned VV/VH anomaly in dB."""
    ids = sorted({p.name.split("_")[0] for p in (data / "tsdir").glob("*_s2_idx_ts.csv")},
                 key=int)
    t = len(grid.starts)
    ndvi = np.full((len(ids), t), np.nan)
    s1 = np.full((len(ids), t, 2), np.nan)
    for i, pid in enumerate(ids):
        s2 = clear_ndvi(data / "tsdir" / f"{pid}_s2_idx_ts.csv", CLEAR_SHARE, "MEAN")
        ndvi[i] = _bin(grid, pd.to_datetime(s2["date"]).to_numpy(), s2["ndvi"].to_numpy())
        bs = pd.read_csv(data / "tsdir" / f"{pid}_s1_bs_ts.csv")
        when = pd.to_datetime(bs["date"], format="%Y%m%dT%H%M%S")
        bs = bs.assign(db=10 * np.log10(bs["MEAN"].clip(lower=1e-6)),
                       track=when.dt.strftime("%H%M").str[:3], when=when)
        for k, band in enumerate(("s1_bs_rAD", "s1_bs_VH_rAD")):
            b = bs[bs["band"] == band]
            anomaly = b["db"] - b.groupby("track")["db"].transform("mean")
            s1[i, :, k] = _bin(grid, b["when"].to_numpy(), anomaly.to_numpy())
    return ids, ndvi, s1


def _bin(grid: TimeGrid, dates: np.ndarray, values: np.ndarray) -> np.ndarray:
    idx = grid.bin_index(dates)
    t = len(grid.starts)
    ok = (idx >= 0) & (idx < t) & np.isfinite(values)
    s = np.bincount(idx[ok], weights=values[ok], minlength=t)
    n = np.bincount(idx[ok], minlength=t)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def gaps(ndvi: np.ndarray, lo: int, hi: int, rng: np.random.Generator,
         per_series: int = 10) -> list[tuple[int, int, int]]:
    """(parcel, first hidden bin, length): runs of ``lo``-``hi`` bins starting on a clear
    bin, with a clear bin before and after them; ``per_series`` draws per parcel."""
    out = []
    for i, row in enumerate(ndvi):
        clear = np.flatnonzero(np.isfinite(row))
        for _ in range(per_series):
            n = int(rng.integers(lo, hi + 1))
            starts = clear[(clear > clear[0]) & (clear + n - 1 < clear[-1])]
            if starts.size:
                out.append((i, int(rng.choice(starts)), n))
    return out


def radar_residual(s1: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(T, 2) backscatter in each bin less its linear interpolation over the hidden bins
    (NaN where the bin has no acquisition)."""
    kept = np.where(hidden[:, None], np.nan, s1)
    across = linear(kept.T.astype(np.float32)).T
    return s1 - across


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    grid = TimeGrid.covering("2020-04-01", "2020-10-31")
    ids, ndvi, s1 = load(args.data, grid)
    doy = cube_doy(grid.starts.values)
    sf = ModelFiller()
    t = ndvi.shape[1]
    print(f"{len(ids)} parcels, {t} bins; clear bins per parcel "
          f"{int(np.isfinite(ndvi).sum(1).min())}-{int(np.isfinite(ndvi).sum(1).max())}; "
          f"bins with radar {int(np.isfinite(s1[..., 0]).sum(1).min())}-"
          f"{int(np.isfinite(s1[..., 0]).sum(1).max())}")
    print("| gap | cells | linear | linear + radar | change | SF | SF + radar | change "
          "| best classic | SF vs best classic |\n|---|---|---|---|---|---|---|---|---|---|")
    betas: list[np.ndarray] = []
    for lo, hi, label in BUCKETS:
        rows = []  # parcel, truth, linear, SF, r_vv, r_vh
        for seed in args.seeds:
            rng = np.random.default_rng(seed * 100 + lo)
            for i, start, n in gaps(ndvi, lo, hi, rng):
                hidden = np.zeros(t, bool)
                hidden[start:start + n] = True
                hidden &= np.isfinite(ndvi[i])
                seen = np.where(hidden, np.nan, ndvi[i])[None].astype(np.float32)
                lin = linear(seen)[0]
                classic = [akima(seen)[0], quadratic(seen)[0], whittaker(seen)[0]]
                nan = np.full((1, t, 2), np.nan, np.float32)
                f, _ = sf.fill(seen, nan, nan, doy=doy)
                r = radar_residual(s1[i], hidden)
                for j in np.flatnonzero(hidden):
                    rows.append((i, ndvi[i, j], lin[j], f[0, j], r[j, 0], r[j, 1],
                                 *(c[j] for c in classic)))
        a = np.array(rows, np.float64)
        a[:, 4:6] = np.nan_to_num(a[:, 4:6])  # no acquisition in the bin: no radar term
        best = min(float(np.abs(a[:, c] - a[:, 1]).mean()) for c in (2, 6, 7, 8))
        preds = {}
        for col, name in ((2, "lin"), (3, "sf")):
            out = a[:, col].copy()
            for i in range(len(ids)):  # coefficients from the other parcels
                train, test = a[:, 0] != i, a[:, 0] == i
                beta, *_ = np.linalg.lstsq(a[train, 4:6], a[train, 1] - a[train, col],
                                           rcond=None)
                out[test] += a[test, 4:6] @ beta
                betas.append(beta)
            preds[name] = out
        e = {k: float(np.abs(v - a[:, 1]).mean()) for k, v in
             (("lin", a[:, 2]), ("lin+r", preds["lin"]), ("sf", a[:, 3]),
              ("sf+r", preds["sf"]))}
        print(f"| {label} | {len(a)} | {e['lin']:.4f} | {e['lin+r']:.4f} | "
              f"{100 * (e['lin+r'] / e['lin'] - 1):+.1f} % | {e['sf']:.4f} | {e['sf+r']:.4f} | "
              f"{100 * (e['sf+r'] / e['sf'] - 1):+.1f} % | {best:.4f} | "
              f"{100 * (e['sf'] / best - 1):+.1f} % |")
    b = np.array(betas)
    print(f"fitted NDVI per dB of residual: VV {b[:, 0].min():+.4f}..{b[:, 0].max():+.4f}, "
          f"VH {b[:, 1].min():+.4f}..{b[:, 1].max():+.4f}")


if __name__ == "__main__":
    main()
