"""Radar speckle, radar-NDVI correlation and partial clouds: demo world against real data.

    python benchmarks/demo_radar.py [--real ../shared/data] [--seed 0]

Simulates the default demo world's season (April-October) in memory and prints,
per land cover, the within-series correlation of VV, VH and VH-VV (dB) with the
true NDVI, per pixel and per field (mean linear power over the field's interior
pixels, then dB; a series is one pixel or field in one orbit direction); the
speckle ENL and dB std in 8 x 8 blocks inside fields and its lag-1/lag-2 spatial
autocorrelation; and the shares of field-dates that are mostly cloudy, partly
clear (10-90 % of the field clear) and clear.

With ``--real DIR`` (the shared data folder) it prints the same figures on real
data: ``DIR/jrc-salms`` (ten grassland parcels: within-parcel r of the parcel-median
NDVI with VH, VV and 6-day VH/VV coherence, S2 within 5 days and >= 90 % clear;
within-parcel ENL 1/CV^2 of VV and VH; clear shares from the SCL histograms) and
``DIR/cdse-cubes`` (real S1 GRD and S2 L2A pixel cubes: block ENL and dB std in
homogeneous blocks, speckle autocorrelation, per-pixel r with NDVI on the dates
with a clear S2 scene within a day). Without it the real part is skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.simulate import calibration as cal
from pipeline.simulate import default_world
from pipeline.simulate.measure import (
    SEASON_MONTHS,
    block_enl,
    consecutive_pairs,
    field_clear_shares,
    field_means,
    lag_correlation,
    partial_share,
    pooled_r,
    ratio_enl,
    sample_radar,
    to_db,
    within_r,
)

#: Fields with fewer interior S1 cells are left out of the field-level figures.
MIN_INTERIOR = 30
CLASSES = (cal.GRASS, cal.PASTURE, cal.WCEREAL, cal.SCEREAL, cal.MAIZE, cal.FOREST)


def demo_rows(seed: int) -> list[tuple[str, str]]:
    """The demo world's figures as (name, value) rows."""
    spec = dataclasses.replace(default_world(), seed=seed)
    t0 = time.perf_counter()
    s = sample_radar(spec)
    rows: list[tuple[str, str]] = [("S1 scenes Apr-Oct (both orbits)", str(s.vv.shape[0]))]
    vv, vh = to_db(s.vv), to_db(s.vh)
    cr = vh - vv
    n_units = s.unit_class.size
    cls_of = s.unit_class[s.unit]
    lin_f = {k: field_means(v, s.unit, s.interior, n_units)
             for k, v in (("vv", s.vv), ("vh", s.vh))}
    nd_f, count = field_means(s.ndvi, s.unit, s.interior, n_units)
    big = np.median(count, axis=0) >= MIN_INTERIOR
    f_vv, f_vh = to_db(lin_f["vv"][0]), to_db(lin_f["vh"][0])
    f_cr = f_vh - f_vv
    for c in CLASSES:
        name = cal.LANDCOVER[c]
        px = s.interior & (cls_of == c)
        if px.sum() == 0:
            continue
        pix = [within_r(a[:, px], s.ndvi[:, px], s.orbit) for a in (vv, vh, cr)]
        units = big & (s.unit_class == c)
        fld = [within_r(a[:, units], nd_f[:, units], s.orbit) for a in (f_vv, f_vh, f_cr)]
        rows.append((f"{name}: r(VV, VH, VH-VV | NDVI) per pixel",
                     " ".join(f"{v:+.3f}" for v in pix)))
        rows.append((f"{name}: same per field ({int(units.sum())} fields, median "
                     f"{int(np.median(count[:, units])) if units.any() else 0} px)",
                     " ".join(f"{v:+.3f}" for v in fld)))
    grass = s.interior & (cls_of == cal.GRASS)
    asc = s.orbit == "ascending"
    rows.append(("grassland pixels, ascending: median VV / VH dB",
                 f"{np.nanmedian(vv[asc][:, grass]):.2f} / {np.nanmedian(vh[asc][:, grass]):.2f}"))
    noise = []
    for a in (vv, vh):
        d = np.concatenate([np.diff(a[s.orbit == o][:, grass], axis=0).ravel()
                            for o in np.unique(s.orbit)])
        noise.append(np.nanstd(d) / np.sqrt(2.0))
    rows.append(("grassland pixels: temporal noise std(diff)/sqrt(2), 6-day pairs, VV / VH dB",
                 f"{noise[0]:.2f} / {noise[1]:.2f}"))
    hom = s.interior & np.isin(cls_of, cal.FIELD_CLASSES)
    pairs = consecutive_pairs(s.orbit)
    for pol, arr in (("VV", s.vv), ("VH", s.vh)):
        rows.append((f"{pol} per-pixel ENL from log ratios of 6-day same-orbit pairs in fields",
                     f"{ratio_enl(arr, pairs, hom):.2f}"))
        enl, sd, n = block_enl(arr, hom)
        rows.append((f"{pol} speckle: block ENL 8x8 in fields / dB std ({n} blocks)",
                     f"{enl:.2f} / {sd:.2f}"))
        rows.append((f"{pol} speckle autocorrelation lag 1 / lag 2",
                     f"{lag_correlation(arr, 1, s.orbit):.3f} / "
                     f"{lag_correlation(arr, 2, s.orbit):.3f}"))
    rows.append(("per-pixel ENL of the simulator (spec.s1_enl)", f"{spec.s1_enl:.2f}"))
    for label, lo, hi in (("all fields", 50, None), ("fields of 0.8-2.1 ha", 80, 210)):
        shares = partial_share(field_clear_shares(spec, lo, hi))
        rows.append((f"S2 field-dates Apr-Oct, {label}: cloudy <=10 % / partly / clear >=90 %",
                     f"{shares['cloudy']:.3f} / {shares['partial']:.3f} / "
                     f"{shares['clear']:.3f} (n={int(shares['n'])})"))
    rows.append(("(simulation time, s)", f"{time.perf_counter() - t0:.1f}"))
    return rows


