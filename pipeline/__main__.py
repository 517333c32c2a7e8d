"""Command line: ``python -m pipeline COMMAND``.

Thin on purpose: parse, validate, call one library function per command, map
errors to exit codes (0 success, 2 bad input, 1 failure), draw progress bars.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline import __version__

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and a one-line message on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see '{self.prog} --help')\n")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2023-04-01") from None


def _add_table_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, required=True, help="input CSV")
    p.add_argument("--output", type=Path, required=True, help="output CSV (written atomically)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (-vv for debug and tracebacks)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (every option documented in --help)."""
    from pipeline.aoi import DEFAULT_MAX_AREA_KM2
    from pipeline.ingest import CHUNK
    from pipeline.run import METHODS, SOURCES, default_cache
    from pipeline.tiles import DEFAULT_TILE_M

    parser = _Parser(
        prog="python -m pipeline",
        description="Gap-free 6-day NDVI from Sentinel-1 and Sentinel-2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="ingest scenes, fill gaps and write GeoTIFF stacks for an AOI",
        description="Search scenes for the AOI and period, build the 6-day Zarr cube "
        "(OUT/cube.zarr), fill NDVI gaps and write COG stacks, QGIS styles and run.json "
        "into OUT. A killed run resumes where it stopped when started again.",
    )
    run.add_argument(
        "--config",
        type=Path,
        help="TOML run config: keys are option names (aoi, out, start, source, tile-size, ...); "
        "options given on the command line win",
    )
    run.add_argument(
        "--aoi",
        type=Path,
        help="area of interest: GeoJSON in EPSG:4326 (or any vector file with a CRS); required",
    )
    run.add_argument(
        "--out",
        help="output folder (created if missing), or s3://bucket/prefix for object storage "
        "(credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL); required",
    )
    run.add_argument(
        "--start",
        type=_date,
        default=dt.date(2023, 4, 1),
        help="first day of the period, YYYY-MM-DD (default 2023-04-01)",
    )
    run.add_argument(
        "--end",
        type=_date,
        default=dt.date(2023, 10, 31),
        help="last day of the period, inclusive (default 2023-10-31)",
    )
    run.add_argument(
        "--source",
        choices=SOURCES,
        default="demo",
        help="where scenes come from: 'demo' = built-in simulated archive "
        "(no account, no internet), 'stac' = a STAC API or static catalog (--stac-url), "
        "'sentinelhub' = Sentinel Hub Process API on CDSE (SH_CLIENT_ID/SH_CLIENT_SECRET)",
    )
    run.add_argument(
        "--s2-source",
        choices=SOURCES,
        help="source of Sentinel-2 scenes (default: --source)",
    )
    run.add_argument(
        "--s1-source",
        choices=SOURCES,
        help="source of Sentinel-1 scenes (default: --source)",
    )
    run.add_argument(
        "--stac-url",
        help="with the stac source: STAC API root or catalog.json (local path, http(s):// or "
        "s3://; default: the CDSE STAC API https://stac.dataspace.copernicus.eu/v1)",
    )
    run.add_argument(
        "--eodata",
        choices=("auto", "mount", "s3", "https"),
        default="auto",
        help="how EODATA assets (s3://eodata/...) are read: 'mount' = /eodata on a CreoDIAS "
        "VM, 's3' = GDAL /vsis3 with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, 'https' = the "
        "https alternate; 'auto' = mount if /eodata exists, else https (default: auto)",
    )
    run.add_argument(
        "--s2-collection",
        help="with the stac source: collection id of Sentinel-2 L2A (default: sentinel-2-l2a; "
        "e.g. sentinel-2-c1-l2a on Earth Search)",
    )
    run.add_argument(
        "--s1-collection",
        help="with the stac source: collection id of calibrated S1 backscatter "
        "(default: sentinel-1-grd-backscatter, sentinel-1-rtc, sentinel-1-global-mosaics)",
    )
    run.add_argument(
        "--s1-assets",
        help="with the stac source: S1 asset keys as 'vv=KEY,vh=KEY' (linear gamma0 COGs)",
    )
    run.add_argument(
        "--s1-processing",
        choices=("local", "sentinelhub"),
        default="local",
        help="who turns Sentinel-1 GRD products (radar geometry, e.g. --s1-collection "
        "sentinel-1-grd) into backscatter: 'local' = calibrate, denoise and terrain-correct "
        "them here (needs a DEM; free, CPU time), 'sentinelhub' = leave it to Sentinel Hub "
        "(--s1-source sentinelhub; metered processing units); see README (default: local)",
    )
    run.add_argument(
        "--dem",
        type=Path,
        help="with --s1-processing local: DEM raster (any CRS, ellipsoidal or geoid heights) "
        "for terrain correction (default: Copernicus DEM GLO-30 on the /eodata mount)",
    )
    run.add_argument(
        "--sh-profile",
        help="with the sentinelhub source: sentinelhub config profile holding the "
        "credentials (default: SH_CLIENT_ID/SH_CLIENT_SECRET, else the default profile)",
    )
    run.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="cache folder for the demo archive (default: %(default)s, or $S1S2_CACHE)",
    )
    run.add_argument(
        "--method",
        choices=METHODS,
        default="sf",
        help="gap filler: 'sf' = the shipped Sentinel-1/2 fusion CNN-RNN, "
        "'linear' = linear interpolation (default: %(default)s)",
    )
    run.add_argument(
        "--no-dates",
        dest="sf_dates",
        action="store_false",
        help="fill with SF without its day-of-year input: the seasonal prior was learned on "
        "grassland; without it SF is better on crops and built-up land, worse on grassland",
    )
    run.add_argument(
        "--model",
        type=Path,
        help="weights (.safetensors) for --method sf (default: the shipped weights)",
    )
    run.add_argument("--crs", help="output CRS, e.g. EPSG:32634 (default: UTM zone of the AOI)")
    run.add_argument(
        "--max-area-km2",
        type=float,
        default=DEFAULT_MAX_AREA_KM2,
        help="refuse AOIs larger than this (default: %(default)s km²)",
    )
    run.add_argument(
        "--chunk",
        type=int,
        default=CHUNK,
        help="spatial chunk edge in pixels (default: %(default)s)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel chunk workers (default: number of cores)",
    )
    run.add_argument("--seed", type=int, default=0, help="demo world seed (default: 0)")
    run.add_argument(
        "--scheduler",
        help="dask scheduler: tcp://HOST:PORT of an existing "
        "cluster, 'threads' for in-process threads; default: a LocalCluster "
        "sized to this machine",
    )
    run.add_argument(
        "--tile-size",
        type=float,
        default=DEFAULT_TILE_M,
        metavar="METRES",
        help="split the AOI into tiles of this edge (independent, resumable "
        "units, mosaicked at the end; default: %(default)g m)",
    )
    _add_common(run)
    run.set_defaults(handler=_cmd_run)

    ft = sub.add_parser(
        "fill-table",
        help="fill NDVI gaps in a CSV table of per-series 6-day values",
        description="IN columns id,date,ndvi,vv,vh (one row per series and date, each "
        "series' dates 6 days apart; empty ndvi = gap; vv/vh in dB, may be empty; optional "
        "orbit column). OUT columns id,date,ndvi_filled,ndvi_std for every input row.",
    )
    _add_table_io(ft)
    ft.add_argument("--model", type=Path, help="weights (.safetensors); default: shipped")
    _add_common(ft)
    ft.set_defaults(handler=_cmd_fill_table)

    ev = sub.add_parser(
        "evaluate",
        help="benchmark the SF model against classic interpolators on real plot series",
        description="DIR has the layout of the slovak-grassland data (train/S1/*.csv, "
        "train/S2/*.csv). Hides contiguous runs of clear observations (6, 12-18, 24-30, "
        "36-60 days) and scores SF, linear, Akima, quadratic and Whittaker: MAE, RMSE, R² "
        "per gap bucket and the coverage of SF's 90%% interval. Writes JSON, Markdown, PNG.",
    )
    ev.add_argument("--data", type=Path, required=True, help="data folder")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    ev.add_argument("--model", type=Path, help="weights (.safetensors); default: shipped")
    ev.add_argument("--seed", type=int, default=0, help="seed of the artificial gaps")
    _add_common(ev)
    ev.set_defaults(handler=_cmd_evaluate)
    _add_mowing_parsers(sub)
    return parser


