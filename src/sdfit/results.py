"""FitResult: the per-unit table of a fit, its targets, the record of how it ran — and how
all of it is written to a folder and read back."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .data.panel import code_dtype
from .exceptions import DataError
from .files import atomic_write, read_csv, write_csv, write_parquet
from .solvers import Status

OUTCOME_COLUMNS = ["sse", "success", "status", "message", "nfev"]
RESULT_FILES = ("params.csv", "targets.csv", "params.parquet", "population.csv", "dropped.csv",
                "run.json")


@dataclass(frozen=True)
class RunRecord:
    """How a fit was run: written as ``run.json`` (strict JSON: a non-finite number is the
    string ``"Infinity"``, ``"-Infinity"`` or ``"NaN"``)."""

    model: str
    data: str
    problem: dict  # Resolved.describe()
    request: dict = field(default_factory=dict)  # the Problem as given (to pose it again)
    data_layout: dict = field(default_factory=dict)  # read_panel(data, **data_layout)
    solver: dict = field(default_factory=dict)
    engine: str = "batched"
    backend: str = "serial"
    workers: int = 1
    chunks: int = 1
    resumed_chunks: int = 0
    wall_time: float = math.nan
    compile_time: float = 0.0  # C compilation of kernels (0 when the caches had them)
    model_load: dict = field(default_factory=dict)  # {seconds, cached}: translate + compile
    spec: str | None = None
    spec_dict: dict | None = None
    command: list[str] | None = None
    fingerprints: dict[str, str | None] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    started: str = ""  # UTC, ISO 8601
    identifiability: object = None  # diagnostics.Identifiability
    dropped: int = 0
    intervals: str = ""  # which method gave the interval columns, when not Gauss-Newton

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        if self.identifiability is not None and not isinstance(self.identifiability, dict):
            data["identifiability"] = self.identifiability.to_dict()
        return json.dumps(_strict(data), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = _restore(json.loads(text))
        known = {f.name for f in dataclasses.fields(cls)}
        identifiability = data.get("identifiability")
        if isinstance(identifiability, dict):
            from .diagnostics import Identifiability

            data["identifiability"] = Identifiability(**identifiability)
        return cls(**{k: v for k, v in data.items() if k in known})


def versions() -> dict[str, str]:
    """Versions of sdfit and of what its numbers depend on."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    """Read once per process: the packages' metadata take ~8 ms to parse, a tenth of a
    census fit, and cannot change under a running interpreter."""
    from importlib.metadata import PackageNotFoundError, version

    from ._version import __version__

    out = {"sdfit": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "pandas", "pysd"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class FitResult:
    """Outcome of :func:`sdfit.fit`.

    Attributes
    ----------
    table : DataFrame
        One row per unit: the unit id columns, one column per fitted parameter (named as in
        the model), then ``sse, success, status, message, nfev`` (``message`` a categorical
        of every status's message), then ``n_obs``,
        ``objective``, ``nll``, ``aic``, ``bic`` (``starts_agree`` with several starts,
        ``dispersion...`` for the negative binomial), then the diagnostics of
        :mod:`sdfit.diagnostics`.
    targets : DataFrame
        Every observation compared: unit ids, ``time``, ``variable`` (a categorical of the
        target names), ``observed``, ``fitted``.
    parameters : list of str
        The fitted parameters, in table order.
    dropped : DataFrame
        Units skipped because their data were invalid, with the reason.
    run : RunRecord
        How the fit was run.
    population : DataFrame or None
        With pooled parameters: the population (mean or intercept and covariate
        coefficients, SD, covariances, residual variance, with standard errors), as
        ``population.csv``.
    """

    table: pd.DataFrame
    targets: pd.DataFrame
    parameters: list[str]
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    run: RunRecord | None = None
    #: the estimated population of a pooled fit (one row per estimate), else None
    population: pd.DataFrame | None = None
    #: what the fit ran on (engine, resolved problem, unit data, panel), kept in memory only,
    #: so that unit stories need not pose the problem again
    context: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def unit_columns(self) -> list[str]:
        """The unit id columns: those before the first parameter column."""
        return list(self.table.columns[:self.table.columns.get_loc(self.parameters[0])])

    @property
    def n_failed(self) -> int:
        return int((~self.table["success"]).sum())

    @property
    def identifiability(self):
        return None if self.run is None else self.run.identifiability

    def params(self) -> pd.DataFrame:
        """Fitted parameters indexed by unit."""
        # the columns first: set_index on the whole table would copy all of it
        return self.table[self.unit_columns + self.parameters].set_index(self.unit_columns)

    def __repr__(self) -> str:
        n = len(self.table)
        model = Path(self.run.model).stem if self.run else "?"
        return (f"FitResult({model}: {n} units, {n - self.n_failed} succeeded, "
                f"{self.n_failed} failed; {len(self.parameters)} parameters: "
                f"{', '.join(self.parameters[:4])}{', ...' if len(self.parameters) > 4 else ''})")

    def stories(self, units=None) -> dict:
        """Units' trajectories over the whole run beside their observations (see
        :func:`sdfit.stories.unit_stories`): ids as in the table, or row numbers."""
        from .stories import unit_stories

        return unit_stories(self, units)

    def plot(self, unit):
        """A figure of one unit (its id, or its row number): every target variable over the
        whole run with its observations, fitted and not, and the parameters with their
        intervals.  Returns a matplotlib Figure (shown inline in a notebook)."""
        from .figures import unit_figure

        [story] = self.stories([unit]).values()
        return unit_figure(story)

    def _repr_html_(self) -> str:
        """In a notebook: the summary, then the first rows of the table."""
        import html

        head = self.table.head(10).to_html(max_cols=16, float_format=lambda v: f"{v:.6g}")
        return (f"<p><b>{html.escape(repr(self))}</b></p><pre>{html.escape(self.summary())}"
                f"</pre>{head}")

    def report(self, unit=None) -> str:
        """A text report in lmfit's spirit: the fit statistics and, for one unit (its id, or
        its row number), every parameter with its standard error and interval; without a
        unit, each parameter's distribution over the units."""
        lines = ["[[Fit]]", *("    " + line for line in self.summary().splitlines())]
        table = self.table
        if unit is None:
            lines.append("[[Parameters]] (over units: median [2.5 %, 97.5 %])")
            for p in self.parameters:
                q = table.loc[table["success"], p].quantile([0.5, 0.025, 0.975]).to_numpy()
                lines.append(f"    {p + ':':<24} {q[0]:<12.6g} [{q[1]:.6g}, {q[2]:.6g}]")
            return "\n".join(lines)
        row = self._row(unit)
        ids = ", ".join(f"{c}={row[c]}" for c in self.unit_columns)
        lines += [f"[[Unit {ids}]]",
                  f"    status: {row['message']} ({'success' if row['success'] else 'FAILED'})",
                  f"    observations: {row['n_obs']}, model evaluations: {row['nfev']}",
                  f"    sse: {row['sse']:.6g}, nll: {row['nll']:.6g}, aic: {row['aic']:.6g}, "
                  f"bic: {row['bic']:.6g}", "[[Variables]]"]
        for p in self.parameters:
            stderr, low, high = (row.get(f"{p}_{k}", np.nan) for k in ("stderr", "ci_low",
                                                                        "ci_high"))
            flag = "" if row.get(f"{p}_identifiable", True) else "  (not identifiable)"
            lines.append(f"    {p + ':':<24} {row[p]:<12.6g} +/- {stderr:<10.4g} "
                         f"[{low:.6g}, {high:.6g}]{flag}")
        return "\n".join(lines)

    def _row(self, unit) -> pd.Series:
        """A unit's row, by id (a value or tuple of the unit columns) or by row number."""
        ids = self.table[self.unit_columns]
        key = unit if isinstance(unit, tuple) else (unit,)
        match = (ids == pd.Series(key, index=self.unit_columns[:len(key)])).all(axis=1) \
            if len(key) == len(self.unit_columns) else pd.Series(False, index=ids.index)
        if match.any():
            return self.table[match.to_numpy()].iloc[0]
        if isinstance(unit, int | np.integer) and 0 <= unit < len(self.table):
            return self.table.iloc[int(unit)]
        from .names import did_you_mean

        examples = [", ".join(map(str, k)) if isinstance(k, tuple) else str(k)
                    for k in ids.head(1000).itertuples(index=False, name=None)]
        raise DataError(f"No unit {unit!r} in this result (unit columns: "
                        f"{', '.join(self.unit_columns)}).{did_you_mean(str(unit), examples)}")

    def summary(self) -> str:
        """A few lines for the terminal: counts, failures, SSE quantiles, wall time."""
        n, failed = len(self.table), self.n_failed
        run = self.run
        lines = [f"Fitted {n} units: {n - failed} succeeded, {failed} failed."]
        if run is not None and math.isfinite(run.wall_time):
            lines[0] += (f" Fit time {run.wall_time:.2f} s ({run.backend}, {run.workers} "
                         f"worker{'s' if run.workers != 1 else ''})")
            first = run.compile_time + (0 if run.model_load.get("cached", True)
                                        else run.model_load.get("seconds", 0.0))
            lines[0] += f"; first-run compile {first:.2f} s." if first >= 0.01 else "."
        if failed:
            reasons = self.table.loc[~self.table["success"], "message"].value_counts()
            reasons = reasons[reasons > 0]  # a categorical counts its absent messages too
            lines += [f"  {count} x {reason}" for reason, count in reasons.items()]
        if len(self.dropped):
            lines.append(f"Dropped {len(self.dropped)} units with invalid data "
                         "(listed in dropped.csv):")
            ids = [c for c in self.dropped.columns if c not in ("line", "reason")]
            for _, unit in self.dropped.head(5).iterrows():
                where = ", ".join(f"{c}={unit[c]}" for c in ids)
                lines.append(f"  line {unit['line']} ({where}): {unit['reason']}")
            if len(self.dropped) > 5:
                lines.append(f"  and {len(self.dropped) - 5} more")
        sse = self.table["sse"].to_numpy(float)
        finite = sse[np.isfinite(sse)]
        if finite.size:
            q = np.quantile(finite, [0, 0.5, 0.9, 0.99, 1])
            lines.append("SSE quantiles: min {:.3g}, median {:.3g}, 90% {:.3g}, 99% {:.3g}, "
                         "max {:.3g}".format(*q)
                         + (f" ({len(sse) - finite.size} units without)"
                            if finite.size < len(sse) else ""))
        if "starts_agree" in self.table:
            once = int((self.table["starts_agree"] == 1).sum())
            starts = run.problem.get("starts", 1) if run else 1
            lines.append(f"Starts: the best objective was reached by all {starts} starts in "
                         f"{int((self.table['starts_agree'] == starts).sum())} units, by one "
                         f"start only in {once}" + (" (other minima exist: more starts may "
                                                     "find better ones)." if once else "."))
        if self.identifiability is not None:
            lines += self.identifiability.summary
        if self.population is not None:
            lines += self._population_lines()
        if run is not None and run.intervals:
            lines.append(f"Intervals: {run.intervals}.")
        return "\n".join(lines)

    def _population_lines(self) -> list[str]:
        """The population of a pooled fit, a line per pooled parameter."""
        table = self.population
        lines = ["Population (partial pooling): mean or intercept ± its standard error, SD "
                 "between units, median shrinkage:"]
        for name, rows in table.groupby("parameter", sort=False):
            if name == "residual":
                row = rows.iloc[0]
                lines.append(f"  residual variance {row['estimate']:.4g} ± {row['stderr']:.2g}")
                continue
            first, sd = rows.iloc[0], rows[rows["term"] == "sd"].iloc[0]
            scale = "" if first["scale"] == "none" else f" ({first['scale']} scale)"
            shrink = self.table.get(f"{name}_shrinkage")
            median = f", shrinkage {shrink.median():.2f}" if shrink is not None else ""
            lines.append(f"  {name}{scale}: {first['term']} {first['estimate']:.4g} ± "
                         f"{first['stderr']:.2g}, SD {sd['estimate']:.4g}{median}")
        return lines

    # -- files ----------------------------------------------------------------------------
    def write(self, out: str | Path) -> list[Path]:
        """Write params.csv (and params.parquet with pyarrow), targets.csv, dropped.csv (when
        units were dropped) and run.json into ``out``, each atomically.  Returns the paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [write_csv(self.table, out / "params.csv"),
                   write_csv(self.targets, out / "targets.csv")]
        if _has_pyarrow():
            written.append(write_parquet(self.table, out / "params.parquet"))
        if len(self.dropped):
            written.append(write_csv(self.dropped, out / "dropped.csv"))
        if self.population is not None:
            written.append(write_csv(self.population, out / "population.csv"))
        text = self.run.to_json()
        written.append(atomic_write(out / "run.json", lambda p: Path(p).write_text(text)))
        return written

    @classmethod
    def read(cls, folder: str | Path) -> FitResult:
        """The result written into ``folder`` by :meth:`write` (without the Jacobians, which
        are not written: the diagnostics are columns of params.csv)."""
        folder = Path(folder)
        for name in ("params.csv", "targets.csv", "run.json"):
            if not (folder / name).is_file():
                raise DataError(f"Results folder '{folder}' has no {name}; run `sdfit fit` "
                                f"with --out {folder} first.")
        try:
            run = RunRecord.from_json((folder / "run.json").read_text(encoding="utf-8"))
        except (ValueError, TypeError) as error:
            raise DataError(f"'{folder / 'run.json'}' is not a run record this sdfit can "
                            f"read ({error}); fit again to report on it.") from None
        dropped, population = folder / "dropped.csv", folder / "population.csv"
        table, targets = read_csv(folder / "params.csv"), read_csv(folder / "targets.csv")
        # the categorical columns the fit made, as they were
        if "message" in table:
            table["message"] = _categorical(table["message"], _messages())
        if "variable" in targets:
            targets["variable"] = _categorical(targets["variable"],
                                               run.problem.get("targets", []))
        return cls(table, targets, list(run.problem["parameters"]),
                   dropped=read_csv(dropped) if dropped.is_file() else pd.DataFrame(),
                   run=run,
                   population=read_csv(population) if population.is_file() else None)


def status_messages(status: np.ndarray) -> pd.Categorical:
    """The message of each status, as a categorical of every status's message: a byte a
    unit, where strings took about 46 (Arrow strings made from a passing array of Python
    ones)."""
    statuses = sorted(Status)
    codes = np.searchsorted(statuses, status).astype(code_dtype(len(statuses)))
    return pd.Categorical.from_codes(codes, dtype=_message_dtype())


def _messages() -> list[str]:
    return [s.message for s in sorted(Status)]


@functools.cache
def _message_dtype() -> pd.CategoricalDtype:
    """Made once: its categories' index costs more than the codes (50 of 75 µs a fit)."""
    return pd.CategoricalDtype(_messages())


def _categorical(column: pd.Series, categories: list[str]) -> pd.Series:
    """A column of strings read back as the categorical it was written from, unless some
    value is none of ``categories`` (a folder written otherwise): then as it was read."""
    found = column.astype(pd.CategoricalDtype(categories))
    return column if (found.isna() & column.notna()).any() else found


def _strict(value):
    """JSON-safe copy: non-finite floats as strings, NumPy values as Python ones."""
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _restore(value):
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
