"""Spec files: a Problem plus the model and data it applies to, as TOML.

The TOML form is a public contract::

    model = "Aging_Chain.mdl"                 # paths are relative to the spec file;
    data = "Males by decade and county.csv"   # $VARS and ~ are expanded, and
                                              # "dataset:NAME" names a bundled dataset
    [aliases]                                 # optional: data variable = model name
    "dec *" = "population[dec *]"             # (an element of a subscripted variable)
    [initial]
    time = 2000                               # stocks start from the data at this time
    stocks = ["dec 1", "dec 2"]               # optional: default every stock in the data
    [targets]
    times = [2010]
    exclude = ["dec 1"]                       # in the data but not fitted
    variables = ["dec 2", "dec 3"]            # optional: default every data variable
    weights = { "dec 9" = 2.0 }               # optional: weight of squared errors
    [parameters]
    "dec * loss rate" = { x0 = 0.05 }         # also bounds = [lo, hi], fixed = value,
                                              # ridge = λ (penalty towards x0),
                                              # shared = true (one value for all units)
    [fit]                                     # optional defaults of `sdfit fit`
    backend = "processes"                     # scheduler, workers, chunk_size,
                                              # drop_invalid, engine
    [solver]                                  # optional: ftol, xtol, gtol, max_nfev
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import SpecError
from .names import did_you_mean
from .problem import Parameter, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEYS = {
    "": {"model", "data", "aliases", "initial", "targets", "parameters", "fit", "solver"},
    "initial": {"time", "stocks"},
    "targets": {"times", "exclude", "variables", "weights"},
    "parameter": {"x0", "bounds", "fixed", "ridge", "shared"},
    "fit": {"backend", "scheduler", "workers", "chunk_size", "drop_invalid", "engine"},
    "solver": {"ftol", "xtol", "gtol", "max_nfev"},
}

EXAMPLES = Path(__file__).parent / "examples"


@dataclass(frozen=True)
class Spec:
    """A problem with the model and data files it is posed on.

    Attributes
    ----------
    model, data : Path or None
        Resolved paths (``None`` when the spec leaves them to the command line).
    problem : Problem
    fit : dict
        Execution defaults (``backend``, ``workers``, ``chunk_size``, ``drop_invalid``,
        ``engine``).
    solver : dict
        Solver settings (``ftol``, ``xtol``, ``gtol``, ``max_nfev``).
    source : str
        The spec file, for messages.
    """

    model: Path | None
    data: Path | None
    problem: Problem
    fit: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    source: str = "<spec>"


def example_specs() -> list[str]:
    """Names of the spec files shipped with sdfit (``sdfit fit NAME``)."""
    return sorted(p.stem for p in EXAMPLES.glob("*.toml"))


def find_spec(name: str | Path) -> Path:
    """A spec path, or the bundled example of that name (``"us-counties"``)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = EXAMPLES / f"{name}.toml"
    if bundled.is_file():
        return bundled
    hint = did_you_mean(str(name), example_specs())
    raise SpecError(f"Spec file '{name}' does not exist and is not a bundled example "
                    f"({', '.join(example_specs())}).{hint}")


def load_spec(path: str | Path) -> Spec:
    """Read a TOML spec file (or a bundled example by name)."""
    path = find_spec(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"Spec file '{path}' is not valid TOML: {error}.") from None
    return spec_from_dict(raw, base=path.parent, source=str(path))


def spec_from_dict(raw: dict, base: Path = Path("."), source: str = "<spec>") -> Spec:
    """Build a Spec from the dictionary form of the TOML file."""
    where = f"Spec file '{source}'"
    _check_keys(raw, "", where)
    for section in ("initial", "targets", "fit", "solver"):
        _check_keys(_table(raw, section, where), section, where)
    initial, targets = _table(raw, "initial", where), _table(raw, "targets", where)
    parameters = []
    for pattern, settings in _table(raw, "parameters", where).items():
        if isinstance(settings, int | float):
            settings = {"x0": settings}
        if not isinstance(settings, dict):
            raise SpecError(f"{where}: parameter '{pattern}' must be a table such as "
                            "{ x0 = 0.05 }.")
        _check_keys(settings, "parameter", f"{where}, parameter '{pattern}'")
        parameters.append(_parameter(pattern, settings, where))
    if "times" not in targets:
        raise SpecError(f"{where}: [targets] needs times, e.g. times = [2010].")
    try:
        problem = Problem(
            parameters=parameters,
            target_times=_numbers(targets["times"], f"{where}: [targets] times"),
            initial_time=initial.get("time"),
            initial_stocks=initial.get("stocks"),
            targets=targets.get("variables"),
            exclude=targets.get("exclude", ()),
            weights=targets.get("weights", {}),
            aliases=_aliases(_table(raw, "aliases", where), where),
        )
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None
    return Spec(
        model=resolve_path(raw["model"], base) if "model" in raw else None,
        data=resolve_path(raw["data"], base) if "data" in raw else None,
        problem=problem,
        fit=_table(raw, "fit", where),
        solver=_table(raw, "solver", where),
        source=source,
    )


def resolve_path(value: str, base: Path) -> Path:
    """A path from a spec: ``dataset:NAME``, or ``$VARS``/``~`` expanded, relative to ``base``."""
    if value.startswith("dataset:"):
        from .datasets import fetch

        return fetch(value.removeprefix("dataset:"))
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else base / path


def _parameter(pattern: str, settings: dict, where: str) -> Parameter:
    bounds = settings.get("bounds", (float("-inf"), float("inf")))
    if not (isinstance(bounds, list | tuple) and len(bounds) == 2):
        raise SpecError(f"{where}: the bounds of parameter '{pattern}' must be [lower, upper].")
    shared = settings.get("shared", False)
    if not isinstance(shared, bool):
        raise SpecError(f"{where}: 'shared' of parameter '{pattern}' must be true or false; "
                        f"got {shared!r}.")
    ridge = settings.get("ridge", 0.0)
    if isinstance(ridge, bool) or not isinstance(ridge, int | float):
        raise SpecError(f"{where}: the ridge of parameter '{pattern}' must be a number; got "
                        f"{ridge!r}.")
    return Parameter(pattern, x0=settings.get("x0"),
                     bounds=tuple(_numbers(bounds, f"{where}: bounds of '{pattern}'")),
                     fixed=settings.get("fixed"),
                     ridge=ridge,
                     shared=shared)


def _aliases(table: dict, where: str) -> dict[str, str]:
    """[aliases]: data variable (glob) = model variable or element (glob)."""
    for pattern, target in table.items():
        if not isinstance(target, str):
            raise SpecError(f"{where}: the alias of '{pattern}' must be a model name such as "
                            f"\"population[dec *]\"; got {target!r}.")
    return dict(table)


def _table(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{where}: '{key}' must be a table ([{key}]).")
    return value


def _check_keys(table: dict, section: str, where: str) -> None:
    allowed = KEYS[section]
    for key in table:
        if key not in allowed:
            place = f" in [{section}]" if section and section != "parameter" else ""
            raise SpecError(f"{where}: unknown key '{key}'{place}.{did_you_mean(key, allowed)}")


def _numbers(values, what: str) -> list[float]:
    values = values if isinstance(values, list | tuple) else [values]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise SpecError(f"{what} must be numbers; got {values!r}.")
    return [float(v) for v in values]
