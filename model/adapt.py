"""Test-time adaptation: SF fine-tuned on the clear observations of the series it fills.

A network trained on other regions meets a new region's calendar, species, management
and cloud regime. The series a user hands in carry evidence of all of these: their
own clear observations. :func:`adapt` fine-tunes a copy of the network on them with
the training task itself (hide runs of clear dates, predict them; no value the user
lacks is needed), keeps it near the shipped weights, checks it on series it did not
fine-tune on and calibrates the std on those:

1. Series with at least :data:`MIN_CLEAR` clear dates take part; with fewer than
   :data:`MIN_SERIES` of them the model is returned unchanged (the reason is logged).
2. A seeded fifth of them (:data:`HOLDOUT_FRAC`, at most :data:`MAX_HOLDOUT`) is held
   out; the rest are fine-tuned on: :data:`STEPS` Adam steps (learning rate
   :data:`LR`, cosine decay) of :data:`BATCH` windows with 1-3 hidden runs of 1-10
   dates, the training loss of :mod:`model.train` plus :data:`L2SP` times the squared
   distance of the weights from the shipped ones (L2-SP, Li et al. 2018: a new region
   shifts the season, it does not call for another network, and a few hundred series
   cannot support one).
3. On the held-out series one run per copy is hidden (as the calibration of
   :mod:`model.train` does): the fine-tuned network is kept only if its MAE there is
   below the shipped one's; whichever is kept gets its std scaled so that 90 % of
   those errors fall inside +-1.645 std (a per-run calibration: the shipped scale was
   set on the training regions).

Everything is seeded: the same series give the same filled values. Measured in
``python -m model cv`` (variant ``sf_adapted``: each left-out domain adapted on one half
of its plots, scored on the other).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from model import SFModel
from model.data import PlotSeries
from model.sf import SFNet, build_features

log = logging.getLogger(__name__)

#: Fewest clear dates a series needs to take part.
MIN_CLEAR = 6
#: Fewest taking part series for adaptation (else the model stays as shipped).
MIN_SERIES = 30
#: Share of the series held out for the check and the std calibration, and their
#: most (enough for a 90 % quantile; bounds the memory of the check on large tables).
HOLDOUT_FRAC = 0.2
MAX_HOLDOUT = 2000
#: Fine-tuning steps, windows per step and peak learning rate.
STEPS = 1000
BATCH = 128
LR = 1e-3
#: Weight of the squared distance to the shipped weights. 0.001: on every left-out
#: domain of the cross-domain validation (each half of a domain's plots adapted on the
#: other, about 100-200 series) the 0.01 used before held the network back from the
#: region's shift (12-18 / 24-30 / 36-60 d gaps 0.3-1.9 points worse in every domain and
#: bucket); 40-series tables gained nothing from a weaker pull and with none at all the
#: held-out check rejected the over-fitted network (``model/weights/eval/ablation/
#: abl_adapt_l2sp.md``).
L2SP = 0.001
#: Window lengths in dates (capped by the series length).
MIN_LEN, MAX_LEN = 24, 48


@dataclass
class Adaptation:
    """What :func:`adapt` did (recorded in the model card as ``adaptation``)."""

    kept: bool
    reason: str
    n_series: int = 0
    n_holdout: int = 0
    steps: int = 0
    seconds: float = 0.0
    holdout_mae_shipped: float | None = None
    holdout_mae_adapted: float | None = None
    std_scale: float | None = None
    coverage90_holdout: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (floats rounded)."""
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _windows(
    series: PlotSeries, doy: np.ndarray, use_s1: bool, rng: np.random.Generator
) -> tuple[torch.Tensor, ...]:
    """One fine-tuning batch: crops of random series with hidden runs (train's task)."""
    from model.train import Recipe, gap_task

    n, t = series.ndvi.shape
    length = int(rng.integers(min(MIN_LEN, t), min(MAX_LEN, t) + 1))
    rows = rng.integers(0, n, BATCH)
    off = rng.integers(0, t - length + 1, BATCH)
    cols = off[:, None] + np.arange(length)[None, :]
    nd = series.ndvi[rows[:, None], cols]
    if use_s1:
        vv = series.vv[rows[:, None], cols]
        vh = series.vh[rows[:, None], cols]
    else:
        vv = vh = np.full((BATCH, length, series.vv.shape[2]), np.nan, np.float32)
    inp, target, w = gap_task(nd, rng, Recipe.hidden_weight, Recipe.visible_weight)
    return (inp, torch.from_numpy(np.ascontiguousarray(vv, np.float32)),
            torch.from_numpy(np.ascontiguousarray(vh, np.float32)), target, w,
            torch.from_numpy(np.ascontiguousarray(doy[rows[:, None], cols], np.float32)))


