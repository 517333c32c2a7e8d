"""Gap filling over the cube, mapped chunk by chunk with dask.

Three layers, as for every kernel here: :func:`fill_block` works on numpy
arrays, :func:`compute_filled` maps it over a dask-backed cube with
``xarray.apply_ufunc``, and a :class:`Filler` supplies the per-pixel method.

A filler sees one series per pixel: ``ndvi`` (N, T) with NaN gaps, ``vv`` and
``vh`` (N, T, 2) in dB with the last axis (ascending, descending), NaN where
no acquisition, and ``doy`` (T,), the day of year of each date's bin centre (None when
the dates are unknown; a filler that has no use for dates ignores it). It returns NDVI
mean and std, both (N, T).

Where the cube has zones (``zone``: parcels or segments, see :mod:`pipeline.context`),
each block's fill is then combined with the same-date clear NDVI of the pixel's zone;
the zone tables are summed over the whole cube first, so a zone's context does not
depend on how chunks cut it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import xarray as xr

from pipeline import baselines
from pipeline.baselines import FLAT_AMPLITUDE, flat_pixels
from pipeline.context import (
    Calibration,
    ZoneContext,
    ZoneTable,
    calibrate,
    check_filler,
    flat_zones,
    local_ids,
    zone_centroids,
    zone_sides,
    zone_table,
)
from pipeline.timegrid import STEP_DAYS

S1_VARS = (("vv_asc", "vv_desc"), ("vh_asc", "vh_desc"))


@runtime_checkable
class Filler(Protocol):
    """A per-pixel gap-filling method (must be picklable: dask ships it to workers)."""

    @property
    def name(self) -> str:
        """Short method name recorded in outputs."""
        ...

    def fill(
        self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray, doy: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, T) NDVI + (N, T, 2) VV/VH in dB (+ (T,) day of year) -> (mean, std), each
        (N, T) float32."""
        ...


