"""``sdfit report``, ``sdfit demo`` and ``sdfit conformance``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(commands) -> None:
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
    group.add_argument("--backend", help="serial, processes (default) or dask")
    group.add_argument("--workers", type=int,
                       help="worker processes of a local pool or cluster (default: all cores)")
    group.add_argument("--chunk-size", type=int, help="units per task")
    group.add_argument("--engine", choices=("auto", "batched", "pysd"),
                       help="auto (default), batched or pysd")


# -- report -------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.folder, args.out)
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
                      backend=args.backend or "processes", workers=args.workers,
                      chunk_size=args.chunk_size, progress=not args.quiet,
                      engine=args.engine or "auto")
    print(report)
    return 0