def _cmd_fill_table(args: argparse.Namespace) -> int:
    from pipeline.filltable import fill_table

    if args.model is not None and not args.model.is_file():
        from pipeline.errors import InputError

        raise InputError(f"--model: file not found: {args.model}")
    fill_table(args.input, args.output, model_path=args.model)
    print(f"wrote {args.output}")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.evaluate import run_evaluation
    from pipeline.run import check_writable_dir

    check_writable_dir(args.out)
    if not args.data.is_dir():
        from pipeline.errors import InputError

        raise InputError(f"--data: not a folder: {args.data}")
    run_evaluation(args.data, args.out, model_path=args.model, seed=args.seed)
    print(f"report in {args.out}/")
    return EXIT_OK


def _add_mowing_parsers(sub: argparse._SubParsersAction) -> None:
    from pipeline.mowing.detect import METHODS as MOWING_METHODS

    def detector_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--detector",
            choices=MOWING_METHODS,
            default="drop",
            help="cut detector: 'drop' = NDVI drop rule (Kolecka et al. 2018), 'zdrop' = "
            "drop tested against the fill uncertainty (default: %(default)s)",
        )

    mw = sub.add_parser(
        "mowing",
        help="detect grassland cuts on a filled cube: per-pixel rasters, per-parcel events",
        description="Writes OUT/mowing_count.tif (cuts per pixel) and OUT/mowing_dates.tif "
        "(one band per cut, YYYYMMDD, 0 = none); with --parcels also mowing_parcels.csv "
        "and mowing_events.gpkg from each parcel's mean filled series.",
    )
    mw.add_argument(
        "--cube", type=Path, required=True, help="the --out folder of a run, or its cube.zarr"
    )
    mw.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    mw.add_argument("--parcels", type=Path, help="parcel polygons (GeoJSON, GeoPackage)")
    mw.add_argument(
        "--parcel-id",
        help="parcels column with the parcel id (default: the first of parcel_id, id, plotID, "
        "PLOTID, fid; else the row number)",
    )
    mw.add_argument(
        "--series",
        choices=("filled", "observed"),
        default="filled",
        help="series the detector reads: 'filled' = ndvi_filled with its std, 'observed' = "
        "the clear observations only (see the README's mowing benchmark) "
        "(default: %(default)s)",
    )
    detector_options(mw)
    _add_common(mw)
    mw.set_defaults(handler=_cmd_mowing)

    mt = sub.add_parser(
        "mowing-table",
        help="detect grassland cuts in a CSV table of raw NDVI (and S1) acquisitions",
        description="IN columns id,date,ndvi (one row per acquisition on its own date; empty "
        "ndvi = cloudy) and optional vv,vh in dB. Each series is binned onto the 6-day grid, "
        "gap-filled and searched for cuts. OUT columns id,event_date, one row per cut.",
    )
    _add_table_io(mt)
    mt.add_argument(
        "--method",
        choices=("sf", "linear", "raw"),
        default=None,
        help="gap filler: sf, linear, or raw = no fill, detect on the binned observations "
        "(default: sf when its weights exist, else linear)",
    )
    mt.add_argument("--model", type=Path, help="weights (.safetensors); default: shipped")
    detector_options(mt)
    _add_common(mt)
    mt.set_defaults(handler=_cmd_mowing_table)