@dataclass(frozen=True)
class LinearFiller:
    """Linear interpolation between clear observations; no uncertainty (std is NaN)."""

    name: str = "linear"

    def fill(
        self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray, doy: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate each row; S1 and dates are not used."""
        mean = baselines.linear(ndvi)
        return mean, np.full_like(mean, np.nan)

    def reads_s1(self) -> bool:
        """Linear interpolation reads no Sentinel-1."""
        return False


_MODELS: dict[str | None, object] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(path: str | None) -> object:
    """The SF model of ``path``, loaded once per process (the lock keeps a preload and
    the first fill task from loading it twice)."""
    with _MODELS_LOCK:
        if path not in _MODELS:
            import model

            _MODELS[path] = model.load_model(path)
        return _MODELS[path]


def shipped_weights() -> Path:
    """Path of the shipped SF weights, found without importing the model (and torch)."""
    spec = importlib.util.find_spec("model")
    assert spec is not None and spec.origin is not None, "the model package is missing"
    return Path(spec.origin).parent / "weights" / "sf.safetensors"


@dataclass(frozen=True)
class ModelFiller:
    """The trained SF CNN-RNN (weights from ``path``, or the shipped ones).

    A pixel whose observations show no season (:func:`flat_pixels`) is filled by linear
    interpolation instead: the network learned grassland seasons, and on the demo
    worlds' truth it was worse than linear interpolation on forest, built-up land, water
    and tracks (README, "Surfaces without a season"); the std stays the network's.

    Attributes:
        path: safetensors file, or None for the shipped weights.
        torch_threads: intra-op threads per worker (set explicitly: dask runs
            several tasks per machine and torch would otherwise oversubscribe).
        use_dates: give the network each date's day of year. Its seasonal prior was
            learned on grassland: it helps there and hurts on crops and built-up land
            (see the model card and README); False fills from the series alone.
        flat_amplitude: the seasonal range under which a pixel is filled linearly
            (:data:`FLAT_AMPLITUDE`; 0 = the network everywhere).
    """

    path: str | None = None
    torch_threads: int = 1
    use_dates: bool = True
    name: str = "sf"
    flat_amplitude: float = FLAT_AMPLITUDE

    def fill(
        self, ndvi: np.ndarray, vv: np.ndarray, vh: np.ndarray, doy: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on a batch of pixel series (``doy``: (T,) or (N, T), optional)."""
        import torch

        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        m = _load_model(self.path)
        mean, std = m.predict(  # type: ignore[attr-defined]
            ndvi, vv, vh, doy=doy if self.use_dates else None
        )
        mean = np.asarray(mean, np.float32)
        flat = flat_pixels(ndvi, self.flat_amplitude)
        if flat.any():
            mean[flat] = baselines.linear(np.asarray(ndvi, np.float32)[flat])
        return mean, np.asarray(std, np.float32)

    def reads_s1(self) -> bool:
        """Whether the network is given Sentinel-1 (its card's ``inference.s1``), read from
        the card without importing torch."""
        weights = Path(self.path) if self.path is not None else shipped_weights()
        card = weights.with_suffix(".json")
        meta = json.loads(card.read_text()) if card.is_file() else {}
        return bool(meta.get("inference", {}).get("s1", True))

    def preload(self) -> None:
        """Import torch and load the weights now (a worker does it once, at start)."""
        import torch

        torch.set_num_threads(self.torch_threads)
        _load_model(self.path)


def s1_pixels(vv_asc: np.ndarray, vv_desc: np.ndarray, vh_asc: np.ndarray,
              vh_desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A block's Sentinel-1 (each (..., T)) as the filler takes it: VV and VH, each
    (N, T, 2) float32 with the last axis (ascending, descending)."""
    t = vv_asc.shape[-1]
    vv = np.stack([vv_asc.reshape(-1, t), vv_desc.reshape(-1, t)], axis=-1)
    vh = np.stack([vh_asc.reshape(-1, t), vh_desc.reshape(-1, t)], axis=-1)
    return vv.astype(np.float32), vh.astype(np.float32)


def no_s1(n: int, t: int) -> np.ndarray:
    """(n, t, 1) NaN float32 without memory behind it: "no Sentinel-1" for a filler."""
    return np.broadcast_to(np.float32(np.nan), (n, t, 1))


def fill_block(
    filler: Filler,
    ndvi: np.ndarray,
    vv_asc: np.ndarray | None,
    vv_desc: np.ndarray | None,
    vh_asc: np.ndarray | None,
    vh_desc: np.ndarray | None,
    inside: np.ndarray | None = None,
    doy: np.ndarray | None = None,
    zone: np.ndarray | None = None,
    context: ZoneContext | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill a block whose last axis is time (..., T); returns (mean, std) of the same shape.

    Observed NDVI is never replaced by a NaN, and pixels without any clear
    observation stay NaN (there is nothing to anchor a fill to). ``inside`` (the
    block's shape without T, true inside the AOI) limits the fill to those pixels;
    the others stay NaN. ``doy`` ((T,) day of year of each date) goes to the filler.
    The Sentinel-1 arrays may be None (a filler that reads none is given none).
    ``zone`` (the block's shape without T) and ``context`` (the cube's zone tables)
    add the zones' same-date context (:func:`pipeline.context.apply_context`).
    """
    shape = ndvi.shape
    t = shape[-1]
    flat = ndvi.reshape(-1, t).astype(np.float32)
    if vv_asc is None or vv_desc is None or vh_asc is None or vh_desc is None:
        vv = vh = no_s1(len(flat), t)
    else:
        vv, vh = s1_pixels(vv_asc, vv_desc, vh_asc, vh_desc)
    mean = np.full(flat.shape, np.nan, np.float32)
    std = np.full(flat.shape, np.nan, np.float32)
    rows = np.isfinite(flat).any(axis=1)
    if inside is not None:
        rows &= np.broadcast_to(inside, shape[:-1]).reshape(-1).astype(bool)
    if rows.any():
        mean[rows], std[rows] = filler.fill(flat[rows], vv[rows], vh[rows], doy=doy)
    if zone is not None and context is not None:
        z = np.broadcast_to(zone, shape[:-1]).reshape(-1)
        mean, std = context.apply(mean, std, flat, z)
    return mean.reshape(shape), std.reshape(shape)


def refiller(
    filler: Filler, vv_asc: np.ndarray, vv_desc: np.ndarray, vh_asc: np.ndarray,
    vh_desc: np.ndarray, doy: np.ndarray | None = None,
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``fill(rows, series)`` for :func:`pipeline.context.check_filler`: the ``filler`` on
    NDVI ``series`` (R, T) of the block's pixels ``rows`` with their own Sentinel-1
    (each array (..., T), the block's shape)."""
    vv, vh = s1_pixels(vv_asc, vv_desc, vh_asc, vh_desc)

    def fill(rows: np.ndarray, series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return filler.fill(series, vv[rows], vh[rows], doy=doy)

    return fill


def cube_doy(times: np.ndarray, step_days: int = STEP_DAYS) -> np.ndarray | None:
    """Day of year of the bin centres (bin start + 3 days) of a cube's ``time`` values.

    ``None`` when the values are not dates.
    """
    t = np.asarray(times)
    if not np.issubdtype(t.dtype, np.datetime64):
        return None
    centre = t.astype("datetime64[D]") + np.timedelta64(step_days // 2, "D")
    jan1 = centre.astype("datetime64[Y]").astype("datetime64[D]")
    return ((centre - jan1).astype(np.int64) + 1).astype(np.float32)


def compute_filled(cube: xr.Dataset, filler: Filler) -> xr.Dataset:
    """Lazy ``ndvi_filled``, ``ndvi_std`` and ``observed`` for a cube (dims time, y, x).

    Pixels outside the AOI mask are NaN in the filled products and never reach the
    filler. The ``time`` values (6-day bin starts) give the filler each date's day of year.
    """
    # a filler that reads no Sentinel-1 (SF as shipped, the classic ones) is not given
    # it: the fill then reads one variable of the cube instead of five
    s1_vars = [v for pair in S1_VARS for v in pair] if _reads_s1(filler) else []
    inputs = [cube["ndvi"], *(cube[v] for v in s1_vars)]
    core = [["time"]] * len(inputs)
    has_mask = "aoi_mask" in cube
    if has_mask:
        inputs.append(cube["aoi_mask"] > 0)
        core.append([])
    doy = cube_doy(cube["time"].values) if "time" in cube.coords else None
    context = zone_context(cube, filler, doy)
    if context is not None:
        inputs.append(cube["zone"])
        core.append([])

    def block(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ndvi, s1 = arrays[0], arrays[1 : 1 + len(s1_vars)] or (None,) * 4
        rest = list(arrays[1 + len(s1_vars) :])
        inside = rest.pop(0) if has_mask else None
        zone = rest.pop(0) if context is not None else None
        vv_a, vv_d, vh_a, vh_d = s1
        return fill_block(filler, ndvi, vv_a, vv_d, vh_a, vh_d, inside=inside, doy=doy,
                          zone=zone, context=context)

    mean, std = xr.apply_ufunc(
        block,
        *inputs,
        input_core_dims=core,
        output_core_dims=[["time"], ["time"]],
        dask="parallelized",
        output_dtypes=[np.float32, np.float32],
    )
    mean = mean.transpose("time", "y", "x")
    std = std.transpose("time", "y", "x")
    if "aoi_mask" in cube:
        inside = cube["aoi_mask"] > 0
        mean = mean.where(inside)
        std = std.where(inside)
    observed = cube["ndvi"].notnull().astype(np.uint8)
    out = xr.Dataset(
        {
            "ndvi_filled": mean.astype(np.float32),
            "ndvi_std": std.astype(np.float32),
            "observed": observed,
        }
    )
    out["ndvi_filled"].attrs.update(long_name="gap-filled NDVI", method=filler.name)
    if context is not None:
        out["ndvi_filled"].attrs["context"] = (
            "same-date clear NDVI of the pixel's zone (pipeline.context)")
    out["ndvi_std"].attrs.update(long_name="predicted standard deviation of NDVI")
    out["observed"].attrs.update(long_name="1 = clear observation in bin, 0 = filled")
    return out.chunk(cube["ndvi"].chunksizes)


def zone_context(cube: xr.Dataset, filler: Filler | None = None,
                 doy: np.ndarray | None = None) -> ZoneContext | None:
    """The cube's zone tables and context calibration, or None without ``zone``.

    Passes over the cube chunk by chunk: the zone ids present, their centroids, their
    sums, then the errors that need both; pixels outside the AOI count in no zone.
    With a ``filler`` (``doy``: the dates' day of year for it) the last pass also
    checks the filler's std on a few hidden clear cells per zone
    (:func:`pipeline.context.check_filler`). Memory: one chunk plus tables of the
    cube's zones x dates.
    """
    if "zone" not in cube:
        return None
    import dask

    zone = cube["zone"]
    if "aoi_mask" in cube:
        zone = zone.where(cube["aoi_mask"] > 0, 0)
    ndvi = cube["ndvi"].transpose("time", "y", "x").chunk({"time": -1})
    cy, cx = ndvi.data.chunks[1], ndvi.data.chunks[2]
    zone = zone.astype(np.int64).transpose("y", "x").chunk({"y": cy, "x": cx})
    zd = zone.data.to_delayed()
    present = dask.compute(*(dask.delayed(np.unique)(z) for z in zd.ravel()))
    ids = np.unique(np.concatenate(present))
    ids = ids[ids > 0]
    if ids.size == 0:
        return None
    n_zones = int(ids.size)
    ys = np.split(cube["y"].values.astype(np.float64), np.cumsum(cy)[:-1])
    xs = np.split(cube["x"].values.astype(np.float64), np.cumsum(cx)[:-1])
    nd = ndvi.data.to_delayed()[0]
    blocks = [(nd[i, j], dask.delayed(local_ids)(zd[i, j], ids), ys[i][:, None],
               xs[j][None, :]) for i in range(len(cy)) for j in range(len(cx))]

    def add(parts: tuple[Any, ...]) -> Any:
        return functools.reduce(lambda a, b: a + b, parts)

    cent = add(dask.compute(*(dask.delayed(zone_centroids)(z, x, y, n_zones)
                              for _, z, y, x in blocks)))

    def sums(n: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> ZoneTable:
        return zone_table(z, np.moveaxis(n, 0, -1), n_zones, zone_sides(z, x, y, cent))

    table = add(dask.compute(*(dask.delayed(sums)(*b) for b in blocks)))

    def errors(n: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray,
               *s1: np.ndarray) -> Calibration:
        obs = np.moveaxis(n, 0, -1)
        cal = calibrate(obs, z, table, zone_sides(z, x, y, cent))
        if filler is None:
            return cal
        if s1:
            va, vd, ha, hd = (np.moveaxis(a, 0, -1) for a in s1)
        else:
            va = vd = ha = hd = np.full(obs.shape, np.nan, np.float32)
        refill = refiller(filler, va, vd, ha, hd, doy=doy)
        return cal.with_filler(check_filler(obs, z, x, y, table.n_pixels, n_zones, refill))

    # the check's refill needs the pixels' Sentinel-1 only where the filler reads it (SF
    # as shipped does not), so the pass does not read four more variables for nothing
    s1 = ([cube[v].transpose("time", "y", "x").chunk({"time": -1, "y": cy, "x": cx})
           .data.to_delayed()[0] for v in ("vv_asc", "vv_desc", "vh_asc", "vh_desc")]
          if filler is not None and _reads_s1(filler) else [])
    cal = add(dask.compute(*(
        dask.delayed(errors)(*blocks[i * len(cx) + j], *(a[i, j] for a in s1))
        for i in range(len(cy)) for j in range(len(cx)))))
    # segments are the run's own guess at fields; parcels are declared ones
    segments = cube["zone"].attrs.get("zones") == "segments"
    return ZoneContext(ids, table.without_halves(), cal,
                       flat_zones(table) if segments else None)


def _reads_s1(filler: Filler) -> bool:
    """Whether ``filler`` reads Sentinel-1 (a filler that does not say is taken to)."""
    reads = getattr(filler, "reads_s1", None)
    return bool(reads()) if callable(reads) else True


def default_filler(model_path: str | Path | None, method: str, use_dates: bool = True) -> Filler:
    """The filler the CLI asks for: ``sf`` (model) or ``linear``."""
    if method == "linear":
        return LinearFiller()
    return ModelFiller(path=None if model_path is None else str(model_path), use_dates=use_dates)


def available_method(model_path: str | Path | None) -> str:
    """``sf`` when its weights exist (``model_path``, else the shipped ones), else ``linear``."""
    return "sf" if Path(model_path or shipped_weights()).is_file() else "linear"
