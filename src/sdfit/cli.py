"""The ``sdfit`` command line.

Every user error ends as one sentence on stderr and exit status 2, with no
traceback and nothing written in the output folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from . import __version__
from .exceptions import FallbackWarning, SdfitError, SpecError

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args) or 0
    except SdfitError as error:
        print(f"sdfit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sdfit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: results are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdfit",
        description="Calibrate one system dynamics model separately to each of many units.")
    parser.add_argument("--version", action="version", version=f"sdfit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    fit = commands.add_parser(
        "fit", help="fit a model to every unit of a panel",
        description="Fit a model to every unit of a panel as a TOML spec says "
                    "(flags replace spec entries; without a spec, flags say it all).")
    fit.add_argument("spec", nargs="?", help="spec file, or a bundled example: "
                     "us-counties, us-counties-recipe")
    fit.add_argument("--out", required=True, type=Path, help="results folder")
    _problem_flags(fit)
    _execution_flags(fit)
    fit.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    fit.add_argument("--map-parameter", help="parameter drawn on the county map")
    fit.add_argument("--report", action="store_true",
                     help="also write report.html (as `sdfit report DIR` does)")
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=_fit)

    report = commands.add_parser(
        "report", help="write one self-contained HTML page about a results folder",
        description="Write DIR/report.html: spec and fingerprints, successes and failures, "
                    "SSE, parameters, observed vs fitted, county map, identifiability, and "
                    "the slowest and worst-fitting units.")
    report.add_argument("folder", type=Path, metavar="DIR", help="folder written by sdfit fit")
    report.add_argument("--out", type=Path, help="HTML file (default DIR/report.html)")
    report.set_defaults(run=_report)

    conformance = commands.add_parser(
        "conformance", help="run the SD conformance suite (test-models) through the engine",
        description="Run every test folder under FOLDER (a model and its canonical output) "
                    "and compare every output column at 5 %% relative tolerance, as PySD's "
                    "own suite does.  Prints one line per folder and 'N passed, M failed'.")
    conformance.add_argument("folder", type=Path, help="e.g. test-models/tests")
    conformance.add_argument("--engine", choices=("batched", "pysd"), default="batched",
                             help="batched (default) or PySD's own runtime, for reference")
    conformance.add_argument("--batch-size", type=int, default=2,
                             help="identical units run at once by the batched engine")
    conformance.add_argument("--only", nargs="+", metavar="NAME", default=(),
                             help="run only these test folders")
    conformance.add_argument("--markdown", action="store_true",
                             help="end with a table of the results grouped by verdict")
    conformance.set_defaults(run=_conformance)

    demo = commands.add_parser(
        "demo", help="plant parameters in a synthetic panel and fit them back (no data needed)")
    demo.add_argument("--out", type=Path, help="also write results and figures here")
    demo.add_argument("--units", type=int, default=3000, help="synthetic units (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    _execution_flags(demo)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)
    return parser


def _problem_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("problem (replace or extend the spec)")
    group.add_argument("--model", help="Vensim .mdl or XMILE model file")
    group.add_argument("--data", help="data file (wide census-style or long CSV, or Parquet)")
    group.add_argument("--param", action="append", default=[], metavar="NAME[=X0]",
                       help="fit this constant or glob ('dec * loss rate=0.05'); repeatable")
    group.add_argument("--fixed", action="append", default=[], metavar="NAME=VALUE",
                       help="hold a constant at a value; repeatable")
    group.add_argument("--bounds", action="append", default=[], metavar="NAME=LO,HI",
                       help="bounds of a parameter; repeatable")
    group.add_argument("--ridge", action="append", default=[], metavar="NAME=LAMBDA",
                       help="penalty LAMBDA * (x - x0)**2 added to the SSE; repeatable")
    group.add_argument("--shared", action="append", default=[], metavar="NAME",
                       help="one value of this parameter for all units; repeatable")
    group.add_argument("--initial-time", type=float, help="start from the data at this time")
    group.add_argument("--target-times", type=float, nargs="+", metavar="T",
                       help="times compared with the data")
    group.add_argument("--targets", nargs="+", metavar="NAME", help="variables compared")
    group.add_argument("--exclude", action="append", default=[], metavar="NAME",
                       help="data variable not fitted; repeatable")
    group.add_argument("--drop-invalid", action="store_true", default=None,
                       help="skip units with missing, negative or infinite needed values")


def _execution_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--backend", help="serial, processes (default) or dask")
    group.add_argument("--workers", type=int,
                       help="worker processes of a local pool or cluster (default: all cores)")
    group.add_argument("--chunk-size", type=int, help="units per task")
    group.add_argument("--engine", choices=("auto", "batched", "pysd"),
                       help="auto (default: batched, else PySD's runtime with a warning), "
                            "batched, or pysd (PySD's runtime, one unit at a time)")
    if parser.prog.endswith(" fit"):
        group.add_argument("--scheduler", metavar="ADDRESS",
                           help="a running Dask scheduler (tcp://HOST:PORT) for --backend dask; "
                                "default a local cluster")
        group.add_argument("--resume", action="store_true",
                           help="continue the interrupted run saved in --out (same model, data, "
                                "problem and chunking), skipping the chunks it finished")


# -- fit ----------------------------------------------------------------------------------
def _fit(args: argparse.Namespace) -> int:
    from .exceptions import IdentifiabilityWarning
    from .fit import fit
    from .model import open_model
    from .results import fingerprint
    from .spec import spec_from_dict

    raw, base, source = _spec_dict(args.spec)
    _apply_flags(raw, args)
    spec = spec_from_dict(raw, base=base, source=source)
    if spec.model is None or spec.data is None:
        raise SpecError("Say which model and data to fit: give a spec file or --model and --data.")
    options = spec.fit
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        model = open_model(spec.model, args.engine or options.get("engine", "auto"))
    for warning in caught:
        if issubclass(warning.category, FallbackWarning):
            print(f"sdfit: warning: {warning.message}", file=sys.stderr)
    _check_out(args.out)
    scheduler = args.scheduler or options.get("scheduler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)  # the summary says it
        result = fit(model, spec.data, spec.problem,
                     backend=args.backend or options.get("backend") or (
                         "dask" if scheduler else "processes"),
                     workers=args.workers or options.get("workers"), scheduler=scheduler,
                     chunk_size=args.chunk_size or options.get("chunk_size"),
                     solver=_solver(model, spec.solver),
                     drop_invalid=bool(args.drop_invalid or options.get("drop_invalid", False)),
                     progress=not args.quiet, out=args.out, resume=args.resume,
                     info={"spec": source, "spec_dict": raw,
                           "fingerprints": {"spec": fingerprint(source)}})
    written = [args.out / name for name in _RESULT_FILES if (args.out / name).is_file()]
    if not args.no_figures:
        written += _figures(result, args.out, spec, args.map_parameter)
    if args.report:
        from .report import write_report

        written.append(write_report(args.out))
    print(result.summary())
    if result.info["resumed_chunks"]:
        print(f"Resumed an interrupted run: {result.info['resumed_chunks']} of "
              f"{result.info['chunks']} chunks were already done.")
    print(f"Wrote {', '.join(str(p.relative_to(args.out)) for p in written)} to {args.out} "
          f"({time.perf_counter() - started:.1f} s in all).")
    return 0


def _solver(model, settings: dict):
    """The spec's solver settings for the engine: batched LM, or SciPy unit by unit."""
    from .model import PysdModel
    from .solvers import LevenbergMarquardt, ScipyLeastSquares

    return (ScipyLeastSquares if isinstance(model, PysdModel) else LevenbergMarquardt)(
        **settings)


