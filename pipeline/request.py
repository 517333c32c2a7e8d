"""What ``pipeline run`` is asked to do: the options, defined once, and their checks.

:class:`RunRequest` is the one definition of the ``run`` options: each field carries its
flag and help text (:func:`option`), its type comes from the annotation, its default from
the field. The CLI builds its parser from :func:`run_options`, ``--config`` converts TOML
values with the same :class:`Option` values, and :func:`request_from_options` turns
either into a request. A new option is one field here (plus its check in
:func:`validate` and its use in the orchestrator).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.aoi import DEFAULT_MAX_AREA_KM2
from pipeline.checks import (
    check_crs,
    check_range,
    check_scheduler,
    check_weights,
    max_workers,
)
from pipeline.errors import InputError
from pipeline.grd.process import S1_PROCESSING
from pipeline.ingest import CHUNK
from pipeline.sources.eodata import MODES as EODATA_MODES
from pipeline.sources.select import SOURCE_NAMES, SourceChoice, check_sources
from pipeline.storage import check_out_owned, check_remote_out, check_writable_dir, is_remote
from pipeline.tiles import DEFAULT_TILE_M
from pipeline.zones import MIN_PARCEL_PIXELS

METHODS = ("sf", "linear")


def default_cache() -> Path:
    """Cache folder for the demo archive and downloads (``$S1S2_CACHE`` overrides)."""
    env = os.environ.get("S1S2_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s1s2-gapfill"


def parse_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` -> date (ValueError with a message that says what to pass)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2023-04-01") from None


def option(
    flag: str,
    help: str,
    *,
    default: Any = None,
    default_factory: Callable[[], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    required: bool = False,
) -> Any:
    """A request field that is also a ``run`` option (``help`` may use ``%(default)s``).

    ``required`` options have no default (the CLI says so when one is missing).
    """
    meta = {"flag": flag, "help": help, "choices": choices, "metavar": metavar}
    if required:
        return field(metadata=meta)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunRequest:
    """Everything ``pipeline run`` needs (validated by :func:`validate`).

    Only :func:`pipeline.run.run_pipeline` reads it: it turns the request into the grid,
    the time grid, a filler, ingest options and the output place that the stages get.
    """

    aoi: Path = option(
        "--aoi",
        "area of interest: GeoJSON in EPSG:4326 (or any vector file with a CRS); required",
        required=True,
    )
    out: Path = option(
        "--out",
        "output folder (created if missing), or s3://bucket/prefix for object storage "
        "(credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL); required",
        required=True,
    )
    start: dt.date = option(
        "--start", "first day of the period, YYYY-MM-DD (default 2023-04-01)",
        default=dt.date(2023, 4, 1),
    )
    end: dt.date = option(
        "--end", "last day of the period, inclusive (default 2023-10-31)",
        default=dt.date(2023, 10, 31),
    )
    source: str = option(
        "--source",
        "where scenes come from: 'demo' = built-in simulated archive "
        "(no account, no internet), 'stac' = a STAC API or static catalog (--stac-url), "
        "'sentinelhub' = Sentinel Hub Process API on CDSE (SH_CLIENT_ID/SH_CLIENT_SECRET)",
        default="demo",
        choices=SOURCE_NAMES,
    )
    stac_url: str | None = option(
        "--stac-url",
        "with the stac source: STAC API root or catalog.json (local path, http(s):// or "
        "s3://; default: the CDSE STAC API https://stac.dataspace.copernicus.eu/v1)"
    )
    s2_source: str | None = option(
        "--s2-source", "source of Sentinel-2 scenes (default: --source)",
        choices=SOURCE_NAMES,
    )
    s1_source: str | None = option(
        "--s1-source", "source of Sentinel-1 scenes (default: --source)",
        choices=SOURCE_NAMES,
    )
    eodata: str = option(
        "--eodata",
        "how EODATA assets (s3://eodata/...) are read: 'mount' = /eodata on a CreoDIAS "
        "VM, 's3' = GDAL /vsis3 with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, 'https' = the "
        "https alternate; 'auto' = mount if /eodata exists, else https (default: auto)",
        default="auto",
        choices=EODATA_MODES,
    )
    allow_path: str | None = option(
        "--allow-path",
        "with a local static catalog: folders besides the catalog's own whose files its "
        "assets may name, comma-separated (e.g. /eodata); other local files, /vsi... "
        "paths and file:// hrefs are never opened"
    )
    s1_assets: str | None = option(
        "--s1-assets",
        "with the stac source: S1 asset keys as 'vv=KEY,vh=KEY' (linear gamma0 COGs)"
    )
    s2_collection: str | None = option(
        "--s2-collection",
        "with the stac source: collection id of Sentinel-2 L2A (default: sentinel-2-l2a; "
        "e.g. sentinel-2-c1-l2a on Earth Search)"
    )
    s1_collection: str | None = option(
        "--s1-collection",
        "with the stac source: collection id of calibrated S1 backscatter "
        "(default: sentinel-1-grd-backscatter, sentinel-1-rtc, sentinel-1-global-mosaics)"
    )
    sh_profile: str | None = option(
        "--sh-profile",
        "with the sentinelhub source: sentinelhub config profile holding the "
        "credentials (default: SH_CLIENT_ID/SH_CLIENT_SECRET, else the default profile)"
    )
    cache: Path = option(
        "--cache",
        "cache folder for the demo archive (default: %(default)s, or $S1S2_CACHE)",
        default_factory=default_cache,
    )
    method: str = option(
        "--method",
        "gap filler: 'sf' = the shipped Sentinel-1/2 fusion CNN-RNN, "
        "'linear' = linear interpolation (default: %(default)s)",
        default="sf",
        choices=METHODS,
    )
    model: Path | None = option(
        "--model", "weights (.safetensors) for --method sf (default: the shipped weights)"
    )
    crs: str | None = option(
        "--crs", "output CRS, e.g. EPSG:32634 (default: UTM zone of the AOI)"
    )
    max_area_km2: float = option(
        "--max-area-km2",
        "refuse AOIs larger than this (default: %(default)s km²)",
        default=DEFAULT_MAX_AREA_KM2,
    )
    chunk: int = option(
        "--chunk", "spatial chunk edge in pixels (default: %(default)s)", default=CHUNK
    )
    workers: int = option(
        "--workers", "parallel chunk workers (default: number of cores)",
        default=max(1, os.cpu_count() or 1),
    )
    seed: int = option("--seed", "demo world seed (default: 0)", default=0)
    tile_m: float = option(
        "--tile-size",
        "split the AOI into tiles of this edge (independent, resumable "
        "units, mosaicked at the end; default: %(default)g m)",
        default=DEFAULT_TILE_M,
        metavar="METRES",
    )
    overwrite: bool = option(
        "--overwrite",
        "write into a non-empty --out that no run of this pipeline made, or that holds a "
        "run with other inputs (AOI, period, sources, filler, grid): its files of the same "
        "names are replaced",
        default=False,
    )
    #: ``--out`` when it is a URL (then ``out`` is a local working folder); no option.
    remote: str | None = None
    sf_dates: bool = option(
        "--no-dates",
        "fill with SF without its day-of-year input: the seasonal prior was learned on "
        "grassland; without it SF is better on crops and built-up land, worse on grassland",
        default=True,
    )
    scheduler: str | None = option(
        "--scheduler",
        "dask scheduler: tcp://HOST:PORT of an existing "
        "cluster, 'threads' for in-process threads; default: a LocalCluster "
        "sized to this machine"
    )
    s1_processing: str = option(
        "--s1-processing",
        "who turns Sentinel-1 GRD products (radar geometry, e.g. --s1-collection "
        "sentinel-1-grd) into backscatter: 'local' = calibrate, denoise and terrain-correct "
        "them here (needs a DEM; free, CPU time), 'sentinelhub' = leave it to Sentinel Hub "
        "(--s1-source sentinelhub; metered processing units); see README (default: local)",
        default="local",
        choices=S1_PROCESSING,
    )
    dem: Path | None = option(
        "--dem",
        "with --s1-processing local: DEM raster (any CRS, ellipsoidal or geoid heights) "
        "for terrain correction (default: Copernicus DEM GLO-30 on the /eodata mount)"
    )
    parcels: Path | None = option(
        "--parcels",
        "field boundaries (GeoPackage, GeoParquet, GeoJSON or Shapefile, any CRS): each "
        "pixel gets its parcel in the cube, and parcels.parquet/parcels.csv hold one row per "
        "parcel and date"
    )
    parcel_id: str | None = option(
        "--parcel-id",
        "with --parcels: column holding the parcel id (default: the first of parcel_id, id, "
        "plotID, PLOTID, fid; else the row number)"
    )
    min_parcel_pixels: int = option(
        "--min-parcel-pixels",
        "with --parcels: ignore parcels smaller than this many pixels inside the AOI "
        "(default: %(default)s)",
        default=MIN_PARCEL_PIXELS,
    )
    segments: bool = option(
        "--segments",
        "without --parcels: cut each tile into segments of the season's observed NDVI "
        "(Felzenszwalb on six composites) and store them in the cube as zones",
        default=False,
    )


@dataclass(frozen=True)
class Option:
    """One ``run`` option as the CLI and ``--config`` see it.

    Attributes:
        field: the :class:`RunRequest` field it sets.
        flag: command-line flag, e.g. ``--tile-size``.
        key: name in a ``--config`` TOML file (the flag without dashes; a switch that
            turns something off is named after its field, e.g. ``sf_dates = false``).
        help: help text.
        parse: text -> value (``str``, ``int``, ``float``, ``Path``, :func:`parse_date`);
            None for a switch (``bool`` field).
        default: the request's default (None for the required ``--aoi``/``--out``).
        choices: allowed values, or None.
        metavar: name of the value in ``--help``, or None.
    """

    field: str
    flag: str
    key: str
    help: str
    parse: Callable[[str], Any] | None
    default: Any
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def _parser_of(hint: Any) -> Callable[[str], Any] | None:
    """How the text of an option becomes a value of the field's type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = args[0]
    if kind is bool:
        return None
    if kind is dt.date:
        return parse_date
    return kind


