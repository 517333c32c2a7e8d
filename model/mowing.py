"""A learned mowing-event detector: per 6-day bin, the probability that a cut happened.

The network reads what a threshold rule reads and what it cannot weigh: the binned
clear NDVI observations and their mask, the linear interpolation between them, how
far each date lies from the previous and the next observation (a drop seen across a
three-week gap is weaker evidence than one between two clear dates a bin apart). It
can read the day of year too (recipe ``calendar=1``), but the shipped networks do
not: a network that read it learned the training regions' cutting calendar, and with
the same series dated 30 days earlier or later it lost 0.02-0.16 F1 on domains it
never saw, while without it it scored the same across domains
(``benchmarks/figures/mowing_lodo.md``). A new region, altitude or year greens up and
cuts weeks apart; the series itself shows the season (green-up and senescence are
slow, a cut is a drop).

Two temporal convolutions give each date its neighbourhood, a bidirectional GRU the
whole season (regrowth after a cut, the sward's peak before it), and a
convolutional head one logit per date (:class:`MowNet`); three of them form the
shipped ensemble, evaluated together by :class:`FusedGRUEnsemble` (the same
probabilities, about 3 times the pixels per second of running the members' modules).

Faster, smaller networks have been scored across domains and are not the default
(``benchmarks/figures/mowing_fast.md``): a convolution-only network
(:class:`MowConvNet`: residual 1-D convolutions whose dilation doubles per layer, 32
bins either side, 16 channels, no recurrence; ``net="conv"``) and one GRU network of
width 16 (``seeds=1, hidden=16``), each trained on the labels or distilled from the
GRU ensemble (``distill``), also on unlabelled series (``transfer``). The narrow
GRU runs about 5 times as fast as the fused ensemble; distilled from it for 3200
steps with the transfer set, it scored 0.002 lower mean F1 across domains (three
seeds each) and is shipped beside the ensemble as ``--detector learned-fast``.

It deliberately takes no Sentinel-1 per point: in the labelled plot tables VV, VH
and VH-VV correlate with NDVI at |r| < 0.1 (single-look speckle, about 2 dB per
date), and the camera parcels have none. Nor does it take the SF fill: the fill is
made from the same observations (it adds no information the network lacks), and a
detector that depends on one filler's version would have to be retrained with it.

Trained with one label per reference cut (the bin holding its date), grazing periods
masked out of the loss (neither positives nor negatives), and augmentation for a new
region's cloudiness and sensor: clear observations hidden at random (0-40 % more per
series), per-series NDVI gain and offset, and observation noise. A quarter of each
batch are training series with one more cut implanted (:func:`implant_cuts`): at a
day the reference leaves free, the series lowered toward stubble by a light,
partial or close cut and regrowing, on the row's own clouds, noise and phenology. A
few hundred labelled seasons hold few cuts of each depth and timing; implanted
ones raised the ensemble's F1 on the LR plots by 0.04 and on the camera parcels by
0.01 and left NB level (``benchmarks/figures/mowing_lodo.md``). Several seeds form
an ensemble whose mean probability is the output. A distilled recipe (``distill >
0``) trains a teacher ensemble first (:func:`teacher_recipe`); its members learn, on
the same augmented batches, from the labels and the teacher's mean probability, and
with ``transfer`` from the teacher alone on series without reference events.

>>> det = load_detector()                   # shipped weights (mowing.safetensors)
>>> prob = det.predict_proba(ndvi, doy)     # (N, T) per-bin cut probability
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.sf import YEAR_DAYS, _linear_fill
from model.train import write_card

__all__ = [
    "SHIPPED",
    "DetectorRecipe",
    "FusedGRUEnsemble",
    "MowConvNet",
    "MowNet",
    "MowingDetector",
    "build_net",
    "default_detector_weights",
    "detector_features",
    "fit_detector",
    "load_detector",
]

#: Input channels of :func:`detector_features`.
CHANNELS = ("observed ndvi (0 = none)", "clear mask", "linear fill",
            "steps since previous observation / 5", "steps to next observation / 5",
            "sin doy", "cos doy", "date valid")
#: The ways a :class:`MowNet`'s GRU can run (the recipe's ``directions``).
DIRECTIONS = ("both", "forward", "backward")
#: How events are read off the probabilities (written into every card). The threshold
#: is set without looking at any score: for a calibrated probability the F1-optimal
#: threshold is half the attainable F1 (Lipton, Elkan and Naryanaswamy 2014, "Optimal
#: thresholding of classifiers to maximize F1 measure"), about 0.4 for the F1 near 0.8
#: that detectors reach on these data; 30 days between cuts is the regrowth time.
DECODE = {"threshold": 0.4, "min_gap_days": 30.0}
#: Distances to the nearest observation are scaled by this many steps and capped at 3.
_DIST_SCALE = 5.0


#: The shipped detectors by name (``--detector``): the default GRU ensemble, and the
#: one narrow GRU distilled from it for country-scale runs (about 5 times the pixels per
#: second, 0.002 lower mean F1 across domains; ``benchmarks/figures/mowing_fast.md``).
SHIPPED = {"learned": "mowing.safetensors", "learned-fast": "mowing_fast.safetensors"}


def default_detector_weights(name: str = "learned") -> Path:
    """Path of a shipped detector's weights (:data:`SHIPPED`; default ``mowing.safetensors``)."""
    return Path(__file__).parent / "weights" / SHIPPED[name]