def _cmd_mowing(args: argparse.Namespace) -> int:
    from pipeline.mowing.raster import write_mowing
    from pipeline.run import check_writable_dir

    check_writable_dir(args.out)
    r = write_mowing(
        args.cube, args.out, args.detector, parcels_path=args.parcels, parcel_id=args.parcel_id,
        series=args.series,
    )
    extra = f"; {r.parcel_events} cuts in {r.parcels} parcels" if args.parcels else ""
    print(
        f"{r.pixels_with_cuts:,} pixels with cuts{extra}; wrote "
        + ", ".join(p.name for p in r.paths)
    )
    return EXIT_OK


def _cmd_mowing_table(args: argparse.Namespace) -> int:
    from pipeline.errors import InputError
    from pipeline.fill import default_filler
    from pipeline.mowing.series import mowing_table

    if args.model is not None and not args.model.is_file():
        raise InputError(f"--model: file not found: {args.model}")
    method = args.method
    if method is None:
        import model

        method = "sf" if (args.model or model.default_weights()).is_file() else "linear"
    filler = None if method == "raw" else default_filler(args.model, method)
    n = mowing_table(args.input, args.output, filler, args.detector)
    print(f"{n} cuts ({method} {'series' if method == 'raw' else 'fill'}, {args.detector}) "
          f"-> {args.output}")
    return EXIT_OK