def fine_tune(net: SFNet, series: PlotSeries, use_s1: bool, seed: int,
              steps: int = STEPS) -> SFNet:
    """A copy of ``net`` fine-tuned on ``series`` (see the module docstring, step 2)."""
    from model.train import Recipe, loss_fn

    net = copy.deepcopy(net)
    ref = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    rng = np.random.default_rng(seed)
    doy = series.doy()
    net.train()
    for k in range(steps):
        for g in opt.param_groups:
            g["lr"] = LR * 0.5 * (1 + np.cos(np.pi * k / steps))
        inp, vv, vh, target, w, d = _windows(series, doy, use_s1, rng)
        mean, std = net(build_features(inp, vv, vh, d, akima=net.akima))
        loss = loss_fn(mean, std, target, w, Recipe.nll_weight)
        loss = loss + L2SP * sum(((p - q) ** 2).sum()
                                 for p, q in zip(net.parameters(), ref, strict=True))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return net.eval()


def adapt(sf: SFModel, series: PlotSeries, seed: int = 0, steps: int = STEPS
          ) -> tuple[SFModel, Adaptation]:
    """SF adapted to ``series`` (module docstring); ``sf`` itself is left unchanged.

    Args:
        sf: the model (shipped weights or any other).
        series: the series to be filled, padded to one length (NaN = no observation).
        seed: seeds the split, the windows and the hidden runs.
        steps: fine-tuning steps.

    Returns:
        ``(model, report)``: a new :class:`SFModel` (the fine-tuned network, or the
        given one when adaptation did not pay on the held-out series; its std scale
        calibrated on those series either way) and what was done. With too few
        series, ``sf`` itself and a report saying so.
    """
    from model.train import calibrate

    clear = np.isfinite(series.ndvi).sum(axis=1)
    rows = np.flatnonzero(clear >= MIN_CLEAR)
    if len(rows) < MIN_SERIES:
        reason = (f"{len(rows)} series with >= {MIN_CLEAR} clear dates, fewer than "
                  f"{MIN_SERIES}: shipped weights as they are")
        log.info("SF not adapted: %s", reason)
        return sf, Adaptation(kept=False, reason=reason, n_series=len(rows))
    rng = np.random.default_rng(seed)
    perm = rows[rng.permutation(len(rows))]
    n_hold = min(max(1, round(HOLDOUT_FRAC * len(rows))), MAX_HOLDOUT)
    hold, tune = series.take(np.sort(perm[:n_hold])), series.take(np.sort(perm[n_hold:]))
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = fine_tune(sf.net, tune, sf.use_s1, seed, steps)
    seconds = time.perf_counter() - t0
    shipped = calibrate(sf.net, [hold], seed, use_s1=sf.use_s1)
    adapted = calibrate(net, [hold], seed, use_s1=sf.use_s1)
    kept = adapted["mae_sf"] < shipped["mae_sf"]
    cal = adapted if kept else shipped
    report = Adaptation(
        kept=kept,
        reason=("fine-tuned network is better on the held-out series" if kept else
                "fine-tuned network not better on the held-out series: shipped network, "
                "std calibrated there"),
        n_series=len(rows), n_holdout=n_hold, steps=steps, seconds=seconds,
        holdout_mae_shipped=shipped["mae_sf"], holdout_mae_adapted=adapted["mae_sf"],
        std_scale=cal["std_scale"], coverage90_holdout=cal["coverage90_after_scaling"])
    card = copy.deepcopy(sf.card)
    card["calibration_shipped"] = card.get("calibration", {})
    card["calibration"] = cal
    card["adaptation"] = report.as_dict()
    out = SFModel(net if kept else sf.net, card)
    out.fallback = sf.fallback
    out.use_s1 = sf.use_s1
    log.info("SF adapted to %d series in %.0f s (%d held out): held-out MAE %.4f shipped, "
             "%.4f fine-tuned -> %s; std scale %.3f", len(rows), seconds, n_hold,
             shipped["mae_sf"], adapted["mae_sf"], "fine-tuned kept" if kept else
             "shipped kept", cal["std_scale"])
    return out, report