def detector_features(ndvi: np.ndarray | torch.Tensor, doy: np.ndarray | torch.Tensor,
                      calendar: bool = True) -> torch.Tensor:
    """``(N, C, T)`` network input from ``(N, T)`` NDVI (NaN = no clear observation).

    ``doy``: day of year of each bin centre, ``(T,)`` or ``(N, T)``; NaN marks dates
    past the end of a row's season (padding): they get zero input and no output. Dates
    shared by every row, given as ``(T,)``, are computed once and written to every row.
    ``calendar`` False leaves the day-of-year channels at zero (a network trained so
    reads a cut from the series alone; the recipe's ``calendar``).
    """
    x = torch.as_tensor(np.array(ndvi, np.float32))
    d = torch.as_tensor(np.array(doy, np.float32))
    if d.ndim == 2:
        d = d.expand_as(x)
    valid = torch.isfinite(x)
    filled, d_prev, d_next = _linear_fill(torch.nan_to_num(x), valid)
    date_ok = torch.isfinite(d)
    # the channels written in place (a stack of eight copies cost a third of the time)
    out = torch.empty(x.shape[0], len(CHANNELS), x.shape[1])
    torch.where(valid, x, torch.zeros((), dtype=x.dtype), out=out[:, 0])
    out[:, 1] = valid
    out[:, 2] = filled
    torch.clamp(d_prev / _DIST_SCALE, max=3.0, out=out[:, 3])
    torch.clamp(d_next / _DIST_SCALE, max=3.0, out=out[:, 4])
    if calendar:
        phase = 2 * np.pi * torch.nan_to_num(d) / YEAR_DAYS
        out[:, 5] = torch.sin(phase)
        out[:, 6] = torch.cos(phase)
    else:
        out[:, 5:7] = 0.0
    out[:, 7] = date_ok
    if not bool(date_ok.all()):  # padding dates: zero input
        out.mul_(date_ok.to(torch.float32).expand_as(x)[:, None, :])
    return out


