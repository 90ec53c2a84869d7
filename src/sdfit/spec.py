"""Spec files: a Problem plus the model and data it applies to, and how to run it, as TOML.

The TOML form is a public contract (README, "Spec files"); every key is a setting of
:mod:`sdfit.settings` and is validated there::

    model = "aging_chain.mdl"                 # paths are relative to the spec file;
    data = "dataset:us-county-males"          # $VARS and ~ expand; dataset:NAME is fetched
    # data = { path = "theoph.csv", units = ["Subject"], time = "Time" }   (tidy data)
    [aliases]                                 # data variable = model name
    [initial]  time, stocks                   # stocks from the data (default: the model's)
    [targets]  times, variables, exclude, weights, likelihood, dispersion, loss, f_scale
    [inputs]   "model variable" = "data column"
    [parameters]
    "dec * loss rate" = { x0 = 0.05 }         # bounds, fixed, ridge, shared, scale,
                                              # pooled, transform, covariates
    [fit]      backend, scheduler, workers, chunk_size, drop_invalid, engine, method,
               starts, seed, max_steps
    [solver]   ftol, xtol, gtol, max_nfev
    [pooling]  method, samples, scale          (with parameters that say pooled = true)
    [uncertainty] method, replicates, kind, level
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import settings
from .exceptions import SpecError
from .names import did_you_mean
from .problem import Parameter, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = Path(__file__).parent / "examples"
TABLES = ("aliases", "initial", "targets", "inputs", "parameters", "fit", "solver", "pooling",
          "uncertainty")


@dataclass(frozen=True)
class DataSource:
    """Where the data are and, for tidy data, which columns hold the units and the time."""

    path: Path
    units: tuple[str, ...] | None = None
    time: str | None = None

    def read(self):
        from .data import read_panel

        return read_panel(self.path, units=self.units, time=self.time)

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Spec:
    """A problem with the model and data files it is posed on.

    Attributes
    ----------
    model : Path or None
    data : DataSource or None
        (``None`` when the spec leaves them to the command line.)
    problem : Problem
    fit : dict
        Execution settings of ``[fit]`` (validated), for :func:`sdfit.fit`.
    solver : dict
        Solver settings of ``[solver]`` (validated).
    uncertainty : dict
        ``[uncertainty]`` (method, replicates, kind, level), validated.
    source : str
        The spec file, for messages.
    """

    model: Path | None
    data: DataSource | None
    problem: Problem
    fit: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    uncertainty: dict = field(default_factory=dict)
    source: str = "<spec>"


def example_specs() -> list[str]:
    """Names of the spec files shipped with sdfit (``sdfit fit NAME``)."""
    return sorted(p.stem for p in EXAMPLES.glob("*.toml"))


def find_spec(name: str | Path) -> Path:
    """A spec path, or the bundled example of that name (``"us-counties"``)."""
    path = Path(name)
    if str(name).strip() and path.is_file():
        return path
    bundled = EXAMPLES / f"{name}.toml"
    if str(name).strip() and bundled.is_file():
        return bundled
    hint = did_you_mean(str(name), example_specs())
    raise SpecError(f"Spec file '{name}' does not exist and is not a bundled example "
                    f"({', '.join(example_specs())}).{hint}")


def read_spec_file(name: str | Path) -> tuple[dict, Path, str]:
    """The raw TOML table of a spec file (or bundled example), its folder and its path."""
    path = find_spec(name)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"Spec file '{path}' is not UTF-8 text.") from None
    try:
        return tomllib.loads(text), path.parent, str(path)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"Spec file '{path}' is not valid TOML: {error}.") from None


def load_spec(path: str | Path) -> Spec:
    """Read a TOML spec file (or a bundled example by name)."""
    raw, base, source = read_spec_file(path)
    return spec_from_dict(raw, base=base, source=source)


def spec_from_dict(raw: dict, base: Path = Path("."), source: str = "<spec>") -> Spec:
    """Build a Spec from the dictionary form of the TOML file."""
    where = f"Spec file '{source}'"
    settings.check_keys(raw, "", where)
    tables = {name: _table(raw, name, where) for name in TABLES}
    for section in ("initial", "targets", "fit", "solver", "pooling", "uncertainty"):
        settings.check_keys(tables[section], section, where)
    parameters = []
    for pattern, options in tables["parameters"].items():
        if isinstance(options, int | float) and not isinstance(options, bool):
            options = {"x0": options}
        if not isinstance(options, dict):
            raise SpecError(f"{where}: parameter '{pattern}' must be a table such as "
                            "{ x0 = 0.05 }.")
        settings.check_keys(options, "parameter", f"{where}, parameter '{pattern}'")
        parameters.append((pattern, options))
    initial, targets, fit = tables["initial"], tables["targets"], tables["fit"]
    try:
        problem = Problem(
            parameters=[Parameter(pattern, **options) for pattern, options in parameters],
            targets=targets.get("variables"),
            exclude=targets.get("exclude", ()),
            target_times=targets.get("times"),
            weights=_numbers_table(targets.get("weights", {}), "weights"),
            initial_time=initial.get("time"),
            initial_stocks=initial.get("stocks"),
            inputs=tables["inputs"],
            aliases=tables["aliases"],
            likelihood=targets.get("likelihood", "gaussian"),
            dispersion=targets.get("dispersion", "unit"),
            loss=targets.get("loss", "linear"),
            f_scale=targets.get("f_scale", 1.0),
            starts=fit.get("starts", 1),
            seed=fit.get("seed", 0),
            pooling=tables["pooling"].get("method", "foce"),
            pooling_samples=tables["pooling"].get("samples", 400),
            pooling_scale=tables["pooling"].get("scale", "auto"),
        )
        uncertainty = {key: settings.check("uncertainty", key, value, f"[uncertainty] {key}")
                       for key, value in tables["uncertainty"].items()}
        run = {key: settings.check("fit", key, value, f"[fit] {key}")
               for key, value in fit.items() if key not in ("starts", "seed")}
        solver = {key: settings.check("solver", key, value, f"[solver] {key}")
                  for key, value in tables["solver"].items()}
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None
    return Spec(
        model=resolve_path(raw["model"], base, where, "model") if "model" in raw else None,
        data=data_source(raw["data"], base, where) if "data" in raw else None,
        problem=problem, fit=run, solver=solver, uncertainty=uncertainty, source=source)


def data_source(value, base: Path, where: str = "Spec") -> DataSource:
    """``data = "file"`` or ``data = { path = ..., units = [...], time = ... }``."""
    if isinstance(value, dict):
        unknown = set(value) - {"path", "units", "time"}
        if unknown:
            key = sorted(unknown)[0]
            raise SpecError(f"{where}: unknown key '{key}' in data."
                            f"{did_you_mean(key, ['path', 'units', 'time'])}")
        if "path" not in value:
            raise SpecError(f"{where}: data needs a path: data = {{ path = \"file.csv\", "
                            "units = [\"id\"], time = \"time\" }.")
        if ("units" in value) != ("time" in value):
            raise SpecError(f"{where}: tidy data needs both 'units' (the unit id columns) and "
                            "'time' (the time column).")
        units = value.get("units")
        if units is not None:
            units = (units,) if isinstance(units, str) else tuple(units)
            if not units or not all(isinstance(u, str) and u for u in units):
                raise SpecError(f"{where}: data units must name the unit id columns; got "
                                f"{value.get('units')!r}.")
        time = value.get("time")
        if time is not None and not (isinstance(time, str) and time):
            raise SpecError(f"{where}: data time must name the time column; got {time!r}.")
        return DataSource(resolve_path(value["path"], base, where, "data"), units, time)
    return DataSource(resolve_path(value, base, where, "data"))


def resolve_path(value, base: Path, where: str = "Spec", key: str = "path") -> Path:
    """A path from a spec: ``dataset:NAME``, or ``$VARS``/``~`` expanded, relative to ``base``."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: '{key}' must be a file path; got {value!r}.")
    if value.startswith("dataset:"):
        from .datasets import fetch

        return fetch(value.removeprefix("dataset:"))
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else base / path


def _table(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{where}: '{key}' must be a table ([{key}]).")
    return value


def _numbers_table(table, what: str) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[targets] {what} must be a table such as {{ \"dec 9\" = 2.0 }}.")
    return table
