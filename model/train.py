"""Self-supervised training of SF with artificial gaps.

Recipe (``python -m model train``; everything seeded, one torch thread):

1. Data. Real plot series from ``train/S1`` + ``train/S2`` (split by plot: 70 %
   training, 10 % calibration, 20 % evaluation, stratified by the plot id's letter
   prefix = region); the whole year is binned so windows can start in any season.
   Demo-world pixel series (``--demo-series``: crops, forest, water, built-up and
   grassland pixels of the simulated world, cut from pipeline cubes of strips outside
   the demo evaluation area by ``benchmarks/demo_series.py``). Series from
   :mod:`model.synth`, generated on the fly. The Sentinel-2-only camera-parcel series
   ``test/SK_poly`` are left out by default (``s2_only=0``): they are the held-out
   parcels of the mowing benchmark, and leaving them out also scored better on the
   calibration plots.
2. Batches. Each batch has one window length L (24-48 dates; any season length);
   ``real_frac`` (92 %) real windows cropped at random offsets, of which ``demo_frac``
   (12 % of the batch) from the demo world when given, the rest (8 %) synthetic.
   Real S1 is augmented: 0-2 dB extra speckle, dropped altogether in 20 % of
   windows, moved to the descending slot (with a level offset) in 40 %. Every window
   carries the day of year of its bin centres; it is dropped (unknown date) in
   ``doy_drop`` of windows.
3. Gaps. 1-3 runs of 1-10 consecutive dates (6-60 days) are hidden per window; their
   clear observations become targets. Loss = L1 of the mean (weight 1 on hidden,
   0.1 on visible dates) + 0.05 x Gaussian NLL of the std given the detached mean
   (same weights), so the mean optimises MAE and the std learns its errors.
4. Adam, lr 3e-3 with cosine decay, 60,000 steps of 256 windows; the weights kept
   are an exponential moving average (decay 0.999) of the iterates. The shipped
   1.2.0 weights took about 25 minutes on one core of the 2-core development
   machine with a second training sharing it.
5. Calibration. On the calibration plots (never trained on), gaps are hidden the same
   way and the std is scaled so that 90 % of hidden errors fall inside +-1.645 std.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from model import __version__
from model.data import PlotSeries, read_plot_series
from model.sf import (
    MAX_DISTANCE,
    MIN_STD,
    S1_LEVEL_DB,
    S1_SCALE_DB,
    SFNet,
    build_features,
    fallback,
)
from model.synth import generate

log = logging.getLogger(__name__)

#: z of the two-sided 90 % Gaussian interval.
Z90 = 1.6448536


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (all recorded in the model card).

    Attributes:
        seed: seeds numpy, torch and the split.
        steps: optimiser steps.
        batch: series per step.
        lr: peak learning rate (cosine decay to 5 %).
        min_len / max_len: window lengths (dates) drawn per batch.
        real_frac: share of real windows per batch (the rest synthetic).
        hidden_weight / visible_weight: loss weights of hidden and visible dates.
        nll_weight: weight of the Gaussian NLL term.
        eval_frac / calib_frac: plot shares held out for evaluation / calibration.
        ndvi_channels / s1_channels / hidden: network sizes.
        doy: 1 = the network sees the day of year (sin, cos) of each date.
        doy_drop: share of windows trained with the date unknown (``doy=None`` at
            inference must keep working).
        demo_frac: share of each batch drawn from the demo-world series (part of
            ``real_frac``; without ``demo_series`` the plot tables fill ``real_frac``).
        ema: decay of an exponential moving average of the weights (0 = off); the
            average, not the last iterate, is calibrated and shipped.
        s2_only: 1 = also train on the Sentinel-2-only ``test/SK_poly`` series; 0 =
            leave them out, so the camera parcels of the mowing benchmark stay unseen.
        akima: 1 = the network's base is the Akima fill (two more NDVI-branch inputs:
            the Akima fill and the curvature evidence) and inference falls back toward
            it where the network is unsure (:func:`model.sf.fallback`).
        region_aug: 1 = augment real windows as another region would look: per-series
            NDVI gain (0.85-1.15) and offset (+-0.05), the season shifted by +-20 days
            (day-of-year input), 0-0.02 extra NDVI noise, Sentinel-1 at a 12-day
            repeat in 30 % of windows and a +-2 dB level shift of both polarisations.
        s1: 1 = the network sees per-pixel Sentinel-1; 0 = every window is trained with
            its Sentinel-1 inputs missing, the way inference without radar runs (the
            card then records ``inference.s1 = false``). Single-look 10 m backscatter
            carries about 2 dB of speckle per date, more than the signal of a cut or of
            growth, so a network trained on it learns little from it and spends capacity.
    """

    seed: int = 0
    steps: int = 60000
    batch: int = 256
    lr: float = 3e-3
    min_len: int = 24
    max_len: int = 48
    real_frac: float = 0.92
    hidden_weight: float = 1.0
    visible_weight: float = 0.1
    nll_weight: float = 0.05
    eval_frac: float = 0.2
    calib_frac: float = 0.1
    ndvi_channels: int = 16
    s1_channels: int = 8
    hidden: int = 16
    doy: int = 1
    doy_drop: float = 0.15
    demo_frac: float = 0.12
    s2_only: int = 0
    ema: float = 0.999
    akima: int = 0
    region_aug: int = 0
    s1: int = 1


