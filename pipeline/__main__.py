"""Command line: ``python -m pipeline COMMAND``.

Thin on purpose: parse, validate, call one library function per command, map
errors to exit codes (0 success, 2 bad input, 1 failure), draw progress bars.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.checks import check_mowing_cube, check_table_output, check_weights
from pipeline.errors import InputError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (a value given on
    the command line may hold any of them; the message stays one line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and a one-line message on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {one_line(message)} (see '{self.prog} --help')\n")


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ValueError message becomes the usage error."""
    if parse in (str, int, float, Path):
        return parse  # argparse's own message names the type ("invalid int value")

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The ``run`` options, from their one definition (:class:`pipeline.request.RunRequest`)."""
    from pipeline.request import run_options

    for o in run_options():
        if o.parse is None:  # a switch
            action = "store_false" if o.default else "store_true"
            p.add_argument(o.flag, dest=o.field, action=action, help=o.help)
            continue
        p.add_argument(o.flag, dest=o.field, type=_argtype(o.parse), default=o.default,
                       choices=o.choices, metavar=o.metavar, help=o.help)


def _add_table_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, required=True, help="input CSV")
    p.add_argument("--output", type=Path, required=True, help="output CSV (written atomically)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="weights (.safetensors); default: shipped")


def _probability(text: str) -> float:
    """An argparse type: a probability in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{v:g} is not a probability in [0, 1]")
    return v


def _check_detector(args: argparse.Namespace, *detectors: str) -> None:
    """``--min-probability`` only with learned detectors; their weights must exist.

    ``detectors``: those the command will run (default: ``--detector``).
    """
    from pipeline.mowing.detect import LEARNED

    detectors = detectors or (args.detector,)
    if args.min_probability is not None and not set(detectors) <= set(LEARNED):
        raise InputError(f"--min-probability applies to --detector {' or '.join(LEARNED)} only")
    learned = [d for d in dict.fromkeys(detectors) if d in LEARNED]
    if not learned:
        return
    from model.mowing import default_detector_weights  # torch: only for a learned detector

    for name in learned:
        weights = default_detector_weights(name)
        if not weights.is_file():
            raise InputError(f"--detector {name}: no weights at {weights}")


def _model(args: argparse.Namespace) -> Path | None:
    """``--model``, checked."""
    if args.model is not None:
        check_weights(args.model)
    model: Path | None = args.model
    return model


def _command(sub: argparse._SubParsersAction, handler: Callable[[argparse.Namespace], int],
             help: str) -> argparse.ArgumentParser:
    """The subparser of ``handler`` (``_cmd_fill_table`` -> ``fill-table``); its docstring
    is the command's description in --help."""
    name = handler.__name__.removeprefix("_cmd_").replace("_", "-")
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=handler.__doc__)
    return parser