class MowNet(nn.Module):
    """Temporal convolutions, a GRU, one logit per date.

    The GRU runs both ways (``directions="both"``, the default) or one way only, half
    the recurrent steps: ``"forward"`` (what follows a date reaches it through the
    convolutions alone, 6 bins either side) or ``"backward"`` (what precedes it).
    """

    def __init__(self, hidden: int = 32, directions: str = "both") -> None:
        super().__init__()
        if directions not in DIRECTIONS:
            raise ValueError(f"GRU directions {directions!r}: expected one of "
                             f"{', '.join(DIRECTIONS)}")
        self.hidden, self.directions = hidden, directions
        both = directions == "both"
        c = len(CHANNELS)
        self.conv = nn.Sequential(
            nn.Conv1d(c, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=both)
        self.head = nn.Conv1d((2 if both else 1) * hidden, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` features -> ``(B, T)`` logits."""
        z = self.conv(x).transpose(1, 2)
        if self.directions == "backward":  # the one direction reads the dates from the end
            z, _ = self.gru(z.flip(1))
            z = z.flip(1)
        else:
            z, _ = self.gru(z)
        return self.head(z.transpose(1, 2))[:, 0]


class MowConvNet(nn.Module):
    """Residual dilated temporal convolutions (no recurrence), one logit per date.

    An input convolution (kernel 3) to ``width`` channels, one residual block per entry
    of ``dilations`` (kernel 3 at that dilation, GELU), a 1x1 head. Each date's output
    sees ``1 + sum(dilations)`` bins either side.
    """

    def __init__(self, width: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 8, 16)) -> None:
        super().__init__()
        self.width = width
        self.dilations = tuple(int(d) for d in dilations)
        self.inp = nn.Conv1d(len(CHANNELS), width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv1d(width, width, 3, padding=d, dilation=d)
                                    for d in self.dilations)
        self.act = nn.GELU()
        self.head = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` features -> ``(B, T)`` logits."""
        z = self.act(self.inp(x))
        for block in self.blocks:
            z = z + self.act(block(z))
        return self.head(z)[:, 0]


class FusedGRUEnsemble:
    """The members of a :class:`MowNet` ensemble evaluated together, for inference.

    The same arithmetic as running each member's modules one after the other (equal
    to ``nn.GRU`` within float rounding, about 1e-6 on the probabilities), laid out
    for one CPU core:

    - the convolutions run date-major: on a padded ``(date, row, channel)`` array each
      tap of a kernel reads a contiguous slab shifted by the tap's dilation, so a
      convolution is one matrix product per tap (the members' first convolutions one
      product, their grouped second ones one batched product), and its output is
      already in the order the GRU steps through;
    - the GRU steps of every member and both directions (or a one-way GRU's one)
      advance together (a batched product per step and direction for the inputs, the
      backward direction reading the dates from the end, and one for the hidden
      states; the gates in place into preallocated buffers), so each step costs a
      dozen small operations instead of six ``nn.GRU`` cells' worth;
    - the candidate's tanh is taken as ``2 sigmoid(2a) - 1`` (about twice as fast as
      tanh here), the doubling folded into the candidate gate's weights (exact: a
      power of two);
    - rows go through in blocks of ``block`` so that a step's working set stays in
      the core's cache.

    ``benchmarks/bench_detector.py`` times it against the members' modules
    (``--unfused``).
    """

    @staticmethod
    def fits(nets: list[nn.Module]) -> bool:
        """Whether ``nets`` can be fused: :class:`MowNet` members of one width and
        ``directions``."""
        return bool(nets) and all(type(n) is MowNet and n.hidden == nets[0].hidden
                                  and n.directions == nets[0].directions for n in nets)

    def __init__(self, nets: list[MowNet], prior_shift: float = 0.0, block: int = 0
                 ) -> None:
        if not self.fits(nets):  # type: ignore[arg-type]
            raise ValueError("a fused ensemble needs MowNet members of one width and "
                             "directions setting")
        m, h = len(nets), nets[0].hidden
        self.members, self.hidden, self.prior_shift = m, h, float(prior_shift)
        # one GRU direction, the backward one read from the end like the second of "both"
        self.dirs = dirs = 2 if nets[0].directions == "both" else 1
        self.backward = nets[0].directions == "backward"
        gru_names = ["gru.%s_l0", "gru.%s_l0_reverse"][:dirs]
        # rows x members x width near 16 k: 128 rows for 3 x 32 (measured best, 64-256
        # within 20 %), 1024 for one narrow member
        self.block = block or int(np.clip(2 ** round(np.log2(16384 / (m * h))), 64, 1024))
        sds = [n.state_dict() for n in nets]

        def cat(name: str) -> torch.Tensor:
            return torch.cat([sd[name] for sd in sds]).detach().clone()

        def stack(name: str) -> torch.Tensor:
            return torch.stack([sd[name] for sd in sds]).detach()

        w1, self.b1 = cat("conv.0.weight"), cat("conv.0.bias")
        w2 = cat("conv.2.weight").view(m, h, h, -1)  # (member, out, in, tap)
        # one (in, out) matrix per tap; the second convolution's per member
        self.taps1 = [w1[:, :, j].t().contiguous() for j in range(w1.shape[-1])]
        self.taps2 = [w2[..., j].transpose(1, 2).contiguous() for j in range(w2.shape[-1])]
        self.b2 = cat("conv.2.bias").view(m, 1, h)
        # the candidate gate's rows doubled, for tanh(a) = 2 sigmoid(2a) - 1
        two = torch.ones(3 * h)
        two[2 * h:] = 2.0
        def gru(kind: str) -> torch.Tensor:  # direction-major: index d * m + member
            return torch.cat([stack(name % kind) for name in gru_names])

        # weights transposed for x @ W, the gates along the last axis
        self.w_in = gru("weight_ih").transpose(1, 2).mul(two).contiguous()
        self.b_in = gru("bias_ih").mul(two)[:, None].contiguous()
        self.w_hh = gru("weight_hh").transpose(1, 2).mul(two).contiguous()
        self.b_hh = gru("bias_hh").mul(two)[:, None].contiguous()
        head = stack("head.weight")[:, 0]  # (m, dirs * h, 3)
        # (dirs * m, 3, h): direction-major, the taps as rows
        self.w_head = torch.cat([head[:, d * h:(d + 1) * h] for d in range(dirs)]
                                ).transpose(1, 2).contiguous()
        self.b_head = stack("head.bias").clone()  # (m, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` features -> ``(B, T)`` mean of the members' probabilities."""
        with torch.inference_mode():
            return torch.cat([self._block(x[i:i + self.block])
                              for i in range(0, len(x), self.block)])

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        m, h, dirs = self.members, self.hidden, self.dirs
        b, c, t = x.shape
        gelu = torch.nn.functional.gelu
        k1, k2 = len(self.taps1), len(self.taps2)
        xp = x.new_zeros(t + k1 - 1, b, c)  # (date, row, channel), "same" padding
        xp[k1 // 2:k1 // 2 + t] = x.permute(2, 0, 1)
        z1 = torch.addmm(self.b1, xp[:t].reshape(t * b, c), self.taps1[0])
        for j in range(1, k1):
            z1.addmm_(xp[j:j + t].reshape(t * b, c), self.taps1[j])
        zp = x.new_zeros(m, t + 2 * (k2 - 1), b, h)  # dilation 2
        zp[:, k2 - 1:k2 - 1 + t] = gelu(z1).view(t, b, m, h).permute(2, 0, 1, 3)
        z2 = torch.baddbmm(self.b2, zp[:, :t].reshape(m, t * b, h), self.taps2[0])
        for j in range(1, k2):
            z2.baddbmm_(zp[:, 2 * j:2 * j + t].reshape(m, t * b, h), self.taps2[j])
        z = gelu(z2).view(m, t, b, h)  # (m, T, B, h)
        # step s reads date s forwards and date T - 1 - s backwards: one input product
        # per direction and step, straight from z (a reversed copy of z cost more)
        w_fwd, w_bwd = self.w_in[:m], self.w_in[m:]
        b_fwd, b_bwd = self.b_in[:m], self.b_in[m:]
        # states[:, s]: the hidden states after s steps; the forward direction's step s
        # is date s - 1, the backward direction's date T - s
        states = torch.empty(dirs * m, t + 1, b, h)
        states[:, 0] = 0.0
        gi = torch.empty(dirs * m, b, 3 * h)
        gh = torch.empty(dirs * m, b, 3 * h)
        rz = torch.empty(dirs * m, b, 2 * h)
        cand = torch.empty(dirs * m, b, h)
        gi_fwd, gi_bwd = gi[:m], gi[m:]
        # every view the steps use made once (a view costs microseconds a call): the
        # buffers' gates, the dates of z and the states
        gi_rz, gi_n = gi[..., :2 * h], gi[..., 2 * h:]
        gh_rz, gh_n = gh[..., :2 * h], gh[..., 2 * h:]
        reset, update = rz[..., :h], rz[..., h:]
        dates, steps = z.unbind(1), states.unbind(1)
        ahead = dates[::-1] if self.backward else dates  # the first direction's dates
        # 0-d tensors: a Python number would be wrapped into a new tensor at every call
        two, one = torch.tensor(2.0), torch.tensor(1.0)
        for s in range(t):
            prev, new = steps[s], steps[s + 1]
            torch.baddbmm(b_fwd, ahead[s], w_fwd, out=gi_fwd)
            if dirs == 2:
                torch.baddbmm(b_bwd, dates[t - 1 - s], w_bwd, out=gi_bwd)
            torch.baddbmm(self.b_hh, prev, self.w_hh, out=gh)
            torch.add(gi_rz, gh_rz, out=rz).sigmoid_()
            # tanh of the candidate, whose pre-activation the weights doubled
            torch.mul(reset, gh_n, out=cand).add_(gi_n)
            cand.sigmoid_().mul_(two).sub_(one)
            torch.sub(prev, cand, out=new).mul_(update).add_(cand)
        # the head's three taps, as (tap, date x row) products: a wide output is
        # several times faster than a three-column one
        out = states[:, 1:].reshape(dirs * m, t * b, h).transpose(1, 2)
        taps = torch.bmm(self.w_head, out).view(dirs, m, 3, t, b)
        if dirs == 2:
            taps = taps[0] + taps[1].flip(2)  # the backward direction back in date order
        else:
            taps = taps[0].flip(2) if self.backward else taps[0]
        logit = taps[:, 1] + self.b_head[:, :, None]
        logit[:, 1:] += taps[:, 0, :-1]
        logit[:, :-1] += taps[:, 2, 1:]
        return torch.sigmoid(logit - self.prior_shift).mean(0).t()


#: Network classes by the recipe's ``net`` (cards without one hold GRU weights).
NETS = {"conv": "model.mowing.MowConvNet", "gru": "model.mowing.MowNet"}


def build_net(recipe: dict[str, Any]) -> nn.Module:
    """The untrained network a recipe (a card's ``recipe``) describes.

    ``net`` ``"conv"`` (:class:`MowConvNet`, ``hidden`` channels, ``dilations``) or
    ``"gru"`` (:class:`MowNet`, ``hidden`` units); a recipe without ``net`` is from
    before the convolutional design and builds the GRU.
    """
    kind = recipe.get("net", "gru")
    if kind == "conv":
        return MowConvNet(int(recipe.get("hidden", 16)),
                          tuple(recipe.get("dilations", (1, 2, 4, 8, 16))))
    if kind == "gru":
        return MowNet(int(recipe.get("hidden", 32)), str(recipe.get("directions", "both")))
    raise ValueError(f"detector recipe: unknown net {kind!r} (expected one of {sorted(NETS)})")


def architecture(recipe: dict[str, Any]) -> dict[str, Any]:
    """The card's description of the network a recipe builds."""
    kind = recipe.get("net", "gru")
    arch: dict[str, Any] = {"class": NETS.get(kind, kind), "net": kind,
                            "width": int(recipe.get("hidden", 32))}
    if kind == "conv":
        dil = [int(d) for d in recipe.get("dilations", (1, 2, 4, 8, 16))]
        arch.update(dilations=dil, kernel=3, receptive_field_bins=3 + 2 * sum(dil))
    elif kind == "gru":
        arch["directions"] = str(recipe.get("directions", "both"))
    return arch


@dataclass(frozen=True)
class DetectorRecipe:
    """How the detector is trained (see the module docstring).

    Attributes:
        seeds: ensemble members (one network per seed).
        first_seed: seed of the first member (members use ``first_seed + k``).
        steps: optimiser steps per member.
        batch: series per step.
        lr: peak learning rate (one-cycle schedule).
        pos_weight: weight of a cut bin in the loss against a bin without a cut.
        hide: most extra share of clear observations hidden per series.
        gain, offset, noise: per-series NDVI gain (1 +- gain) and offset (+- offset),
            per-observation noise (std), all NDVI units.
        calendar: 1 = the network reads the day of year (sine and cosine); 0 (the
            shipped networks') = it does not, and reads a cut from the series alone
            (those channels stay zero). A card without the setting is from before it
            (``learned-fast``'s until 2026-12-08): its networks read the day of year.
        shift: most days (+-) by which a series' day-of-year input is moved, per
            series: the same season on another calendar (regions, altitudes and years
            green up and cut weeks apart), so that the network reads the cut from the
            series and not from the date it saw cuts on in training. 0: none.
        implant: share of each batch drawn as labelled rows with one more cut
            implanted (:func:`implant_cuts`); 0: none (the reference cuts only).
        net: ``"conv"`` (:class:`MowConvNet`) or ``"gru"`` (:class:`MowNet`).
        hidden: network width (convolution channels, or GRU units).
        directions: the GRU's: ``"both"``, ``"forward"`` or ``"backward"``.
        dilations: the convolutional network's dilation per residual block.
        distill: weight of a teacher's probabilities in the loss, against ``1 -
            distill`` for the labels (0: labels only, no teacher). The teacher is an
            ensemble trained on the same series first (:func:`teacher_recipe`); the
            members learn its probabilities on the same augmented batches.
        transfer: with ``distill``: 1 = the members also learn the teacher's
            probabilities on every valid date of unlabelled series of the training
            domains (plot-years without reference events; no label term there), a
            transfer set drawn alongside the labelled rows.
        teacher_net, teacher_hidden, teacher_directions, teacher_seeds, teacher_steps,
        teacher_lr, teacher_first_seed: the teacher's network, width, GRU directions,
            members, steps, learning rate and first seed (its other
            settings are this recipe's; another ``first_seed`` trains other members
            from the same teacher).
    """

    seeds: int = 3
    first_seed: int = 0
    steps: int = 800
    batch: int = 128
    lr: float = 3e-3
    pos_weight: float = 4.0
    hide: float = 0.4
    gain: float = 0.15
    offset: float = 0.08
    noise: float = 0.01
    calendar: int = 0
    shift: float = 0.0
    implant: float = 0.25
    net: str = "gru"
    hidden: int = 32
    directions: str = "both"
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    distill: float = 0.0
    transfer: int = 0
    teacher_net: str = "gru"
    teacher_hidden: int = 32
    teacher_directions: str = "both"
    teacher_seeds: int = 3
    teacher_steps: int = 800
    teacher_lr: float = 3e-3
    teacher_first_seed: int = 0


def with_settings(recipe: DetectorRecipe, settings: list[str]) -> DetectorRecipe:
    """``recipe`` with ``KEY=VALUE`` settings (``net=conv``, ``lr=0.01``, ``dilations=1,2,4``).

    Raises ValueError naming the setting that is no recipe field or does not parse.
    """
    types = {f.name: f.type for f in fields(DetectorRecipe)}
    over: dict[str, Any] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"recipe setting {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(types)}")
        kind = str(types[key])
        try:
            if kind.startswith("tuple"):
                over[key] = tuple(int(v) for v in text.split(","))
            elif kind in ("int", "float"):
                over[key] = int(text) if kind == "int" else float(text)
            else:
                over[key] = text
        except ValueError:
            raise ValueError(f"recipe setting {item!r}: {text!r} is not a {kind}") from None
    return replace(recipe, **over)


