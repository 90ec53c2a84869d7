"""``sdfit fit``: flags replace or extend a spec's entries, then one call of sdfit.fit, then
the summary, figures and report."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

from ..exceptions import SpecError
from .drawer import Drawer


def add_parser(commands) -> None:
    fit = commands.add_parser(
        "fit", help="fit a model to every unit of a panel",
        description="Fit a model to every unit of a panel as a TOML spec says (flags replace "
                    "spec entries; without a spec, flags say it all).")
    fit.add_argument("spec", nargs="?", help="spec file, or a bundled example: us-counties, "
                     "us-counties-recipe, us-counties-subscripted, theoph")
    fit.add_argument("--out", required=True, help="results folder")
    problem_flags(fit)
    execution_flags(fit)
    fit.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    fit.add_argument("--map-parameter", help="parameter drawn on the county map")
    fit.add_argument("--report", action="store_true",
                     help="also write report.html (as `sdfit report DIR` does)")
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    fit.set_defaults(run=run)


def problem_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("problem (replace or extend the spec)")
    group.add_argument("--model", help="Vensim .mdl or XMILE model file")
    group.add_argument("--data", help="data file: wide census-style or long CSV, Parquet, or "
                       "tidy with --units and --time")
    group.add_argument("--units", nargs="+", metavar="COLUMN",
                       help="tidy data: the unit id column(s)")
    group.add_argument("--time", metavar="COLUMN", help="tidy data: the time column")
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
    group.add_argument("--pooled", action="append", default=[], metavar="NAME",
                       help="draw this parameter per unit from an estimated population "
                            "(partial pooling); repeatable")
    group.add_argument("--pooling", help="foce (default) or importance")
    group.add_argument("--uncertainty", help="intervals besides Gauss-Newton's: profile or "
                       "bootstrap")
    group.add_argument("--replicates", metavar="N", help="bootstrap replicates per unit "
                       "(default 200)")
    group.add_argument("--input", action="append", default=[], metavar="NAME=COLUMN",
                       help="model variable given per unit by a data column; repeatable")
    group.add_argument("--initial-time", metavar="T",
                       help="start the stocks from the data at this time")
    group.add_argument("--target-times", nargs="+", metavar="T",
                       help="only compare observations at these times")
    group.add_argument("--targets", nargs="+", metavar="NAME", help="variables compared")
    group.add_argument("--exclude", action="append", default=[], metavar="NAME",
                       help="data variable not compared; repeatable")
    group.add_argument("--likelihood", help="gaussian (default), lognormal, poisson or "
                       "negative-binomial")
    group.add_argument("--loss", help="robust loss: linear (default), soft_l1, huber, cauchy")
    group.add_argument("--drop-invalid", action="store_true", default=None,
                       help="skip units with invalid needed values")


def execution_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--backend", help="auto (default: serial when the model runs as a "
                       "compiled kernel, else processes), serial, processes or dask")
    group.add_argument("--workers", metavar="N",
                       help="worker processes of a local pool or cluster (default: all cores)")
    group.add_argument("--chunk-size", metavar="N", help="units per task")
    group.add_argument("--engine", help="auto (default: batched, else PySD's runtime with a "
                       "warning), batched, or pysd (PySD's runtime, one unit at a time)")
    group.add_argument("--method", help="integration method: euler or rk4 (default: the "
                       "model's own)")
    group.add_argument("--starts", metavar="N", help="starting points per unit (default 1)")
    group.add_argument("--seed", metavar="S", help="seed of the starts and random functions")
    group.add_argument("--max-steps", metavar="N",
                       help="largest unit-steps of one simulation (default 2e10)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://HOST:PORT) for --backend dask; "
                            "default a local cluster")
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted run saved in --out (same model, data, "
                            "problem and chunking), skipping the chunks it finished")


# -- running ------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    # forked early, before this process starts a thread: the copy gets matplotlib and the
    # county shapes ready while the fit runs here.  Forked after pandas, which both need:
    # imported once, not once in each (a sixth of a second of CPU on a busy machine)
    import pandas  # noqa: F401

    drawer = None if args.no_figures else Drawer(_figures, _prepare_figures)
    try:
        return _run(args, drawer)
    finally:
        if drawer is not None:
            drawer.close()


def _run(args: argparse.Namespace, drawer: Drawer | None) -> int:
    from ..calibrate import fit
    from ..exceptions import (
        ConvergenceWarning,
        FallbackWarning,
        IdentifiabilityWarning,
    )
    from ..model import open_model
    from ..progress import status
    from ..results import RESULT_FILES
    from ..rundir import ResultsFolder
    from ..solvers import default_solver
    from ..spec import read_spec_file, spec_from_dict

    started = time.perf_counter()
    out = Path(ResultsFolder(args.out).name)  # refuses an unusable folder before any work
    raw, base, source = ({}, Path.cwd(), "<command line>") if args.spec is None \
        else read_spec_file(args.spec)
    apply_flags(raw, args)
    spec = spec_from_dict(raw, base=base, source=source)
    if spec.model is None or spec.data is None:
        raise SpecError("Say which model and data to fit: give a spec file or --model and --data.")
    options = spec.fit
    if args.map_parameter and not any(
            args.map_parameter == p.pattern for p in spec.problem.parameters):
        _check_map_parameter(args.map_parameter, spec)
    verbose = not args.quiet
    status(f"reading {spec.data}", verbose)
    panel = spec.data.read()
    status(f"compiling {spec.model.name}", verbose)
    with _said(FallbackWarning):
        model = open_model(spec.model, options.get("engine", "auto"))
    scheduler = options.get("scheduler")
    engine = "pysd" if type(model).__name__ == "PysdModel" else "batched"
    solver = default_solver(engine, spec.solver,
                            spec.problem.has_shared or spec.problem.has_pooled)
    from ..files import sha256

    with _said(ConvergenceWarning), warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)  # the summary says it
        result = fit(model, panel, spec.problem,
                     backend=options.get("backend") or "auto",
                     workers=options.get("workers"), scheduler=scheduler,
                     chunk_size=options.get("chunk_size"), solver=solver,
                     drop_invalid=options.get("drop_invalid", False), progress=verbose,
                     method=options.get("method"), max_steps=options.get("max_steps"),
                     uncertainty=spec.uncertainty.get("method", "gauss-newton"),
                     replicates=spec.uncertainty.get("replicates", 200),
                     bootstrap=spec.uncertainty.get("kind", "parametric"),
                     level=spec.uncertainty.get("level", 0.95),
                     out=out, resume=args.resume,
                     also_write=lambda result, folder: _looks(result, folder, args, drawer),
                     record={"spec": source, "spec_dict": raw, "command": sys.argv[:],
                             "fingerprints": {"spec": sha256(source)}})
    written = [out / name for name in RESULT_FILES if (out / name).is_file()]
    if not args.no_figures:
        written += sorted((out / "figures").glob("*.png"))
    if args.report:
        written.append(out / "report.html")
    print(result.summary())
    if result.run.resumed_chunks:
        print(f"Resumed an interrupted run: {result.run.resumed_chunks} of "
              f"{result.run.chunks} chunks were already done.")
    print(f"Wrote {', '.join(str(p.relative_to(out)) for p in written)} to {out} "
          f"({time.perf_counter() - started:.1f} s in all).")
    return 0


def apply_flags(raw: dict, args: argparse.Namespace) -> None:
    """Let command-line flags replace or extend the spec's entries (validated with the
    spec, so that a flag and a spec key mean the same thing)."""
    if args.model:
        raw["model"] = os.path.abspath(args.model)
    if args.data or args.units or args.time:
        data = raw.get("data")
        path = os.path.abspath(args.data) if args.data else (
            data.get("path") if isinstance(data, dict) else data)
        if path is None:
            raise SpecError("--units and --time describe the data file: give --data too.")
        table = {"path": path}
        units = args.units or (data.get("units") if isinstance(data, dict) else None)
        time_ = args.time or (data.get("time") if isinstance(data, dict) else None)
        if units is not None:
            table["units"] = units
        if time_ is not None:
            table["time"] = time_
        raw["data"] = table if len(table) > 1 else path
    if args.initial_time is not None:
        raw.setdefault("initial", {})["time"] = _number(args.initial_time, "--initial-time")
    targets = raw.setdefault("targets", {})
    if args.target_times:
        targets["times"] = [_number(t, "--target-times") for t in args.target_times]
    if args.targets:
        targets["variables"] = args.targets
    if args.exclude:
        targets["exclude"] = list(targets.get("exclude", [])) + args.exclude
    for key in ("likelihood", "loss"):
        if getattr(args, key):
            targets[key] = getattr(args, key)
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
    for name in args.pooled:
        params.setdefault(name.strip(), {})["pooled"] = True
    if args.pooling:
        raw.setdefault("pooling", {})["method"] = args.pooling
    if args.uncertainty:
        raw.setdefault("uncertainty", {})["method"] = args.uncertainty
    if args.replicates is not None:
        raw.setdefault("uncertainty", {})["replicates"] = _number(args.replicates,
                                                                  "--replicates", integer=True)
    for entry in args.input:
        name, _, column = entry.partition("=")
        if not column:
            raise SpecError(f"--input '{entry}' must be NAME=COLUMN.")
        raw.setdefault("inputs", {})[name.strip()] = column.strip()
    fit = raw.setdefault("fit", {})
    for flag, key, kind in (("backend", "backend", str), ("engine", "engine", str),
                            ("method", "method", str), ("scheduler", "scheduler", str),
                            ("workers", "workers", int), ("chunk_size", "chunk_size", int),
                            ("starts", "starts", int), ("seed", "seed", int),
                            ("max_steps", "max_steps", float)):
        value = getattr(args, flag)
        if value is not None:
            fit[key] = value if kind is str else _number(value, "--" + flag.replace("_", "-"),
                                                          integer=kind is int)
    if args.drop_invalid:
        fit["drop_invalid"] = True
    for key in ("targets", "fit"):
        if not raw[key]:
            raw.pop(key)


def _number(text: str, entry: str, integer: bool = False) -> float | int:
    try:
        number = float(text)
    except ValueError:
        raise SpecError(f"'{text}' in '{entry}' is not a number.") from None
    if integer and number.is_integer():
        return int(number)
    return number


def _check_map_parameter(name: str, spec) -> None:
    """Refuse a misspelt --map-parameter before fitting (matched against the model's
    constants, as the parameters will be)."""
    from ..model import open_model
    from ..names import did_you_mean, element_key

    model = open_model(spec.model, spec.fit.get("engine", "auto"))
    constants = [e for c in model.constants for e in model.elements(c)]
    if element_key(name) not in map(element_key, constants):
        raise SpecError(f"--map-parameter '{name}' is not a constant of model "
                        f"'{model.name}'.{did_you_mean(name, constants)}")


@contextlib.contextmanager
def _said(category):
    """Warnings of ``category`` printed as ``sdfit: warning: ...`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", category)
        yield
    for warning in caught:
        if issubclass(warning.category, category):
            print(f"sdfit: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)


def _looks(result, folder: Path, args, drawer: Drawer | None = None) -> list[Path]:
    """Figures and the report, written beside the tables before the folder is committed."""
    from ..exceptions import FigureWarning

    written = []
    with _said(FigureWarning):
        if not args.no_figures:
            draw = drawer.draw if drawer is not None else _figures
            written += draw(result, folder, args.map_parameter)
        if args.report:
            from ..report import write_report

            written.append(write_report(folder))
    return written


def _prepare_figures() -> None:
    """What the figures need, made ready ahead: matplotlib, the figure modules, the county
    shapes (from the user cache)."""
    from ..datasets import county_shapes
    from ..figures import load_county_shapes, maps, overview  # noqa: F401  (matplotlib)

    shapes = county_shapes()
    if shapes is not None:
        load_county_shapes(shapes)


def _figures(result, out: Path, map_parameter: str | None) -> list[Path]:
    from ..datasets import county_shapes
    from ..figures import load_county_shapes, write_figures
    from ..figures.record import write_record
    from ..names import did_you_mean

    if map_parameter and map_parameter not in result.parameters:
        raise SpecError(f"--map-parameter '{map_parameter}' is not a fitted parameter."
                        f"{did_you_mean(map_parameter, result.parameters)}")
    shapes = county_shapes() if "county" in map(str.lower, result.unit_columns) else None
    written = write_figures(result, out / "figures",
                            map_parameter=map_parameter, shapefile=shapes)
    # what they were drawn from, so that the report embeds them instead of drawing them
    outlines = load_county_shapes(shapes).digest if any(
        p.name == "map.png" for p in written) else None
    return written + [write_record(out, written, [map_parameter] if map_parameter
                                   else result.parameters, outlines)]