def _progress_factory(quiet: bool) -> Callable[[str], Callable[[int, int], None]]:
    if quiet:
        return lambda stage: lambda done, total: None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def factory(stage: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(
                    total=total, desc=f"{stage:>6}", unit="chunk", file=sys.stderr, leave=True
                )
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

        return update

    return factory


def _remote_work_dir(args: argparse.Namespace) -> Path:
    """Local working folder of a run whose --out is on object storage."""
    import hashlib

    key = hashlib.sha256(args.out.rstrip("/").encode()).hexdigest()[:12]
    return Path(args.cache) / "remote-runs" / key


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from pipeline.errors import InputError
    from pipeline.run import RunRequest, run_pipeline
    from pipeline.storage import is_remote

    for opt in ("aoi", "out"):
        if getattr(args, opt) is None:
            raise InputError(f"--{opt} is required (on the command line or in --config)")
    req = RunRequest(
        aoi=args.aoi,
        out=Path(args.out) if not is_remote(args.out) else _remote_work_dir(args),
        remote=args.out.rstrip("/") if is_remote(args.out) else None,
        start=args.start,
        end=args.end,
        source=args.source,
        stac_url=args.stac_url,
        s2_source=args.s2_source,
        s1_source=args.s1_source,
        eodata=args.eodata,
        s1_assets=args.s1_assets,
        s1_collection=args.s1_collection,
        s2_collection=args.s2_collection,
        sh_profile=args.sh_profile,
        cache=args.cache,
        method=args.method,
        model=args.model,
        crs=args.crs,
        max_area_km2=args.max_area_km2,
        chunk=args.chunk,
        workers=args.workers or max(1, os.cpu_count() or 1),
        seed=args.seed,
        tile_m=args.tile_size,
        sf_dates=args.sf_dates,
        scheduler=args.scheduler,
        s1_processing=args.s1_processing,
        dem=args.dem,
    )
    s = run_pipeline(req, progress=_progress_factory(args.quiet))
    print(
        f"done in {s.seconds:.1f} s: {s.pixels_in_aoi:,} pixels in the AOI "
        f"({s.pixels:,} on the grid) x {s.dates} six-day dates; "
        f"{s.observed_share:.0%} of cells observed, {s.filled_share:.0%} filled; "
        f"{s.scenes_used} scenes used, {s.scenes_skipped} skipped"
        + (f"; {s.tiles} tiles" if s.tiles > 1 else "")
        + (f"; resumed, {s.chunks_skipped} chunks already done" if s.chunks_skipped else "")
        + (f" ({s.tiles_skipped} tiles complete)" if s.tiles_skipped else "")
    )
    print(f"outputs in {s.location}/: {', '.join(s.products)}")
    return EXIT_OK


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet or verbose == 0 else logging.INFO
    if verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _apply_config(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, path: Path
) -> argparse.Namespace:
    """Re-parse with the TOML file's values as defaults of the ``run`` subcommand."""
    import tomllib

    from pipeline.errors import InputError

    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config: file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: {path} is not valid TOML ({exc})") from None
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "run"
    ]
    known = {a.dest: a for a in sub._actions}
    defaults = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise InputError(f"--config: unknown option {key!r} in {path}")
        action = known[dest]
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise InputError(f"--config: {key} = {value!r} in {path}: {exc}") from None
        if action.choices is not None and value not in action.choices:
            raise InputError(
                f"--config: {key} = {value!r} in {path}; choose from {sorted(action.choices)}"
            )
        defaults[dest] = value
    sub.set_defaults(**defaults)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from pipeline.errors import InputError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "config", None) is not None:
            args = _apply_config(parser, argv, args.config)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _configure_logging(args.verbose, args.quiet)
    try:
        code: int = args.handler(args)
        return code
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:
        if args.verbose >= 2:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"failed: {type(exc).__name__}: {msg} (rerun with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