def run_options() -> list[Option]:
    """The ``run`` options, in field order."""
    hints = typing.get_type_hints(RunRequest)
    opts = []
    for f in dataclasses.fields(RunRequest):
        if "flag" not in f.metadata:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        parse = _parser_of(hints[f.name])
        if f.name == "out":
            parse = str  # a folder or an s3:// URL
        flag = f.metadata["flag"]
        key = f.name if parse is None and default is True else flag.removeprefix("--")
        opts.append(
            Option(f.name, flag, key, f.metadata["help"], parse, default,
                   f.metadata["choices"], f.metadata["metavar"])
        )
    return opts


def config_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Option values of a run config (keys as :attr:`Option.key`, ``-`` or ``_``; values
    as TOML gives them), converted as on the command line and keyed by field.

    ``verbose`` and ``quiet``, the CLI's own switches, pass through. InputError names
    the key, the value and ``where`` (the file).
    """
    known = {o.key.replace("-", "_"): o for o in run_options()}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in ("verbose", "quiet"):
            out[name] = value
            continue
        if name not in known:
            raise InputError(f"--config: unknown option {key!r} in {where}")
        o = known[name]
        if "\x00" in str(value):
            raise InputError(f"--config: {key} in {where} holds a NUL character")
        if o.parse is not None and not isinstance(value, bool):
            try:
                value = o.parse(str(value))
            except ValueError as exc:
                raise InputError(f"--config: {key} = {value!r} in {where}: {exc}") from None
        if o.choices is not None and value not in o.choices:
            raise InputError(
                f"--config: {key} = {value!r} in {where}; choose from {sorted(o.choices)}"
            )
        out[o.field] = value
    return out


def _remote_work_dir(url: str, cache: Path) -> Path:
    """Local working folder of a run whose --out is on object storage."""
    key = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]
    return Path(cache) / "remote-runs" / key


def request_from_options(values: Mapping[str, Any]) -> RunRequest:
    """The request of parsed option values (keyed by field; missing ones take defaults)."""
    kwargs = {o.field: values[o.field] for o in run_options() if values.get(o.field) is not None}
    for name in ("aoi", "out"):
        if name not in kwargs:
            raise InputError(f"--{name} is required (on the command line or in --config)")
    out = str(kwargs["out"])
    if is_remote(out):
        cache = kwargs.get("cache") or default_cache()
        kwargs.update(out=_remote_work_dir(out, cache), remote=out.rstrip("/"))
    else:
        kwargs["out"] = Path(out)
    return RunRequest(**kwargs)


def source_choice(req: RunRequest) -> SourceChoice:
    """Which source serves which sensor (``--s2-source``, ``--s1-source``; default ``--source``)."""
    return SourceChoice(
        s2=req.s2_source or req.source,
        s1=req.s1_source or req.source,
        stac_url=req.stac_url,
        eodata=req.eodata,
        s1_assets=req.s1_assets,
        s1_collection=req.s1_collection,
        s2_collection=req.s2_collection,
        sh_profile=req.sh_profile,
        cache=req.cache,
        seed=req.seed,
        allow_paths=tuple(p.strip() for p in (req.allow_path or "").split(",") if p.strip()),
    )


def validate(req: RunRequest) -> None:
    """Input checks that need no data: dates, options, output folder."""
    if req.end < req.start:
        raise InputError(
            f"--end {req.end} is before --start {req.start}; pass an end date after the start"
        )
    if req.source not in SOURCE_NAMES:
        raise InputError(f"--source: unknown source {req.source!r}; choose one of {SOURCE_NAMES}")
    check_sources(source_choice(req))
    if req.method not in METHODS:
        raise InputError(f"--method: unknown method {req.method!r}; choose one of {METHODS}")
    if req.model is not None:
        check_weights(req.model)
    if req.crs is not None:
        check_crs(req.crs)
    if req.workers < 0:
        raise InputError(f"--workers {req.workers}: pass 0 (one per core) or a positive count")
    check_range("--workers", req.workers, 0, max_workers(), "(0 = one per core)")
    check_scheduler(req.scheduler)
    check_range("--seed", req.seed, 0, 2**31 - 1)
    check_range("--max-area-km2", req.max_area_km2, 0.0001, 1e7, "km²")
    check_range("--tile-size", req.tile_m, 1, 1e7, "metres")
    if req.s1_processing not in S1_PROCESSING:
        raise InputError(f"--s1-processing {req.s1_processing!r}: choose one of {S1_PROCESSING}")
    if req.dem is not None and not req.dem.is_file():
        raise InputError(f"--dem: file not found: {req.dem}")
    check_range("--min-parcel-pixels", req.min_parcel_pixels, 1, 10**9, "pixels")
    if req.parcels is not None and req.segments:
        raise InputError("--segments and --parcels: pass one (parcels are the zones when given)")
    if req.parcels is None and req.parcel_id is not None:
        raise InputError(f"--parcel-id {req.parcel_id!r} needs --parcels FILE")
    if req.parcels is not None and not req.parcels.is_file():
        what = "is a folder" if req.parcels.is_dir() else "no such file"
        raise InputError(f"--parcels {req.parcels}: {what}; pass a GeoPackage, "
                         "GeoParquet, GeoJSON or Shapefile (.shp) of parcel polygons")
    if req.tile_m < 10 * req.chunk / 4:
        raise InputError(
            f"--tile-size {req.tile_m:g} m is too small for --chunk {req.chunk}; "
            f"pass at least {10 * req.chunk / 4:g} m"
        )
    if req.chunk < 16 or req.chunk > 4096:
        raise InputError(f"--chunk {req.chunk} is out of range; pass 16..4096 pixels")
    check_writable_dir(req.out)
    inputs = (req.aoi,) if req.parcels is None else (req.aoi, req.parcels)
    check_out_owned(req.out, req.overwrite, inputs=inputs)
    if req.remote is not None:
        check_remote_out(req.remote)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_signature(req: RunRequest, aoi_wkb: bytes) -> dict[str, str]:
    """What a run's products depend on, as readable values (a rerun resumes only with the
    same; :func:`pipeline.storage.check_resume`).

    The AOI (its geometry, ``aoi_wkb``, not the file name), the period, the sources and
    their options, the filler with the hash of its weights, and the grid options. Not in
    it: what changes only speed or logging (``--workers``, ``--scheduler``, ``--cache``).
    The scenes themselves are checked per tile (a catalog that changed recomputes it).
    """
    import model

    choice = source_choice(req)
    sources = f"s2 {choice.s2}, s1 {choice.s1}"
    if "stac" in (choice.s2, choice.s1):
        sources += (f", stac {choice.stac_url or 'default'}, collections "
                    f"{choice.s2_collection or 'default'}/{choice.s1_collection or 'default'}, "
                    f"assets {choice.s1_assets or 'default'}")
    if "demo" in (choice.s2, choice.s1):
        sources += f", demo seed {choice.seed}"
    filler = req.method
    if req.method == "sf":
        weights = req.model or model.default_weights()
        filler += f" weights {_sha256(weights)}" + ("" if req.sf_dates else " without dates")
    return {
        "aoi": hashlib.sha256(aoi_wkb).hexdigest()[:16],
        "period": f"{req.start}..{req.end}",
        "sources": sources,
        "filler": filler,
        "grid": f"crs {req.crs or 'UTM of the AOI'}, chunk {req.chunk}, tile {req.tile_m:g} m",
        "s1 processing": f"{req.s1_processing}, dem {req.dem or 'default'}",
        **_zones_signature(req),
    }


def _zones_signature(req: RunRequest) -> dict[str, str]:
    """The zones part of a run signature: the parcels file's bytes (not its name) or the
    segments' parameters; none for a run without zones."""
    if req.segments:
        from pipeline.segments import CHOICE

        return {"zones": f"segments {CHOICE}"}
    if req.parcels is None or not req.parcels.is_file():
        return {}
    return {"parcels": f"{_sha256(req.parcels)}, id {req.parcel_id or 'default'}, "
                       f"min {req.min_parcel_pixels} px"}


def request_parameters(req: RunRequest) -> dict[str, Any]:
    """The request as JSON-ready values (the ``parameters`` of run.json)."""
    return {
        k: (str(v) if isinstance(v, Path | dt.date) else v)
        for k, v in dataclasses.asdict(req).items()
    }