def split_plots(
    plots: np.ndarray, seed: int, eval_frac: float, calib_frac: float
) -> dict[str, list[str]]:
    """Split unique plot ids into train / calib / eval, stratified by letter prefix."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "calib": [], "eval": []}
    uniq = sorted(set(plots.tolist()))
    groups: dict[str, list[str]] = {}
    for p in uniq:
        m = re.match(r"[A-Za-z]+", p)
        groups.setdefault(m.group(0) if m else "", []).append(p)
    for _, members in sorted(groups.items()):
        perm = [members[i] for i in rng.permutation(len(members))]
        n_eval = round(eval_frac * len(perm))
        n_cal = round(calib_frac * len(perm))
        out["eval"] += perm[:n_eval]
        out["calib"] += perm[n_eval : n_eval + n_cal]
        out["train"] += perm[n_eval + n_cal :]
    return {k: sorted(v) for k, v in out.items()}


def hide_runs(
    observed: np.ndarray, rng: np.random.Generator, max_runs: int = 3, max_len: int = 10
) -> np.ndarray:
    """Boolean ``(N, T)`` of observed cells hidden in 1..max_runs runs of 1..max_len dates."""
    n, t = observed.shape
    hidden = np.zeros((n, t), dtype=bool)
    pos = np.arange(t)[None, :]
    n_runs = np.asarray(rng.integers(1, max_runs + 1, n))
    for k in range(max_runs):
        length = rng.integers(1, max_len + 1, (n, 1))
        start = rng.integers(0, np.maximum(t - length + 1, 1))
        run = (pos >= start) & (pos < start + length) & (n_runs[:, None] > k)
        hidden |= run
    return hidden & observed


def region_augment(
    nd: np.ndarray, vv: np.ndarray, vh: np.ndarray, doy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Make real windows look like another region, orbit and year (see ``Recipe``).

    Each change has a physical counterpart: gain and offset = other soils, species and
    atmospheric correction; the season shift = another latitude, altitude or spring;
    noise = smaller plots or other cloud masks; 12-day repeat = Sentinel-1B gone; the
    level shift = another incidence angle.
    """
    n, t = nd.shape
    gain = rng.uniform(0.85, 1.15, (n, 1))
    off = rng.uniform(-0.05, 0.05, (n, 1))
    noise = rng.normal(0, 1, nd.shape) * rng.uniform(0, 0.02, (n, 1))
    nd = np.clip(gain * nd + off + noise, -1, 1).astype(np.float32)
    doy = (doy + rng.uniform(-20, 20, (n, 1)) - 1) % 365.25 + 1
    decimate = np.asarray(rng.random(n)) < 0.3
    phase = rng.integers(0, 2, (n, 1))
    drop = decimate[:, None] & ((np.arange(t)[None, :] + phase) % 2 == 1)
    level = rng.uniform(-2, 2, (n, 1, 1))
    vv = np.where(drop[..., None], np.nan, vv + level).astype(np.float32)
    vh = np.where(drop[..., None], np.nan, vh + level).astype(np.float32)
    return nd, vv, vh, doy.astype(np.float32)