def teacher_recipe(recipe: DetectorRecipe) -> DetectorRecipe:
    """The recipe of the ensemble whose probabilities a distilled recipe's members learn."""
    return replace(recipe, net=recipe.teacher_net, hidden=recipe.teacher_hidden,
                   directions=recipe.teacher_directions, seeds=recipe.teacher_seeds,
                   steps=recipe.teacher_steps, lr=recipe.teacher_lr,
                   first_seed=recipe.teacher_first_seed, distill=0.0, transfer=0)


def augment(ndvi: np.ndarray, r: DetectorRecipe, rng: np.random.Generator) -> np.ndarray:
    """A new region's look of the same series: fewer clear dates, other gain and offset."""
    x = ndvi.copy()
    n = len(x)
    hide = rng.random(x.shape) < rng.uniform(0, r.hide, (n, 1))
    x[np.isfinite(x) & hide] = np.nan
    gain = rng.uniform(1 - r.gain, 1 + r.gain, (n, 1))
    off = rng.uniform(-r.offset, r.offset, (n, 1))
    x = x * gain + off + rng.normal(0, r.noise, x.shape)
    return np.clip(x, -1, 1).astype(np.float32)


def shifted(doy: np.ndarray, r: DetectorRecipe, rng: np.random.Generator) -> np.ndarray:
    """The day-of-year rows moved by up to ``r.shift`` days each (unchanged at 0)."""
    if r.shift <= 0:
        return doy
    return doy + rng.uniform(-r.shift, r.shift, (len(doy), 1)).astype(doy.dtype)


