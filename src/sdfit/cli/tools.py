"""``sdfit report``, ``sdfit demo`` and ``sdfit conformance``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(commands) -> None:
    plot = commands.add_parser(
        "plot", help="draw units of a results folder: trajectories over their observations",
        description="Simulate units of a results folder again with their fitted parameters "
                    "and draw every target variable over the whole run with the unit's "
                    "observations (filled: fitted; hollow: not fitted), with the parameters "
                    "and their intervals.")
    plot.add_argument("folder", type=Path, metavar="DIR", help="folder written by sdfit fit")
    plot.add_argument("--unit", nargs="+", required=True, metavar="ID",
                      help="unit ids as in params.csv: '6,37' or 'state=6,county=37' for "
                           "several id columns, or a county name ('Los Angeles')")
    plot.add_argument("--out", type=Path, help="folder for the PNGs (default DIR/figures)")
    plot.add_argument("--together", action="store_true",
                      help="one figure (units.png), a small panel per unit")
    plot.set_defaults(run=_plot)
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
                    "own suite does.  Prints one line per folder and 'N passed, M failed'; "
                    "exits with status 1 when any folder fails.")
    conformance.add_argument("folder", type=Path, help="e.g. test-models/tests")
    conformance.add_argument("--engine", choices=("batched", "pysd"), default="batched",
                             help="batched (default) or PySD's own runtime, for reference")
    conformance.add_argument("--batch-size", type=int, default=2,
                             help="identical units run at once by the batched engine")
    conformance.add_argument("--only", nargs="+", metavar="NAME", default=(),
                             help="run only these test folders (each must exist)")
    conformance.add_argument("--markdown", action="store_true",
                             help="end with a table of the results grouped by verdict")
    conformance.set_defaults(run=_conformance)

    demo = commands.add_parser(
        "demo", help="plant parameters in a synthetic panel and fit them back (no data needed)")
    demo.add_argument("--out", type=Path, help="also write results and figures here")
    demo.add_argument("--units", type=int, default=3000, help="synthetic units (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    _demo_flags(demo)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)


def _demo_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--backend", help="auto (default), serial, processes or dask")
    group.add_argument("--workers", type=int,
                       help="worker processes of a local pool or cluster (default: all cores)")
    group.add_argument("--chunk-size", type=int, help="units per task")
    group.add_argument("--engine", choices=("auto", "batched", "pysd"),
                       help="auto (default), batched or pysd")


# -- plot ---------------------------------------------------------------------------------
def _plot(args: argparse.Namespace) -> int:
    from ..datasets import county_shapes
    from ..figures import plot_units
    from ..results import FitResult

    result = FitResult.read(args.folder)
    shapes = county_shapes()
    units = [parse_unit(text, result, shapes) for text in args.unit]
    out = args.out or args.folder / "figures"
    written = plot_units(result, units, out, shapefile=shapes, together=args.together)
    print(f"Wrote {', '.join(str(p) for p in written)}.")
    return 0


def parse_unit(text: str, result, shapefile=None):
    """A unit named on the command line: ids separated by commas (``6,37``), named
    (``state=6,county=37``), or a county name found in the shapefile."""
    import numpy as np

    from ..exceptions import SpecError

    columns = result.unit_columns
    parts = [p.strip() for p in text.split(",")]
    if all("=" in p for p in parts):
        named = dict(p.split("=", 1) for p in parts)
        unknown = [k for k in named if k.strip() not in columns]
        if unknown:
            raise SpecError(f"--unit '{text}': '{unknown[0]}' is not a unit id column "
                            f"({', '.join(columns)}).")
        parts = [named.get(c, "") for c in columns]
    if len(parts) == len(columns) and all(parts):
        values = []
        for column, part in zip(columns, parts, strict=True):
            kind = result.table[column].dtype.kind
            try:
                values.append(int(part) if kind in "iu" else float(part) if kind == "f"
                              else part)
            except ValueError:
                break
        else:
            key = tuple(values) if len(values) > 1 else values[0]
            ids = result.table[columns].to_numpy()
            if (ids == np.array(values, dtype=object)).all(axis=1).any():
                return key
    return _by_name(text, result, shapefile)


def _by_name(text: str, result, shapefile):
    from ..exceptions import SpecError
    from ..names import canonical, did_you_mean

    if shapefile is None or not {"state", "county"} <= set(map(str.lower,
                                                             result.unit_columns)):
        raise SpecError(f"--unit '{text}' names no unit of '{result.run.data}' (unit id "
                        f"columns: {', '.join(result.unit_columns)}).")
    from ..figures.shapes import load_county_shapes

    names = load_county_shapes(shapefile).names()
    found = [key for key, name in names.items() if canonical(text) in canonical(name)]
    if len(found) != 1:
        listed = ", ".join(f"{names[k]} ({k[0]},{k[1]})" for k in found[:5])
        why = (f"matches {len(found)} counties: {listed}" + (", ..." if len(found) > 5 else "")
               if found else "is neither unit ids nor a county name"
               + did_you_mean(text, list(names)))
        raise SpecError(f"--unit '{text}' {why}; give the ids, e.g. --unit 6,37.")
    return found[0]


# -- report -------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from ..report import write_report
    from ..rundir import ResultsFolder

    if args.out is not None:
        path = write_report(args.folder, args.out)
    else:  # into the results folder: locked, and recorded as sdfit's so a re-run replaces it
        with ResultsFolder(args.folder) as folder:
            path = write_report(args.folder)
            folder.record(path)
    print(f"Wrote {path}.")
    return 0


# -- conformance --------------------------------------------------------------------------
def _conformance(args: argparse.Namespace) -> int:
    from ..conformance import markdown, run_suite, summary

    outcomes = run_suite(args.folder, engine=args.engine, batch_size=args.batch_size,
                         only=args.only, report=lambda o: print(o.line(), flush=True))
    scalar = [o for o in outcomes if o.scalar]
    print(f"Without subscripts: {sum(o.passed for o in scalar)} of {len(scalar)} passed.")
    if args.markdown:
        print(markdown(outcomes))
    print(summary(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


# -- demo ---------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    report = run_demo(n_units=args.units, seed=args.seed, out=args.out,
                      backend=args.backend or "auto", workers=args.workers,
                      chunk_size=args.chunk_size, progress=not args.quiet,
                      engine=args.engine or "auto")
    print(report)
    return 0
