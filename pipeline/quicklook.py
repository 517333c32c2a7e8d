"""Quicklook PNG of a filled cube: one date's NDVI map beside the series of sample pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

#: NDVI colour ramp shared with the QGIS style (value, colour).
NDVI_RAMP: tuple[tuple[float, str], ...] = (
    (-0.2, "#0c2c84"), (0.0, "#a6611a"), (0.2, "#dfc27d"), (0.4, "#f6e8c3"),
    (0.6, "#a6d96a"), (0.8, "#1a9641"), (1.0, "#00441b"),
)


def pick_samples(observed_share: np.ndarray, n: int = 3) -> list[tuple[int, int]]:
    """``n`` pixels (row, col) spread over the range of observed shares (some gappy, some not)."""
    ok = np.isfinite(observed_share)
    if not ok.any():
        return []
    rows, cols = np.nonzero(ok)
    order = np.argsort(observed_share[ok], kind="stable")
    picks = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    return [(int(rows[i]), int(cols[i])) for i in dict.fromkeys(picks)]


def write_quicklook(ds: xr.Dataset, dates: Sequence[str], path: Path, n_samples: int = 3) -> str:
    """Write the PNG; return the ISO date shown on the map.

    The map shows ``ndvi_filled`` on the date with the most clear observations
    (the sample pixels are marked); the plot shows, per sample pixel, the clear
    observations (dots), the filled series (line) and ``± 1.64 std`` (the 90 %
    band) where the filler gives one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    inside = ds["aoi_mask"].values > 0 if "aoi_mask" in ds else None
    obs_share = ds["observed"].mean("time").values.astype(float)
    if inside is not None:
        obs_share = np.where(inside, obs_share, np.nan)
    per_date = ds["observed"].sum(("y", "x")).values
    k = int(np.argmax(per_date))
    img = ds["ndvi_filled"].isel(time=k).values
    samples = pick_samples(obs_share, n_samples)
    t = np.array(dates, dtype="datetime64[D]")
    lo, hi = NDVI_RAMP[0][0], NDVI_RAMP[-1][0]
    cmap = LinearSegmentedColormap.from_list(
        "ndvi", [((v - lo) / (hi - lo), c) for v, c in NDVI_RAMP])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8), width_ratios=(1, 1.5))
    im = ax0.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    fig.colorbar(im, ax=ax0, shrink=0.8, label="NDVI")
    ax0.set_title(f"filled NDVI, {dates[k]}")
    ax0.set_xticks([])
    ax0.set_yticks([])
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for i, (r, c) in enumerate(samples):
        col = colours[i % 10]
        ax0.plot(c, r, marker="o", mfc="none", mec=col, ms=9, mew=2)
        filled = ds["ndvi_filled"].isel(y=r, x=c).values
        seen = ds["ndvi"].isel(y=r, x=c).values
        share = obs_share[r, c]
        ax1.plot(t, filled, "-", color=col, lw=1.5, label=f"pixel {i + 1} ({share:.0%} observed)")
        if "ndvi_std" in ds:
            sd = ds["ndvi_std"].isel(y=r, x=c).values
            if np.isfinite(sd).any():
                ax1.fill_between(t, filled - 1.64 * sd, filled + 1.64 * sd, color=col, alpha=0.2,
                                 lw=0)
        ax1.plot(t, seen, "o", color=col, ms=4)
    ax1.axvline(t[k], color="0.5", ls=":", lw=1)
    ax1.set_ylabel("NDVI")
    ax1.set_title("sample pixels: dots observed, line filled, band 90 % interval")
    ax1.legend(loc="lower center", fontsize=8)
    ax1.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return dates[k]