def jrc_rows(folder: Path) -> list[tuple[str, str]]:
    """Figures of the ten jrc-salms grassland parcels."""
    import pandas as pd

    ts = folder / "tsdir"
    pairs: dict[str, list[tuple[int, float, float]]] = {"vv": [], "vh": [], "coh_vh": [],
                                                         "coh_vv": []}
    enl: dict[str, list[float]] = {"vv": [], "vh": []}
    shares: list[float] = []
    ids = sorted(int(p.name.split("_")[0]) for p in ts.glob("*_s2_ts.csv"))
    for i in ids:
        s2 = pd.read_csv(ts / f"{i}_s2_ts.csv")
        b4 = s2[s2.band == "B04"].set_index("date")
        clear = (b4["hist.4"] + b4["hist.5"] + b4["hist.6"]) / b4["count"]
        clear.index = pd.to_datetime(clear.index)
        shares += list(clear[clear.index.month.isin(SEASON_MONTHS)])
        idx = pd.read_csv(ts / f"{i}_s2_idx_ts.csv")
        nd = idx[idx.band == "NDVI"].set_index("date")["MEDIAN"]
        nd.index = pd.to_datetime(nd.index)
        good = nd[clear.reindex(nd.index) >= 0.9]
        tables = {"vv": ("s1_bs_ts", "s1_bs_rAD", True), "vh": ("s1_bs_ts", "s1_bs_VH_rAD", True),
                  "coh_vh": ("s1_coh6_ts", "s1_coh6_VH", False),
                  "coh_vv": ("s1_coh6_ts", "s1_coh6_VV", False)}
        for key, (table, band, linear) in tables.items():
            d = pd.read_csv(ts / f"{i}_{table}.csv")
            d = d[d.band == band]
            t = pd.to_datetime(d["date"])
            d = d[t.dt.month.isin(SEASON_MONTHS).to_numpy()]
            t = pd.to_datetime(d["date"])
            if key in enl:
                enl[key] += list(1.0 / d["COEF.VAR"].to_numpy() ** 2)
            for when, value in zip(t, d["MEDIAN"], strict=True):
                gap = np.abs((good.index - when.normalize()).days)
                if gap.size == 0 or gap.min() > 5:
                    continue
                x = 10 * np.log10(value) if linear else value
                pairs[key].append((i, x, float(good.iloc[int(np.argmin(gap))])))
    rows: list[tuple[str, str]] = []
    for key, label in (("vh", "VH"), ("vv", "VV"), ("coh_vh", "6-day VH coherence"),
                       ("coh_vv", "6-day VV coherence")):
        df = pd.DataFrame(pairs[key], columns=["p", "x", "n"])
        for col in ("x", "n"):
            df[col] -= df.groupby("p")[col].transform("mean")
        rows.append((f"jrc-salms grassland: within-parcel r(NDVI, {label}) (n={len(df)})",
                     f"{pooled_r(df.x.to_numpy(), df.n.to_numpy()):+.3f}"))
    rows.append(("jrc-salms: within-parcel ENL 1/CV^2, median VV / VH",
                 f"{np.median(enl['vv']):.2f} / {np.median(enl['vh']):.2f}"))
    ps = partial_share(np.array(shares))
    rows.append(("jrc-salms parcel-dates Apr-Oct: cloudy / partly / clear",
                 f"{ps['cloudy']:.3f} / {ps['partial']:.3f} / {ps['clear']:.3f} "
                 f"(n={int(ps['n'])})"))
    return rows