class Batches:
    """Draws training batches of real and synthetic windows (see module docstring)."""

    def __init__(
        self,
        pools: list[PlotSeries],
        recipe: Recipe,
        rng: np.random.Generator,
        demo: PlotSeries | None = None,
    ):
        self.pools = [p for p in pools if len(p.plot)]
        self.doys = [p.doy() for p in self.pools]
        self.demo = [demo] if demo is not None and len(demo.plot) else []
        self.demo_doys = [d.doy() for d in self.demo]
        self.recipe = recipe
        self.rng = rng

    def _real(self, n: int, length: int, demo: bool = False) -> tuple[np.ndarray, ...]:
        rng = self.rng
        pools, doys = (self.demo, self.demo_doys) if demo else (self.pools, self.doys)
        sizes = np.array([len(p.plot) for p in pools], dtype=float)
        which = rng.choice(len(pools), size=n, p=sizes / sizes.sum())
        nd = np.empty((n, length), np.float32)
        doy = np.empty((n, length), np.float32)
        vv = np.empty((n, length, 2), np.float32)
        vh = np.empty((n, length, 2), np.float32)
        for k, pool in enumerate(pools):
            sel = np.flatnonzero(which == k)
            if not len(sel):
                continue
            rows = rng.integers(0, len(pool.plot), len(sel))
            t = pool.ndvi.shape[1]
            off = rng.integers(0, max(t - length, 0) + 1, len(sel))
            cols = np.minimum(off[:, None] + np.arange(length)[None, :], t - 1)
            nd[sel] = pool.ndvi[rows[:, None], cols]
            doy[sel] = doys[k][rows[:, None], cols]
            vv[sel] = pool.vv[rows[:, None], cols]
            vh[sel] = pool.vh[rows[:, None], cols]
        # S1 augmentation: extra speckle, drop, swap to the descending slot.
        noise = rng.uniform(0, 2, (n, 1, 1)) * rng.normal(0, 1, vv.shape)
        vv_a = (vv + noise).astype(np.float32)
        vh_a = (vh + rng.uniform(0, 2, (n, 1, 1)) * rng.normal(0, 1, vh.shape)).astype(np.float32)
        drop = rng.random(n) < 0.2
        vv_a[drop], vh_a[drop] = np.nan, np.nan
        swap = rng.random(n) < 0.4
        shift = rng.uniform(-2, 2, (int(swap.sum()), 1, 1))
        vv_a[swap] = vv_a[swap][..., ::-1] + shift
        vh_a[swap] = vh_a[swap][..., ::-1] + shift
        if self.recipe.region_aug:
            nd, vv_a, vh_a, doy = region_augment(nd, vv_a, vh_a, doy, rng)
        return nd, vv_a, vh_a, doy

    def draw(self) -> tuple[torch.Tensor, ...]:
        """One batch: (input ndvi with hidden gaps, vv, vh, target, weights, doy)."""
        r, rng = self.recipe, self.rng
        length = int(rng.integers(r.min_len, r.max_len + 1))
        n_demo = round(r.batch * r.demo_frac) if self.demo else 0
        n_real = max(round(r.batch * r.real_frac) - n_demo, 0) if self.pools else 0
        parts = []
        if n_real:
            parts.append(self._real(n_real, length))
        if n_demo:
            parts.append(self._real(n_demo, length, demo=True))
        syn = generate(r.batch - n_real - n_demo, length, rng)
        parts.append((syn.ndvi, syn.vv, syn.vh, syn.doy))
        nd, vv, vh, doy = (np.concatenate([p[i] for p in parts]) for i in range(4))
        if not r.s1:
            vv = np.full_like(vv, np.nan)
            vh = np.full_like(vh, np.nan)
        doy[rng.random(len(doy)) < r.doy_drop] = np.nan
        inp, target, w = gap_task(nd, rng, r.hidden_weight, r.visible_weight)
        return (inp, torch.from_numpy(vv), torch.from_numpy(vh), target, w,
                torch.from_numpy(doy.astype(np.float32)))


