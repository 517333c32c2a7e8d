"""Pure-PyTorch Sentinel-1/2 fusion gap filler (SF) and its inference API.

>>> from model import load_model
>>> sf = load_model()                      # shipped weights
>>> mean, std = sf.predict(ndvi, vv, vh)   # (N, T) each

No geo libraries and no pickle: weights are read with ``safetensors.torch.load_file``
and the model card (JSON) beside them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from model.sf import SFNet, build_features, fallback

__all__ = ["SFModel", "SFNet", "build_features", "default_weights", "load_model"]

__version__ = "1.3.0"

log = logging.getLogger(__name__)

#: Rows per network call inside :meth:`SFModel.predict` (keeps the LSTM state in cache).
_CHUNK_ROWS = 1024


def default_weights() -> Path:
    """Path of the shipped ``sf.safetensors``."""
    return Path(__file__).parent / "weights" / "sf.safetensors"


class SFModel:
    """A trained SF network with its model card, ready for numpy inference.

    Attributes:
        card: the model card (``sf.json``): training data, recipe, constants, metrics.
        net: the underlying :class:`~model.sf.SFNet` in eval mode.
        std_scale: calibration factor applied to the network's standard deviation
            (calibration plots of the training domains; the fallback uses this std).
        use_s1: whether the Sentinel-1 inputs reach the network (the card's
            ``inference.s1``; default on). Off for SF 1.3.0: on both left-out regions
            with radar, per-pixel Sentinel-1 did not help the fill (``python -m model
            cv``), as single-look speckle (about 2 dB) predicts.
    """

    def __init__(self, net: SFNet, card: dict[str, Any]) -> None:
        self.net = net.eval()
        self.card = card
        self.std_scale = float(card.get("calibration", {}).get("std_scale", 1.0))
        self.use_s1 = bool(card.get("inference", {}).get("s1", True))
        #: Shrink toward the Akima fill where the network is unsure (networks with an
        #: Akima base; the card's ``inference.fallback``, default on for them).
        self.fallback = bool(net.akima and card.get("inference", {}).get("fallback", True))

    def predict(
        self,
        ndvi: np.ndarray,
        vv: np.ndarray,
        vh: np.ndarray,
        batch_size: int = 65536,
        edges: str = "hold",
        doy: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fill NDVI gaps on every date.

        Args:
            ndvi: ``(N, T)`` float32, NaN = gap (cloudy / not observed).
            vv: ``(N, T, 2)`` float32 VV backscatter (dB) on the same dates, last axis
                = (ascending, descending); NaN = no acquisition (a whole direction, or
                S1 altogether, may be missing). ``(N, T)`` is taken as one direction.
            vh: ``(N, T, 2)`` float32 VH backscatter (dB), same layout.
            batch_size: upper bound on rows converted at once (memory); the network
                itself runs on chunks of at most 1024 rows, the fastest size on CPU.
            edges: dates before a series' first or after its last observation:
                ``"hold"`` (default) carries the nearest observation, ``"model"`` keeps
                the network's extrapolation. The std is the network's either way (it
                widens away from the observations). Hold is the default because the
                network learned grassland seasons: on the demo world's ground truth its
                extrapolation beyond the observed span was worse than holding (MAE
                0.096 vs 0.065 over all land covers; built-up, forest and tracks worst),
                while inside the span it beat linear interpolation (0.021 vs 0.023).
            doy: day of year (1-366) of each date, the 6-day bin's centre: ``(T,)`` for
                series sharing dates or ``(N, T)``; NaN entries or ``None`` = unknown
                (the network was trained with dates dropped at random, so it still
                fills, somewhat less well on long gaps). Networks trained without
                dates (weights 1.0.x) ignore it.

        Returns:
            ``(mean, std)``, both ``(N, T)`` float32. ``mean`` keeps observed dates as
            observed and holds the network's prediction (clipped to [-1, 1]) in the
            gaps; ``std`` is the calibrated predicted standard deviation on every date
            (small on observed dates: the network sees them). Rows without any NDVI
            observation are NaN in both.
        """
        ndvi = np.asarray(ndvi, dtype=np.float32)
        vv = np.asarray(vv, dtype=np.float32)
        vh = np.asarray(vh, dtype=np.float32)
        if vv.ndim == 2:
            vv, vh = vv[..., None], vh[..., None]
        if ndvi.ndim != 2 or vv.shape[:2] != ndvi.shape or vh.shape != vv.shape:
            raise ValueError(
                f"expected ndvi (N, T) and vv/vh (N, T, D); got {ndvi.shape}, {vv.shape}, "
                f"{vh.shape}"
            )
        n, t = ndvi.shape
        doy_a: np.ndarray | None = None
        if doy is not None:
            doy_a = np.asarray(doy, dtype=np.float32)
            if doy_a.shape == (t,):
                doy_a = np.broadcast_to(doy_a, (n, t))
            if doy_a.shape != (n, t):
                raise ValueError(f"expected doy (T,) or (N, T) = {(n, t)}; got {doy_a.shape}")
        mean = np.full((n, t), np.nan, dtype=np.float32)
        std = np.full((n, t), np.nan, dtype=np.float32)
        valid = np.isfinite(ndvi)
        rows = np.flatnonzero(valid.any(axis=1))
        if len(rows) == 0 or t == 0:
            return mean, std
        outer = max(1, int(batch_size))
        step = min(outer, _CHUNK_ROWS)
        with torch.inference_mode():
            for lo in range(0, len(rows), outer):
                idx = rows[lo : lo + outer]
                x = torch.from_numpy(ndvi[idx])
                # the network's Sentinel-1 channels are zeros when it is withheld or
                # the rows have none: build_features then skips them (None)
                a: torch.Tensor | None = None
                b: torch.Tensor | None = None
                if self.use_s1:
                    va, vb = vv[idx], vh[idx]
                    if (np.isfinite(va) & np.isfinite(vb)).any():
                        a, b = torch.from_numpy(va), torch.from_numpy(vb)
                d = None if doy_a is None else torch.from_numpy(np.ascontiguousarray(doy_a[idx]))
                outs_m, outs_s = [], []
                for j in range(0, len(idx), step):
                    dj = None if d is None else d[j : j + step]
                    f = build_features(x[j : j + step],
                                       None if a is None else a[j : j + step],
                                       None if b is None else b[j : j + step],
                                       dj, akima=self.net.akima)
                    m, s = self.net(f)
                    s = s * self.std_scale
                    if self.fallback:
                        m = fallback(m, s, f)
                    outs_m.append(m)
                    outs_s.append(s)
                mean[idx] = torch.cat(outs_m).clamp(-1, 1).numpy()
                std[idx] = torch.cat(outs_s).numpy()
        if edges == "hold":
            first = np.argmax(valid, axis=1)
            last = t - 1 - np.argmax(valid[:, ::-1], axis=1)
            pos = np.arange(t)[None, :]
            rows_all = np.arange(n)
            before = pos < first[:, None]
            after = pos > last[:, None]
            mean = np.where(before, ndvi[rows_all, first][:, None], mean)
            mean = np.where(after, ndvi[rows_all, last][:, None], mean)
        elif edges != "model":
            raise ValueError(f"edges must be 'hold' or 'model', not {edges!r}")
        mean = np.where(valid, ndvi, mean)
        has = valid.any(axis=1)
        mean[~has] = np.nan
        return mean.astype(np.float32), std.astype(np.float32)


def load_model(path: str | Path | None = None) -> SFModel:
    """Load SF weights (``.safetensors``) and the JSON model card beside them.

    Args:
        path: weights file; ``None`` loads the shipped ``model/weights/sf.safetensors``.
            The card is the same path with suffix ``.json``.
    """
    path = default_weights() if path is None else Path(path)
    card_path = path.with_suffix(".json")
    card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
    state = load_file(str(path))
    cfg = card.get("architecture", {}).get("config")
    if cfg is None:
        hidden = state["rnn.weight_hh_l0"].shape[1]
        cfg = {
            "ndvi_channels": state["ndvi_conv.proj.weight"].shape[0] // 3,
            "s1_channels": state["s1_conv.proj.weight"].shape[0] // 3,
            "hidden": hidden,
        }
    net = SFNet(**cfg)
    net.load_state_dict(state)
    log.debug("loaded SF weights from %s", path)
    return SFModel(net, card)