def implant_cuts(ndvi: np.ndarray, doy: np.ndarray, target: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Real series with one more cut each: a cut the reference never saw, of any depth.

    Per row, a day between day of year 120 and 275 at least 30 days from its reference
    cuts (none where there is no such day). From that day the sward's NDVI is lowered
    toward the stubble's (0.3-0.55), by 40-100 % of the way (a partial or light cut
    to a close one), and regrows toward the series as it was (exponentially, 10-35
    day time constant). The clouds, noise, phenology and other cuts stay the row's own.

    Args:
        ndvi: ``(N, T)`` binned clear NDVI (NaN = none).
        doy: ``(N, T)`` days of year of the bin centres (NaN = padding).
        target: ``(N, T)`` the rows' reference cuts (1 in a cut's bin).

    Returns:
        ``(ndvi, target)`` with the implanted cuts.
    """
    x, y = ndvi.copy(), target.copy()
    days = np.nan_to_num(doy.astype(np.float64), nan=-1e3)
    for i in range(len(x)):
        cuts = days[i, y[i] > 0]
        ok = (days[i] >= 120) & (days[i] <= 275)
        if len(cuts):
            ok &= np.abs(days[i][:, None] - cuts[None, :]).min(axis=1) >= 30
        bins = np.flatnonzero(ok)
        if not len(bins):
            continue
        j = int(rng.choice(bins))
        when = days[i, j] + rng.uniform(-3, 3)
        seen = np.isfinite(x[i]) & (days[i] >= when)
        before = np.isfinite(x[i]) & (days[i] < when) & (days[i] >= when - 18)
        level = x[i, before].max() if before.any() else np.nanmax(x[i], initial=0.0)
        depth = rng.uniform(0.4, 1.0) * max(level - rng.uniform(0.3, 0.55), 0.0)
        tau = rng.uniform(10, 35)
        x[i, seen] -= depth * np.exp(-(days[i, seen] - when) / tau)
        y[i, j] = 1.0
    return x, y


def fit_member(ndvi: np.ndarray, doy: np.ndarray, target: np.ndarray, weight: np.ndarray,
               recipe: DetectorRecipe, seed: int, teacher: MowingDetector | None = None,
               soft_weight: np.ndarray | None = None) -> nn.Module:
    """Train one ensemble member (on the labels, and with ``teacher`` its probabilities).

    Args:
        ndvi: ``(N, T)`` binned clear NDVI (NaN = none).
        doy: ``(N, T)`` day of year of the bin centres (NaN = padding).
        target: ``(N, T)`` 1 in the bin of a reference cut, else 0.
        weight: ``(N, T)`` loss weight (0 = not a negative nor a positive: grazing,
            padding).
        teacher: with ``recipe.distill > 0``, the ensemble whose mean probability on each
            augmented batch is the soft target. Its probabilities are taken on the odds
            scale its own training left them (the label term's ``pos_weight``), so the
            member's logits keep that scale and :attr:`MowingDetector.prior_shift`
            applies to it as to a member trained on labels alone.
        soft_weight: ``(N, T)`` weight of the teacher term per bin (default ``weight``;
            rows of a transfer set have ``weight`` 0 and this 1 on valid dates).
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = build_net(asdict(recipe))
    opt = torch.optim.AdamW(net.parameters(), recipe.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps)
    y = torch.as_tensor(target, dtype=torch.float32)
    w = torch.as_tensor(weight, dtype=torch.float32)
    ws = None if soft_weight is None else torch.as_tensor(soft_weight, dtype=torch.float32)
    pos = torch.tensor(recipe.pos_weight)
    n_implant = round(recipe.implant * recipe.batch)
    labelled = weight.sum(axis=1) > 0  # not the rows of a transfer set
    for _ in range(recipe.steps):
        rows = rng.integers(0, len(ndvi), recipe.batch - n_implant)
        series, dates, yr, wr = ndvi[rows], doy[rows], y[rows], w[rows]
        wsr = None if ws is None else ws[rows]
        if n_implant:  # labelled rows with a cut implanted
            like = rng.choice(np.flatnonzero(labelled), n_implant)
            more, more_y = implant_cuts(ndvi[like], doy[like], target[like], rng)
            series, dates = np.concatenate([series, more]), np.concatenate([dates, doy[like]])
            yr, wr = torch.cat([yr, torch.as_tensor(more_y)]), torch.cat([wr, w[like]])
            wsr = None if wsr is None else torch.cat([wsr, w[like]])
        sample, dates = augment(series, recipe, rng), shifted(dates, recipe, rng)
        x = detector_features(sample, dates, bool(recipe.calendar))
        logit = net(x)
        loss = nn.functional.binary_cross_entropy_with_logits(
            logit, yr, reduction="none", pos_weight=pos)
        if teacher is not None and recipe.distill > 0:
            with torch.no_grad():
                xt = x if teacher.calendar == bool(recipe.calendar) else \
                    detector_features(sample, dates, teacher.calendar)
                soft = torch.stack([torch.sigmoid(t(xt)) for t in teacher.nets]).mean(0)
            learn = nn.functional.binary_cross_entropy_with_logits(logit, soft,
                                                                   reduction="none")
            if wsr is not None:  # a transfer set: the teacher term has weights of its own
                loss = ((1 - recipe.distill) * loss * wr + recipe.distill * learn * wsr
                        ).sum() / torch.maximum(wr, wsr).sum().clamp(min=1.0)
            else:
                loss = (1 - recipe.distill) * loss + recipe.distill * learn
                loss = (loss * wr).sum() / wr.sum().clamp(min=1.0)
        else:
            loss = (loss * wr).sum() / wr.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


class MowingDetector:
    """An ensemble of networks (:func:`build_net`) with its card, for numpy inference."""

    def __init__(self, nets: list[nn.Module], card: dict[str, Any]) -> None:
        self.nets = [n.eval() for n in nets]
        self.card = card
        self._fused: FusedGRUEnsemble | None = None
        self.fused = True

    @property
    def calendar(self) -> bool:
        """Whether the networks read the day of year (the card's recipe ``calendar``)."""
        return bool(self.card.get("recipe", {}).get("calendar", 1))

    @property
    def threshold(self) -> float:
        """Event probability above which a peak is a cut (the card's ``decode``)."""
        return float(self.card.get("decode", {}).get("threshold", DECODE["threshold"]))

    @property
    def min_gap_days(self) -> float:
        """Shortest interval between two cuts (the card's ``decode``)."""
        return float(self.card.get("decode", {}).get("min_gap_days", DECODE["min_gap_days"]))

    @property
    def prior_shift(self) -> float:
        """Log-odds the training's positive weight added to every logit (removed again).

        Weighting the cut bins by ``w`` in the loss trains the network toward odds ``w``
        times the true ones; subtracting ``log w`` gives back probabilities on the scale
        of the data, which is what the threshold and the reported probability mean.
        """
        return float(np.log(self.card.get("recipe", {}).get("pos_weight", 1.0)))

    def predict_proba(self, ndvi: np.ndarray, doy: np.ndarray, rows: int = 4096
                      ) -> np.ndarray:
        """``(N, T)`` probability that a cut happened in each bin (0 on padding dates)."""
        ndvi = np.asarray(ndvi, np.float32)
        doy = np.asarray(doy, np.float32)  # (T,) dates stay one row: computed once
        out = np.zeros(ndvi.shape, np.float32)
        with torch.inference_mode():
            for i in range(0, len(ndvi), rows):
                x = detector_features(ndvi[i:i + rows], doy if doy.ndim == 1 else
                                      doy[i:i + rows], self.calendar)
                out[i:i + rows] = self.network(x).numpy()
        out[np.broadcast_to(~np.isfinite(doy), out.shape)] = 0.0
        return out

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` features -> ``(B, T)`` ensemble probability.

        A GRU ensemble goes through :class:`FusedGRUEnsemble` (built from the weights
        on first use; the members are not trained further once in a detector) unless
        ``fused`` is set False; other networks member by member.
        """
        if self.fused and FusedGRUEnsemble.fits(self.nets):
            if self._fused is None:
                self._fused = FusedGRUEnsemble(self.nets, self.prior_shift)  # type: ignore[arg-type]
            return self._fused(x)
        with torch.inference_mode():
            return torch.stack([torch.sigmoid(n(x) - self.prior_shift)
                                for n in self.nets]).mean(0)

    def save(self, path: Path) -> None:
        """Write the weights (safetensors) and the card (``.json`` beside them) atomically."""
        tensors = {f"m{i}.{k}": v.contiguous() for i, n in enumerate(self.nets)
                   for k, v in n.state_dict().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"members": str(len(self.nets))})
        tmp.replace(path)
        write_card(path.with_suffix(".json"), self.card)


def fit_detector(ndvi: np.ndarray, doy: np.ndarray, target: np.ndarray, weight: np.ndarray,
                 recipe: DetectorRecipe | None = None, card: dict[str, Any] | None = None,
                 teacher: MowingDetector | None = None,
                 unlabelled: tuple[np.ndarray, np.ndarray] | None = None) -> MowingDetector:
    """Train the ensemble of ``recipe.seeds`` members (see :func:`fit_member`).

    A recipe with ``distill > 0`` first trains its teacher (:func:`teacher_recipe`) on
    the same (labelled) series, unless ``teacher`` (trained on them already) is given.
    A recipe with ``transfer`` needs ``unlabelled``: ``(ndvi, doy)`` of series of the
    same domains without reference events, on which the members learn the teacher.
    """
    recipe = recipe or DetectorRecipe()
    if recipe.transfer and (recipe.distill <= 0 or unlabelled is None):
        raise ValueError("a transfer recipe needs distill > 0 and unlabelled series")
    if recipe.distill > 0 and teacher is None:
        teacher = fit_detector(ndvi, doy, target, weight, teacher_recipe(recipe))
    use = teacher if recipe.distill > 0 else None
    soft = None
    if recipe.transfer and unlabelled is not None:
        un, un_doy = unlabelled
        on = np.isfinite(un_doy).astype(np.float32)
        soft = np.concatenate([weight, on])
        ndvi, doy = np.concatenate([ndvi, un]), np.concatenate([doy, un_doy])
        target = np.concatenate([target, np.zeros_like(on)])
        weight = np.concatenate([weight, np.zeros_like(on)])
    nets = [fit_member(ndvi, doy, target, weight, recipe, recipe.first_seed + k, use, soft)
            for k in range(recipe.seeds)]
    card = dict(card or {})
    if use is not None:
        card.setdefault("teacher", {"recipe": use.card.get("recipe", {}),
                                    "architecture": use.card.get("architecture", {})})
    arch = {**architecture(asdict(recipe)), **card.pop("architecture", {})}
    full = {"recipe": asdict(recipe), "decode": dict(DECODE), "architecture": arch, **card}
    return MowingDetector(nets, full)


def _recipe_of_weights(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The network part of a recipe, read off card-less weights."""
    gru = next((v for k, v in tensors.items() if k.endswith(".gru.weight_hh_l0")), None)
    if gru is not None:
        both = any(k.endswith(".gru.weight_hh_l0_reverse") for k in tensors)
        # one direction without a card: forward (a backward one needs its card)
        return {"net": "gru", "hidden": int(gru.shape[1]),
                "directions": "both" if both else "forward"}
    inp = next((v for k, v in tensors.items() if k.endswith(".inp.weight")), None)
    if inp is None:
        raise ValueError("detector weights without a card hold neither a GRU nor a "
                         "convolutional network")
    return {"net": "conv", "hidden": int(inp.shape[0])}


def load_detector(path: str | Path | None = None) -> MowingDetector:
    """Load a detector from safetensors + its card (default: the shipped weights).

    The card's recipe names the network (:func:`build_net`); without a card the
    weights tell a GRU (and its width) from a convolutional network (of the default
    dilations).
    """
    path = Path(path) if path is not None else default_detector_weights()
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    tensors = load_file(str(path))
    members = sorted({int(k.split(".", 1)[0][1:]) for k in tensors})
    recipe = dict(card.get("recipe", {})) if card else _recipe_of_weights(tensors)
    nets = []
    for m in members:
        net = build_net(recipe)
        net.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items()
                             if k.startswith(f"m{m}.")})
        nets.append(net)
    return MowingDetector(nets, card)