def gap_task(
    nd: np.ndarray, rng: np.random.Generator, hidden_weight: float, visible_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The self-supervised task on ``(N, T)`` NDVI windows: hide runs of clear dates.

    Returns ``(input, target, weights)``: the windows with the hidden dates set to NaN,
    the NDVI to predict (0 where none) and the loss weights (``hidden_weight`` on hidden
    dates, ``visible_weight`` on visible ones, 0 on windows left with under two
    visible dates).
    """
    observed = np.isfinite(nd)
    hidden = hide_runs(observed, rng)
    visible = observed & ~hidden
    ok = (visible.sum(axis=1) >= 2)[:, None]
    w = np.where(hidden, hidden_weight, np.where(visible, visible_weight, 0.0)) * ok
    inp = np.where(hidden, np.nan, nd).astype(np.float32)
    target = np.nan_to_num(nd, nan=0.0).astype(np.float32)
    return torch.from_numpy(inp), torch.from_numpy(target), torch.from_numpy(w.astype(np.float32))


def loss_fn(
    mean: torch.Tensor, std: torch.Tensor, target: torch.Tensor, w: torch.Tensor, nll_weight: float
) -> torch.Tensor:
    """Weighted L1 of the mean plus weighted Gaussian NLL of the std (detached mean)."""
    l1 = (w * (mean - target).abs()).sum()
    var = std**2
    nll = (w * 0.5 * (torch.log(var) + (target - mean.detach()) ** 2 / var)).sum()
    return (l1 + nll_weight * nll) / w.sum().clamp(min=1)


def _calibration_set(
    series: PlotSeries, rng: np.random.Generator, copies: int = 8
) -> tuple[np.ndarray, ...]:
    nd = np.repeat(series.ndvi, copies, axis=0)
    vv = np.repeat(series.vv, copies, axis=0)
    vh = np.repeat(series.vh, copies, axis=0)
    doy = np.repeat(series.doy(), copies, axis=0)
    hidden = hide_runs(np.isfinite(nd), rng, max_runs=1)
    return np.where(hidden, np.nan, nd).astype(np.float32), vv, vh, nd, hidden, doy


def calibrate(
    net: SFNet, sets: list[PlotSeries], seed: int, use_s1: bool = True
) -> dict[str, Any]:
    """Std scale for 90 % coverage and MAE vs linear on hidden runs of calibration plots.

    ``use_s1=False`` calibrates with the Sentinel-1 inputs withheld, as the network
    will run.
    """
    rng = np.random.default_rng(seed + 1)
    outs: list[tuple[Any, ...]] = []
    lin_errs = []
    net.eval()
    with torch.inference_mode():
        for s in sets:
            if not len(s.plot):
                continue
            inp, vv, vh, truth, hidden, doy = _calibration_set(s, rng)
            if not use_s1:
                vv, vh = np.full_like(vv, np.nan), np.full_like(vh, np.nan)
            feats = build_features(torch.from_numpy(inp), torch.from_numpy(vv),
                                   torch.from_numpy(vh), torch.from_numpy(doy),
                                   akima=net.akima)
            mean, std = net(feats)
            ok = hidden & np.isfinite(inp).any(axis=1, keepdims=True)
            outs.append((mean, std, feats, truth, ok))
            lin = feats[..., 2].transpose(0, 1).numpy()
            lin_errs.append(np.abs(lin - truth)[ok])

    def scaled(scale: float) -> tuple[np.ndarray, np.ndarray]:
        e, d = [], []
        for mean, std, feats, truth, ok in outs:
            s = std * scale
            m = fallback(mean, s, feats) if net.akima else mean
            e.append(np.abs(np.clip(m.numpy(), -1, 1) - truth)[ok])
            d.append(s.numpy()[ok])
        return np.concatenate(e), np.concatenate(d)

    # The fallback depends on the std's scale: find the scale on the raw network, then
    # once more on the blended mean it gives.
    scale = 1.0
    for _ in range(2 if net.akima else 1):
        err, sd = scaled(scale)
        scale *= float(np.quantile(err / sd, 0.9) / Z90)
    err, sd = scaled(scale)
    lin_err = np.concatenate(lin_errs)
    return {
        "std_scale": scale,
        "n_hidden": int(err.size),
        "mae_sf": float(err.mean()),
        "mae_linear": float(lin_err.mean()),
        "coverage90_after_scaling": float(np.mean(err <= Z90 * sd)),
    }


def read_demo_series(path: Path, pad: int = 6, step_days: int = 6) -> PlotSeries:
    """Demo-world pixel series (``.npz`` of ``benchmarks/demo_series.py``) as a pool.

    The season is padded with ``pad`` empty dates on both sides so windows longer than
    the season see gaps (not repeated dates) at its ends, with correct days of year.
    """
    with np.load(path) as z:
        ndvi, vv, vh = z["ndvi"], z["vv"], z["vh"]
        start0 = np.datetime64(str(z["start"]), "D")
    n, t = ndvi.shape
    nd = np.full((n, t + 2 * pad), np.nan, np.float32)
    nd[:, pad : pad + t] = ndvi
    v = np.full((n, t + 2 * pad, 2), np.nan, np.float32)
    h = v.copy()
    v[:, pad : pad + t], h[:, pad : pad + t] = vv, vh
    start = np.full(n, start0 - np.timedelta64(pad * step_days, "D"))
    year = np.full(n, start0.astype("datetime64[Y]").astype(int) + 1970)
    plot = np.array([f"demo{i}" for i in range(n)])
    return PlotSeries(plot, year, start, nd, v, h)


def fit(
    pools: list[PlotSeries],
    calib_sets: list[PlotSeries],
    recipe: Recipe,
    rng: np.random.Generator,
    demo: PlotSeries | None = None,
) -> tuple[SFNet, dict[str, Any], float]:
    """Train a network on ``pools`` and calibrate its std on ``calib_sets``.

    Returns ``(net, calibration, training seconds)``; the network is in eval mode.
    """
    r = recipe
    net = SFNet(r.ndvi_channels, r.s1_channels, r.hidden, doy=bool(r.doy), akima=bool(r.akima))
    opt = torch.optim.Adam(net.parameters(), lr=r.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(k / r.steps, 1.0)))
    )
    batches = Batches(pools, r, rng, demo)
    avg = [p.detach().clone() for p in net.parameters()] if r.ema > 0 else []
    t0 = time.perf_counter()
    running = 0.0
    for step in range(1, r.steps + 1):
        net.train()
        inp, vv, vh, target, w, doy = batches.draw()
        mean, std = net(build_features(inp, vv, vh, doy, akima=net.akima))
        loss = loss_fn(mean, std, target, w, r.nll_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if avg:
            with torch.no_grad():
                for a, p in zip(avg, net.parameters(), strict=True):
                    a.mul_(r.ema).add_(p.detach(), alpha=1.0 - r.ema)
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 200 == 0:
            log.info("step %d/%d loss %.4f (%.0f s)", step, r.steps, running,
                     time.perf_counter() - t0)
    train_s = time.perf_counter() - t0
    if avg:
        with torch.no_grad():
            for a, p in zip(avg, net.parameters(), strict=True):
                p.copy_(a)
    calib = calibrate(net, calib_sets, r.seed, use_s1=bool(r.s1))
    log.info("calibration: %s", calib)
    return net.eval(), calib, train_s


def train(
    data_dir: Path, out: Path, recipe: Recipe | None = None, demo_series: Path | None = None
) -> dict[str, Any]:
    """Train SF, calibrate its std, write ``out`` (safetensors) and the JSON card beside it.

    ``demo_series``: optional ``.npz`` of demo-world pixel series (see
    :func:`read_demo_series`), drawn for ``recipe.demo_frac`` of each batch.
    Returns the model card.
    """
    r = recipe or Recipe()
    torch.manual_seed(r.seed)
    rng = np.random.default_rng(r.seed)
    data_dir = Path(data_dir)
    s12 = read_plot_series(data_dir, months=(1, 12))
    split = split_plots(s12.plot, r.seed, r.eval_frac, r.calib_frac)
    pools = [s12.take(np.isin(s12.plot, split["train"]))]
    calib_sets = [read_plot_series(data_dir, months=(4, 10))]
    calib_sets[0] = calib_sets[0].take(np.isin(calib_sets[0].plot, split["calib"]))
    s2_split: dict[str, list[str]] = {"train": [], "calib": []}
    if r.s2_only and (data_dir / "test" / "SK_poly").is_dir():
        s2o = read_plot_series(data_dir, months=(1, 12), s2_only=True)
        sp = split_plots(s2o.plot, r.seed, 0.0, r.calib_frac)
        s2_split = {"train": sp["train"], "calib": sp["calib"]}
        pools.append(s2o.take(np.isin(s2o.plot, sp["train"])))
        s2s = read_plot_series(data_dir, months=(4, 10), s2_only=True)
        calib_sets.append(s2s.take(np.isin(s2s.plot, sp["calib"])))
    log.info("real training windows from %s plot-years", [len(p.plot) for p in pools])

    demo = read_demo_series(demo_series) if demo_series is not None else None
    if demo is not None:
        log.info("demo-world training series: %d x %d dates", *demo.ndvi.shape)
    net, calib, train_s = fit(pools, calib_sets, r, rng, demo)

    n_params = sum(p.numel() for p in net.parameters())
    card: dict[str, Any] = {
        "name": "SF (Sentinel-1/2 fusion CNN-RNN gap filler)",
        "version": __version__,
        "reference": "arXiv 2403.09554 (Tsardanidis et al.), adapted: see model/sf.py",
        "architecture": {
            "class": "model.sf.SFNet",
            "config": net.config,
            "parameters": n_params,
            "inputs": "per date: NDVI (NaN gaps), VV/VH dB per orbit direction (NaN = none)"
            + (", day of year of the bin centre (optional)" if r.doy else ""),
            "outputs": "per date: NDVI mean and std; observed dates kept as observed",
        },
        "normalisation": {
            "ndvi": "raw NDVI; gaps replaced by 0 with a mask channel",
            "s1_scale_db": S1_SCALE_DB,
            "s1_level_db": list(S1_LEVEL_DB),
            "s1_anomaly": "per-series per-direction temporal mean subtracted, clipped at +-3",
            "max_distance_steps": MAX_DISTANCE,
            "min_std": MIN_STD,
            "doy": "sin and cos of 2 pi doy / 365.25; unknown date = (0, 0)",
        },
        "calibration": calib,
        "training": {
            "command": f"python -m model train --data DIR --seed {r.seed}",
            "recipe": asdict(r),
            "seconds": round(train_s, 1),
            "torch_threads": torch.get_num_threads(),
            "data": {
                "real": str(data_dir),
                "real_source": "simonopravil/gee-mowing-detection data/ (commit ab7c3be, MIT)",
                "synthetic": "model.synth.generate (per-pixel generator, see its docstring)",
                **({"demo_series": str(demo_series), "demo_series_n": len(demo.plot)}
                   if demo is not None and demo_series is not None else {}),
            },
            "split": {
                "s1s2_plots": split,
                "s2_only_plots": s2_split,
                "rule": "split by plot id; eval plots are never trained on or calibrated on",
            },
        },
        "metrics": {},
    }
    if not r.s1:
        card["inference"] = {"s1": False,
                             "s1_rule": "trained with Sentinel-1 withheld (recipe s1=0)"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"version": __version__})
    tmp.replace(out)
    write_card(out.with_suffix(".json"), card)
    return card


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file beside it, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write the model card atomically."""
    write_text(path, json.dumps(card, indent=2) + "\n")

