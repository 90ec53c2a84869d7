"""Every setting a user can give — spec key, command-line flag or API argument — in one table,
validated once, at the boundary, with one message template (scikit-learn's spirit)::

    The 'chunk_size' setting must be an integer >= 1; got -3 (from --chunk-size).

:data:`SETTINGS` lists them by section; :func:`check` turns a raw value (from TOML, the
command line or Python) into the typed value or raises :class:`~sdfit.SpecError`.  The spec
reader, the CLI and :func:`sdfit.fit` all go through it, so a value means the same thing
wherever it comes from (``drop_invalid = "false"`` is refused, not read as true).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from .exceptions import SpecError
from .names import did_you_mean


@dataclass(frozen=True)
class Setting:
    """One setting: its section, kind, allowed range or choices, default and meaning.

    ``kind`` is one of ``bool``, ``int``, ``float``, ``str``, ``choice``, ``floats`` (a
    number or list of numbers), ``names`` (a string or list of strings), ``table``
    (a TOML table), ``path``.
    """

    key: str
    section: str
    kind: str
    help: str
    default: object = None
    low: float | None = None  # inclusive unless low_open
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    flag: str | None = None  # the command-line flag, when there is one

    def describe(self) -> str:
        """What a valid value is, for messages: "an integer >= 1", "one of 'a', 'b'"."""
        base = {"bool": "true or false", "int": "an integer", "float": "a number",
                "str": "a string", "path": "a path", "table": "a table",
                "floats": "a number or a list of numbers",
                "names": "a name or a list of names"}.get(self.kind, "")
        if self.kind == "choice":
            return "one of " + ", ".join(f"'{c}'" for c in self.choices)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return base + (" " + " and ".join(bounds) if bounds else "")


def _s(section: str, key: str, kind: str, help: str, **options) -> Setting:
    return Setting(key, section, kind, help, **options)


#: Every setting, by section ("" is the top level of a spec file; "parameter" the options of
#: one ``[parameters]`` entry).  README's spec reference is written from this table.
SETTINGS: dict[str, dict[str, Setting]] = {}
for _setting in [
    _s("", "model", "path", "Vensim .mdl or XMILE model file", flag="--model"),
    _s("", "data", "path", "data file, or a table {path, units, time} for tidy data",
       flag="--data"),
    _s("", "aliases", "table", "data variable = model variable or element"),
    _s("", "initial", "table", "start the stocks from the data"),
    _s("", "targets", "table", "what is compared with the data"),
    _s("", "parameters", "table", "what is fitted"),
    _s("", "inputs", "table", "model variable = data column, per unit",
       flag="--input NAME=COLUMN"),
    _s("", "fit", "table", "how the fit runs"),
    _s("", "solver", "table", "solver tolerances"),
    _s("", "pooling", "table", "how pooled parameters are estimated"),
    _s("", "uncertainty", "table", "intervals beyond Gauss-Newton's"),
    _s("initial", "time", "float", "stocks start from the data at this time",
       flag="--initial-time"),
    _s("initial", "stocks", "names", "stocks taken from the data (default: all it has)"),
    _s("targets", "times", "floats", "only compare observations at these times",
       flag="--target-times"),
    _s("targets", "variables", "names", "variables compared (default: every data variable "
       "the model has)", flag="--targets"),
    _s("targets", "exclude", "names", "data variables not compared", flag="--exclude"),
    _s("targets", "weights", "table", "weight of each target's squared errors"),
    _s("targets", "likelihood", "choice", "distribution of the observations",
       default="gaussian", choices=("gaussian", "lognormal", "poisson", "negative-binomial"),
       flag="--likelihood"),
    _s("targets", "dispersion", "choice", "negative binomial: one dispersion per unit or per "
       "variable", default="unit", choices=("unit", "variable")),
    _s("targets", "loss", "choice", "robust loss on the residuals (SciPy's names)",
       default="linear", choices=("linear", "soft_l1", "huber", "cauchy"), flag="--loss"),
    _s("targets", "f_scale", "float", "residual scale of a robust loss", default=1.0, low=0,
       low_open=True),
    _s("parameter", "x0", "float", "starting value (default: the model's own value)",
       flag="--param NAME=X0"),
    _s("parameter", "bounds", "floats", "[lower, upper]", flag="--bounds NAME=LO,HI"),
    _s("parameter", "fixed", "float", "hold the constant at this value",
       flag="--fixed NAME=VALUE"),
    _s("parameter", "ridge", "float", "penalty weight towards x0", default=0.0, low=0,
       flag="--ridge NAME=LAMBDA"),
    _s("parameter", "shared", "bool", "one value for all units", default=False,
       flag="--shared NAME"),
    _s("parameter", "scale", "float", "spread of the starts around x0 when a bound is "
       "infinite", low=0, low_open=True),
    _s("parameter", "pooled", "bool", "drawn per unit from a population estimated with it",
       default=False, flag="--pooled NAME"),
    _s("parameter", "transform", "choice", "scale on which the population is normal",
       default="none", choices=("none", "log", "logit")),
    _s("parameter", "covariates", "names", "data or unit id columns the population mean "
       "depends on (text: one level each)"),
    _s("pooling", "method", "choice", "FOCE (Laplace), or refined by importance sampling",
       default="foce", choices=("foce", "importance"), flag="--pooling"),
    _s("pooling", "samples", "int", "importance draws per unit", default=400, low=10),
    _s("pooling", "scale", "choice", "residual variance: estimated, or 1 for counts' "
       "deviance (auto: by the likelihood)", default="auto",
       choices=("auto", "estimate", "fixed")),
    _s("uncertainty", "method", "choice", "intervals besides Gauss-Newton's",
       default="gauss-newton", choices=("gauss-newton", "profile", "bootstrap"),
       flag="--uncertainty"),
    _s("uncertainty", "replicates", "int", "bootstrap replicates per unit", default=200,
       low=10, flag="--replicates"),
    _s("uncertainty", "kind", "choice", "bootstrap: parametric or residual draws",
       default="parametric", choices=("parametric", "residual")),
    _s("uncertainty", "level", "float", "coverage of the intervals", default=0.95, low=0,
       low_open=True, high=0.999),
    _s("fit", "backend", "str", "auto, serial, processes, dask or a registered backend",
       default="auto",
       flag="--backend"),
    _s("fit", "scheduler", "str", "address of a running Dask scheduler", flag="--scheduler"),
    _s("fit", "workers", "int", "worker processes", low=1, flag="--workers"),
    _s("fit", "chunk_size", "int", "units per task", low=1, flag="--chunk-size"),
    _s("fit", "drop_invalid", "bool", "skip units with invalid needed data", default=False,
       flag="--drop-invalid"),
    _s("fit", "engine", "choice", "simulation engine", default="auto",
       choices=("auto", "batched", "pysd"), flag="--engine"),
    _s("fit", "method", "choice", "integration method (default: the model's own)",
       choices=("euler", "rk4"), flag="--method"),
    _s("fit", "starts", "int", "starting points per unit", default=1, low=1, flag="--starts"),
    _s("fit", "seed", "int", "seed of the starts and of random functions", default=0, low=0,
       flag="--seed"),
    _s("fit", "max_steps", "float", "largest (Euler steps x units) of a run before sdfit "
       "refuses", default=2e10, low=1, flag="--max-steps"),
    _s("solver", "ftol", "float", "relative change of the objective at convergence",
       default=1e-10, low=0, low_open=True, high=1),
    _s("solver", "xtol", "float", "relative change of the parameters at convergence",
       default=1e-10, low=0, low_open=True, high=1),
    _s("solver", "gtol", "float", "cosine between residuals and Jacobian at convergence",
       default=1e-10, low=0, low_open=True, high=1),
    _s("solver", "max_nfev", "int", "model evaluations per unit (default 100 x (P + 1))",
       low=1),
]:
    SETTINGS.setdefault(_setting.section, {})[_setting.key] = _setting


#: Sections whose keys a message names with their table (``'time' of [initial]``).
TABLED = ("initial", "targets", "pooling", "uncertainty")


def setting(section: str, key: str) -> Setting:
    return SETTINGS[section][key]


def check_keys(table: dict, section: str, where: str) -> None:
    """Refuse keys of ``table`` that ``section`` does not have, with the closest valid one."""
    allowed = SETTINGS[section]
    for key in table:
        if key not in allowed:
            place = f" in [{section}]" if section and section != "parameter" else ""
            raise SpecError(f"{where}: unknown key '{key}'{place}.{did_you_mean(key, allowed)}")


def check(section: str, key: str, value, source: str = ""):
    """``value`` validated and typed as setting ``section.key`` says; ``None`` passes
    through (not given).  ``source`` says where the value came from, for the message."""
    if value is None:
        return None
    spec = SETTINGS[section][key]
    try:
        return _CONVERTERS[spec.kind](spec, value)
    except (TypeError, ValueError):
        origin = f" (from {source})" if source else ""
        got = f"{value!r}" + (" (a string)" if isinstance(value, str) and spec.kind not in (
            "str", "choice", "names", "path") else "")
        of = f" of [{section}]" if section in TABLED else ""
        raise SpecError(f"The '{key}' setting{of} must be {spec.describe()}; got {got}"
                        f"{origin}.{_hint(spec, value)}") from None


def _hint(spec: Setting, value) -> str:
    return did_you_mean(str(value), spec.choices) if spec.kind == "choice" else ""


def _in_range(spec: Setting, number: float) -> float:
    if math.isnan(number):
        raise ValueError
    if spec.low is not None and (number < spec.low or (spec.low_open and number == spec.low)):
        raise ValueError
    if spec.high is not None and number > spec.high:
        raise ValueError
    return number


def _bool(spec: Setting, value) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError


def _int(spec: Setting, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError
    return int(_in_range(spec, int(value)))


def _float(spec: Setting, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError
    number = float(value)
    if not math.isfinite(number) and spec.key not in ("bounds",):
        raise ValueError
    return _in_range(spec, number)


def _str(spec: Setting, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


def _choice(spec: Setting, value) -> str:
    if not isinstance(value, str) or value not in spec.choices:
        raise ValueError
    return value


def _floats(spec: Setting, value) -> tuple[float, ...]:
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(float(v)):
            raise ValueError
        out.append(float(v))
    if spec.key != "bounds" and not all(map(math.isfinite, out)):
        raise ValueError
    return tuple(out)


def _names(spec: Setting, value) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, Sequence) or not all(isinstance(v, str) and v.strip()
                                                    for v in values):
        raise ValueError
    return tuple(values)


def _table(spec: Setting, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError
    return value


def _path(spec: Setting, value) -> str:
    if isinstance(value, dict) and spec.key == "data":
        return value
    import os

    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise ValueError
    return value


_CONVERTERS = {"bool": _bool, "int": _int, "float": _float, "str": _str, "choice": _choice,
               "floats": _floats, "names": _names, "table": _table, "path": _path}


def markdown() -> str:
    """The settings table as README shows it (``python -m sdfit.settings``): one row per
    key of a spec file, with its flag, what it takes and its default."""
    titles = {"": "top level", "parameter": "`[parameters]` entry"}
    lines = ["| key | flag | takes | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for section, table in SETTINGS.items():
        where = titles.get(section, f"`[{section}]`")
        for setting in table.values():
            if setting.kind == "table" and setting.key not in ("aliases", "inputs"):
                continue
            value = setting.default
            default = "" if value is None else f"`{str(value).lower()}`" if isinstance(
                value, bool) else f"`{value}`"
            flag = f"`{setting.flag}`" if setting.flag else ""
            lines.append(f"| {where} `{setting.key}` | {flag} | {setting.describe()} | "
                         f"{default} | {setting.help} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown())