def cube_rows(folder: Path) -> list[tuple[str, str]]:
    """Figures of the real CDSE S1 GRD / S2 L2A pixel cubes."""
    import xarray as xr

    s1 = xr.open_dataset(folder / "gfmap_cdse_sentinel1_grd.nc")
    s2 = xr.open_dataset(folder / "gfmap_cdse_sentinel2_l2a.nc")

    def linear(name: str) -> np.ndarray:
        dn = s1[name].to_numpy().astype(float)
        dn[~(dn > 0)] = np.nan
        return 10.0 ** ((20.0 * np.log10(dn) - 83.0) / 10.0)

    vv, vh = linear("S1-SIGMA0-VV"), linear("S1-SIGMA0-VH")
    b4 = s2["S2-L2A-B04"].to_numpy().astype(float)
    b8 = s2["S2-L2A-B08"].to_numpy().astype(float)
    ndvi = (b8 - b4) / (b8 + b4)
    clear = np.isin(s2["S2-L2A-SCL"].to_numpy(), (4, 5, 6))
    good = [k for k in range(clear.shape[0]) if clear[k].mean() > 0.9]
    mean_nd = np.nanmean(np.where(clear[good], ndvi[good], np.nan), axis=0)
    # Homogeneous 8x8 blocks: the quarter with the lowest NDVI spread on the clear dates.
    size = 8
    ny, nx = mean_nd.shape
    by, bx = ny // size, nx // size
    spread = mean_nd[:by * size, :bx * size].reshape(by, size, bx, size).std(axis=(1, 3))
    hom_b = spread <= np.quantile(spread, 0.25)
    hom = np.zeros((ny, nx), bool)
    hom[:by * size, :bx * size] = np.repeat(np.repeat(hom_b, size, axis=0), size, axis=1)
    rows: list[tuple[str, str]] = [("cdse-cubes: S1 dates / clear S2 dates",
                                    f"{vv.shape[0]} / {len(good)}")]
    t1 = s1.t.to_numpy().astype("datetime64[D]")
    same = [(i, j) for i in range(t1.size) for j in range(i + 1, t1.size)
            if int((t1[j] - t1[i]).astype(int)) == 12]  # one orbit's repeat (S1A, 2023)
    for pol, arr in (("VV", vv), ("VH", vh)):
        enl_px = ratio_enl(arr, same, np.ones((ny, nx), bool))
        rows.append((f"cdse-cubes {pol}: per-pixel ENL from log ratios of {len(same)} "
                     "12-day same-orbit pairs", f"{enl_px:.2f}"))
        enl, sd, n = block_enl(arr, hom, size)
        rows.append((f"cdse-cubes {pol}: block ENL 8x8 homogeneous / dB std ({n} blocks)",
                     f"{enl:.2f} / {sd:.2f}"))
        rows.append((f"cdse-cubes {pol}: speckle autocorrelation lag 1 / lag 2",
                     f"{lag_correlation(arr, 1):.3f} / {lag_correlation(arr, 2):.3f}"))
    t2 = s2.t.to_numpy().astype("datetime64[D]")
    pairs = [(i, k) for k in good for i in range(t1.size) if abs(int((t1[i] - t2[k])
                                                                      .astype(int))) <= 1]
    if len(pairs) >= 2:
        veg = clear[[k for _, k in pairs]].all(axis=0)
        x_nd = np.stack([ndvi[k][veg] for _, k in pairs])
        one = np.zeros(len(pairs), int)
        vals = [within_r(to_db(a[[i for i, _ in pairs]][:, veg]), x_nd, one, 2)
                for a in (vv, vh)]
        cr = to_db(vh[[i for i, _ in pairs]][:, veg]) - to_db(vv[[i for i, _ in pairs]][:, veg])
        vals.append(within_r(cr, x_nd, one, 2))
        rows.append((f"cdse-cubes per-pixel within-series r(VV, VH, VH-VV | NDVI), "
                     f"{len(pairs)} dates, {int(veg.sum())} px",
                     " ".join(f"{v:+.3f}" for v in vals)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, help="shared data folder (jrc-salms, cdse-cubes)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the demo world")
    args = ap.parse_args()
    if args.real is not None:
        missing = [n for n in ("jrc-salms", "cdse-cubes") if not (args.real / n).is_dir()]
        if missing:
            print(f"--real {args.real}: no {', '.join(missing)} folder there; pass the "
                  "shared data folder", file=sys.stderr)
            raise SystemExit(2)
    rows = [(f"== demo world (seed {args.seed})", ""), *demo_rows(args.seed)]
    if args.real is None:
        rows.append(("== real data", "skipped: pass --real DIR (the shared data folder)"))
    else:
        rows += [("== real: jrc-salms", ""), *jrc_rows(args.real / "jrc-salms")]
        rows += [("== real: cdse-cubes", ""), *cube_rows(args.real / "cdse-cubes")]
    width = max(len(n) for n, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