_RESULT_FILES = ("params.csv", "targets.csv", "params.parquet", "dropped.csv", "run.json")


def _spec_dict(spec: str | None) -> tuple[dict, Path, str]:
    from .spec import find_spec, tomllib

    if spec is None:
        return {}, Path.cwd(), "<command line>"
    path = find_spec(spec)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path.parent, str(path)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"Spec file '{path}' is not valid TOML: {error}.") from None


def _apply_flags(raw: dict, args: argparse.Namespace) -> None:
    """Let command-line flags replace or extend the spec's entries."""
    for key in ("model", "data"):
        if getattr(args, key):
            raw[key] = os.path.abspath(getattr(args, key))
    if args.initial_time is not None:
        raw.setdefault("initial", {})["time"] = args.initial_time
    targets = raw.setdefault("targets", {})
    if args.target_times:
        targets["times"] = args.target_times
    if args.targets:
        targets["variables"] = args.targets
    if args.exclude:
        targets["exclude"] = list(targets.get("exclude", [])) + args.exclude
    params = raw.setdefault("parameters", {})
    for entry in args.param:
        name, _, x0 = entry.partition("=")
        params.setdefault(name.strip(), {}).update({"x0": _number(x0, entry)} if x0 else {})
    for entry in args.fixed:
        name, _, value = entry.partition("=")
        params.setdefault(name.strip(), {})["fixed"] = _number(value, entry)
    for entry in args.bounds:
        name, _, bounds = entry.partition("=")
        lo, _, hi = bounds.partition(",")
        params.setdefault(name.strip(), {})["bounds"] = [_number(lo, entry), _number(hi, entry)]
    for entry in args.ridge:
        name, _, value = entry.partition("=")
        params.setdefault(name.strip(), {})["ridge"] = _number(value, entry)
    for name in args.shared:
        params.setdefault(name.strip(), {})["shared"] = True
    if not targets:
        raw.pop("targets")
    if args.drop_invalid:
        raw.setdefault("fit", {})["drop_invalid"] = True


def _number(text: str, entry: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpecError(f"'{text}' in '{entry}' is not a number.") from None


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SpecError(f"Output folder '{out}' exists and is not a folder.")


def _figures(result, out: Path, spec, map_parameter: str | None) -> list[Path]:
    from .datasets import county_shapes
    from .plotting import write_figures

    if map_parameter and map_parameter not in result.parameters:
        from .names import did_you_mean

        raise SpecError(f"--map-parameter '{map_parameter}' is not a fitted parameter."
                        f"{did_you_mean(map_parameter, result.parameters)}")
    shapes = county_shapes() if "county" in map(str.lower, result.unit_columns) else None
    written = write_figures(result, out / "figures", excluded=spec.problem.exclude,
                            map_parameter=map_parameter, shapefile=shapes)
    return written


# -- report -------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.folder, args.out)
    print(f"Wrote {path}.")
    return 0


# -- conformance --------------------------------------------------------------------------
def _conformance(args: argparse.Namespace) -> int:
    from .conformance import markdown, run_suite, summary

    outcomes = run_suite(args.folder, engine=args.engine, batch_size=args.batch_size,
                         only=args.only, report=lambda o: print(o.line(), flush=True))
    scalar = [o for o in outcomes if o.scalar]
    print(f"Without subscripts: {sum(o.passed for o in scalar)} of {len(scalar)} passed.")
    if args.markdown:
        print(markdown(outcomes))
    print(summary(outcomes))
    return 0


# -- demo ---------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(n_units=args.units, seed=args.seed, out=args.out,
                      backend=args.backend or "processes", workers=args.workers,
                      chunk_size=args.chunk_size, progress=not args.quiet,
                      engine=args.engine or "auto")
    print(report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