def _add_common(p: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int],
                **defaults: Any) -> None:
    """The options every command has, and the command's handler."""
    p.set_defaults(handler=handler, **defaults)
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (-vv for debug and tracebacks)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def _prog_name() -> str:
    """``s1s2-gapfill`` when started by the installed script, else ``python -m pipeline``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m pipeline" if name in ("", "__main__.py", "-c") else name


def build_parser(run_defaults: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    """The CLI's argument parser (every option documented in --help); ``run_defaults``
    (e.g. from ``--config``) replace the defaults of ``run`` options."""
    parser = _Parser(
        prog=_prog_name(),
        description="Gap-free 6-day NDVI from Sentinel-1 and Sentinel-2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = _command(sub, _cmd_run, "ingest scenes, fill gaps and write GeoTIFF stacks for an AOI")
    run.add_argument(
        "--config",
        type=Path,
        help="TOML run config: keys are option names (aoi, out, start, source, tile-size, ...); "
        "options given on the command line win",
    )
    _add_run_options(run)
    _add_common(run, _cmd_run, **(run_defaults or {}))

    ft = _command(sub, _cmd_fill_table, "fill NDVI gaps in a CSV table of per-series 6-day values")
    _add_table_io(ft)
    _add_model(ft)
    ft.add_argument(
        "--no-adapt", action="store_true",
        help="fill with the weights as they are; by default SF is first fine-tuned on the "
        "table's own clear dates and kept only if that is better on a held-out fifth of "
        "the series (1,000 steps, seconds to a minute; tables with fewer than 30 series "
        "with 6 clear dates are never adapted)")
    _add_common(ft, _cmd_fill_table)

    ev = _command(sub, _cmd_evaluate,
                  "benchmark the SF model against classic interpolators on real plot series")
    ev.add_argument("--data", type=Path, required=True, help="data folder")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    _add_model(ev)
    ev.add_argument("--seed", type=int, default=0, help="seed of the artificial gaps")
    ev.add_argument("--no-adapt", action="store_true",
                    help="score SF as shipped only; by default SF adapted as fill-table adapts "
                    "it is scored too (each half of the plots by the network adapted on the "
                    "other half)")
    _add_common(ev, _cmd_evaluate)
    _add_mowing_parsers(sub)
    return parser


def _cmd_fill_table(args: argparse.Namespace) -> int:
    """IN columns id,date,ndvi (one row per series and date, each series' dates 6 days
    apart; empty ndvi = gap), optional vv,vh in dB (may be empty; without them the table
    is Sentinel-2 only) and orbit. OUT columns id,date,ndvi_filled,ndvi_std for every
    input row."""
    from pipeline.filltable import fill_table

    check_table_output(args.input, args.output)
    report = fill_table(args.input, args.output, model_path=_model(args),
                        adapt=not args.no_adapt)
    if report is not None and report.n_holdout:
        print(f"SF adapted to {report.n_series} series: held-out MAE "
              f"{report.holdout_mae_shipped:.4f} as shipped, {report.holdout_mae_adapted:.4f} "
              f"fine-tuned ({'fine-tuned' if report.kept else 'shipped'} kept)")
    elif report is not None:
        print(f"SF not adapted ({report.reason})")
    print(f"wrote {args.output}")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """DIR has the layout of the slovak-grassland data (train/S1/*.csv, train/S2/*.csv).
    Hides contiguous runs of clear observations (6, 12-18, 24-30, 36-60 days) and scores
    SF, linear, Akima, quadratic and Whittaker: MAE, RMSE, R² per gap bucket and the
    coverage of SF's 90%% interval. Writes JSON, Markdown, PNG."""
    from pipeline.evaluate import run_evaluation
    from pipeline.storage import check_writable_dir

    check_writable_dir(args.out)
    if not args.data.is_dir():
        raise InputError(f"--data: not a folder: {args.data}")
    run_evaluation(args.data, args.out, model_path=args.model, seed=args.seed,
                   adapt_steps=0 if args.no_adapt else None)
    print(f"report in {args.out}/")
    return EXIT_OK


def _add_mowing_parsers(sub: argparse._SubParsersAction) -> None:
    from pipeline.mowing.detect import DEFAULT_DETECTOR, DETECTORS, PIXEL_DETECTOR

    def detector_options(p: argparse.ArgumentParser, default: str | None,
                         default_text: str) -> None:
        p.add_argument(
            "--detector",
            choices=DETECTORS,
            default=default,
            help="cut detector: 'learned' = a network trained on labelled cuts that reads the "
            "observations (--series and --method do not apply), with a probability per cut; "
            "'learned-fast' = one narrow network distilled from it, about 5x faster and "
            "0.002 lower mean F1 across domains; "
            "'drop' = NDVI drop rule (Kolecka et al. 2018); 'zdrop' = "
            "drop tested against the fill uncertainty (README, Mowing detection) "
            f"(default: {default_text})",
        )
        p.add_argument(
            "--min-probability",
            type=_probability,
            default=None,
            help="learned detectors only: report cuts at least this likely (0-1; default: "
            "the detector's threshold, 0.4)",
        )

    mw = _command(sub, _cmd_mowing,
                  "detect grassland cuts on a filled cube: per-pixel rasters, per-parcel events")
    mw.add_argument(
        "--cube", type=Path, required=True, help="the --out folder of a run, or its cube.zarr"
    )
    mw.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    mw.add_argument(
        "--parcels", type=Path,
        help="parcel polygons (GeoJSON, GeoPackage); default: the run's own parcels when it "
        "was made with --parcels (its parcels.parquet and the cube's parcel raster)",
    )
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
    detector_options(mw, None, f"{PIXEL_DETECTOR} for the per-pixel rasters, "
                     f"{DEFAULT_DETECTOR} for the per-parcel events")
    _add_common(mw, _cmd_mowing)

    mt = _command(sub, _cmd_mowing_table,
                  "detect grassland cuts in a CSV table of raw NDVI (and S1) acquisitions")
    _add_table_io(mt)
    mt.add_argument(
        "--method",
        choices=("sf", "linear", "raw"),
        default=None,
        help="gap filler: sf, linear, or raw = no fill, detect on the binned observations "
        "(default: sf when its weights exist, else linear)",
    )
    _add_model(mt)
    detector_options(mt, DEFAULT_DETECTOR, DEFAULT_DETECTOR)
    _add_common(mt, _cmd_mowing_table)


def _cmd_mowing(args: argparse.Namespace) -> int:
    """Writes OUT/mowing_count.tif (cuts per pixel) and OUT/mowing_dates.tif (one band per
    cut, YYYYMMDD, 0 = none); with --parcels (or on a run made with --parcels) also
    mowing_parcels.csv and mowing_events.gpkg from each parcel's mean series."""
    from pipeline.mowing.detect import DEFAULT_DETECTOR, PIXEL_DETECTOR
    from pipeline.mowing.raster import series_for, write_mowing
    from pipeline.storage import check_writable_dir

    check_writable_dir(args.out)
    pixels = args.detector or PIXEL_DETECTOR
    parcels = args.detector or DEFAULT_DETECTOR
    _check_detector(args, pixels, parcels)
    series = series_for(pixels, args.series)
    check_mowing_cube(args.cube, series)
    r = write_mowing(
        args.cube, args.out, pixels, parcels_path=args.parcels, parcel_id=args.parcel_id,
        series=series, min_probability=args.min_probability, parcel_method=parcels,
    )
    extra = f"; {r.parcel_events} cuts in {r.parcels} parcels" if r.parcels else ""
    names = ", ".join(p.name for p in r.paths)
    print(f"{r.pixels_with_cuts:,} pixels with cuts{extra}; wrote {names}")
    return EXIT_OK


def _cmd_mowing_table(args: argparse.Namespace) -> int:
    """IN columns id,date,ndvi (one row per acquisition on its own date; empty ndvi =
    cloudy) and optional vv,vh in dB. Each series is binned onto the 6-day grid,
    gap-filled and searched for cuts. OUT columns id,event_date, one row per cut."""
    from pipeline.fill import available_method, default_filler
    from pipeline.mowing.detect import LEARNED
    from pipeline.mowing.series import mowing_table

    check_table_output(args.input, args.output)
    _check_detector(args)
    model = _model(args)
    learned = args.detector in LEARNED
    if learned:  # reads the observations; no fill
        filler, method = None, "raw"
    else:
        method = args.method or available_method(model)
        filler = None if method == "raw" else default_filler(model, method)
    n = mowing_table(args.input, args.output, filler, args.detector,
                     min_probability=args.min_probability)
    how = (f"{args.detector} detector on the observations" if learned else
           f"{method} {'series' if method == 'raw' else 'fill'}, {args.detector}")
    print(f"{n} cuts ({how}) -> {args.output}")
    return EXIT_OK


def _progress_factory(quiet: bool) -> Callable[[str], Callable[[int, int], None]]:
    # bars only on a terminal: in a log file or a pipe their \r frames are noise
    if quiet or not sys.stderr.isatty():
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


def _cmd_run(args: argparse.Namespace) -> int:
    """Search scenes for the AOI and period, build the 6-day Zarr cube (OUT/cube.zarr),
    fill NDVI gaps and write COG stacks, QGIS styles and run.json into OUT. A killed run
    resumes where it stopped when started again."""
    from pipeline.request import request_from_options
    from pipeline.run import run_pipeline

    req = request_from_options(vars(args))
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
    # dask.distributed sets up its own loggers on import, unless the root logger has a
    # handler by then: imported first, its scheduler and worker INFO lines stay out of ours
    import distributed  # noqa: F401

    info = logging.INFO if verbose and not quiet else logging.WARNING
    level = logging.DEBUG if verbose >= 2 else info
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # where the cluster runs and its dashboard (INFO lines): shown unless -q
    cluster = logging.WARNING if quiet else min(level, logging.INFO)
    logging.getLogger("pipeline.cluster").setLevel(cluster)
    if verbose < 2:
        logging.getLogger("asyncio").addFilter(_unretrieved_write_errors)
    if not verbose:
        logging.getLogger("urllib3.connectionpool").addFilter(_retry_notices)


def _unretrieved_write_errors(record: logging.LogRecord) -> bool:
    """Drop asyncio's report of a chunk write whose error nobody awaited.

    zarr stores a region's chunks concurrently; when the disk fills, the first failed
    write becomes the run's one-line error and the writes that failed beside it are
    garbage collected with their exceptions unread, which asyncio logs with a traceback.
    They say the same thing again, so they are shown only with -vv.
    """
    return "exception was never retrieved" not in record.getMessage()


def _retry_notices(record: logging.LogRecord) -> bool:
    """Drop urllib3's notice of each retried request (shown with -v).

    A request that fails for good ends in the run's one-line error, which names the
    cause; the retries before it, each a long line with the pool's settings, would come
    first. A retry that then succeeds changes nothing the user must act on.
    """
    return not record.getMessage().startswith("Retrying (")


def _config_defaults(path: Path) -> dict[str, Any]:
    """The ``run`` option values of a TOML file, converted as on the command line."""
    import tomllib

    from pipeline.request import config_values

    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config: file not found: {path}") from None
    except OSError as exc:  # a folder, no permission
        raise InputError(f"--config: cannot read {path} ({exc.strerror}); pass a TOML file") \
            from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: {path} is not valid TOML ({exc})") from None
    return config_values(values, str(path))


def _failure(exc: BaseException, args: argparse.Namespace | None) -> str | None:
    """One line for an expected failure midway (disk full, permission lost, scheduler
    lost), naming the path or address; None for other errors."""
    from concurrent.futures import CancelledError

    scheduler = getattr(args, "scheduler", None)
    lost = type(exc).__name__ in ("CommClosedError", "FutureCancelledError")
    if lost or isinstance(exc, CancelledError):
        where = scheduler if scheduler not in (None, "threads") else "the local dask cluster"
        return f"lost the dask scheduler {where} ({type(exc).__name__}); check it and rerun "\
               "the same command to resume"
    disk = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS)
    if isinstance(exc, OSError) and exc.errno in disk:
        path = exc.filename or getattr(args, "out", None) or getattr(args, "output", None)
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{exc.strerror or exc} ({name}): {path}; free space or fix the "\
               "permissions, then rerun the same command"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    verbose = 0
    args: argparse.Namespace | None = None
    try:
        for arg in sys.argv[1:] if argv is None else argv:
            if "\x00" in arg:  # no file name or value holds one (only in-process callers)
                raise InputError(f"argument {one_line(arg)!r} holds a NUL character")
        args = build_parser().parse_args(argv)
        if getattr(args, "config", None) is not None:
            args = build_parser(_config_defaults(args.config)).parse_args(argv)
        verbose = args.verbose
        _configure_logging(args.verbose, args.quiet)
        return int(args.handler(args))
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except InputError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:
        if verbose >= 2:
            raise
        line = _failure(exc, args)
        if line is not None:
            print(f"failed: {one_line(line)} (rerun with -vv for the traceback)",
                  file=sys.stderr)
            return EXIT_FAILURE
        msg = one_line(str(exc).splitlines()[0]) if str(exc).strip() else ""
        print(
            f"failed: {type(exc).__name__}: {msg} (rerun with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
