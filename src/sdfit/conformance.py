"""Run the SD engines' conformance suite (``test-models/tests``) through the batched engine.

Each folder holds a model (Vensim ``.mdl`` or XMILE) and its canonical output
exported from Vensim or Stella (``output.tab`` or ``output.csv``).  A folder
passes when every column of the canonical output agrees at every saved time,
the way PySD's own suite checks it (``pysd.tools.benchmarking``): the same saved
times (within the rounding of canonical outputs, which keep six significant
digits), ``|expected - actual| <= atol + rtol * |actual|`` with rtol 5 % and atol 1e-5,
NaN equal to NaN, and Vensim's constants (given only in the first row) spread
to every row.  The batched engine runs a batch of identical units, which must
agree exactly with each other.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import SdfitError, UnsupportedFeatureError
from .names import did_you_mean

#: PySD's tolerances (``assert_frames_close(..., rtol=.05)`` with its default atol).
RTOL, ATOL = 0.05, 1e-5
#: Saved times agree within this relative tolerance: canonical outputs write them with six
#: significant digits (99.96875 as 99.9688).
TIME_RTOL = 1e-5
MODEL_SUFFIXES = (".mdl", ".xmile")
ENGINES = ("batched", "pysd")


@dataclass(frozen=True)
class Outcome:
    """The result of one test folder.

    Attributes
    ----------
    folder : str
    model : str
        The model file run (empty when the folder has none).
    status : str
        ``"pass"``, ``"fail"`` or ``"unsupported"``.
    detail : str
        Largest difference and its variable, the unsupported construct, or the error.
    scalar : bool
        The model uses no subscripts.
    construct : str
        The unsupported construct (empty otherwise).
    """

    folder: str
    model: str
    status: str
    detail: str
    scalar: bool
    construct: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def line(self) -> str:
        kind = "" if self.scalar else " [subscripts]"
        return f"{self.status:<11} {self.folder} ({self.model}){kind}: {self.detail}"


def suite_folders(root: str | Path) -> list[Path]:
    """Folders of ``root`` (recursively) holding a model and a canonical output."""
    root = Path(root)
    if not root.is_dir():
        raise SdfitError(f"Conformance folder '{root}' does not exist.")
    return sorted(p.parent for p in root.rglob("*")
                  if p.name in ("output.tab", "output.csv") and pick_model(p.parent))


def pick_model(folder: Path) -> Path | None:
    """The folder's model: Vensim before XMILE, ``test_*`` before others, shortest name."""
    models = [p for p in folder.iterdir() if p.suffix.lower() in MODEL_SUFFIXES]
    models.sort(key=lambda p: (p.suffix.lower() != ".mdl", not p.stem.startswith("test_"),
                               len(p.name), p.name))
    return models[0] if models else None


def read_canonical(folder: Path) -> pd.DataFrame:
    """The canonical output of a folder, indexed by time, read as PySD's suite reads it."""
    path = folder / "output.csv"
    if not path.is_file():
        path = folder / "output.tab"
    return read_output(path)


def read_output(path: Path) -> pd.DataFrame:
    """An output of Vensim or Stella indexed by time: ``.tab`` or ``.csv`` as PySD's suite
    reads them (the first column the time, whatever its name), or Vensim's ``.dat`` (a
    variable's name on a line, then lines of time and value)."""
    path = Path(path)
    if path.suffix.lower() != ".dat":
        from pysd.py_backend.utils import detect_encoding, load_outputs

        encoding = detect_encoding(path)
        try:
            return load_outputs(path, encoding=encoding)
        except ValueError:  # the time column named otherwise ("Years"): the first column
            sep = "\t" if path.suffix.lower() == ".tab" else ","
            frame = pd.read_csv(path, sep=sep, index_col=0, encoding=encoding)
            return frame.rename_axis("time")
    series, name, rows = {}, None, {}
    for line in path.read_text(errors="ignore").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and name is not None:
            rows[float(parts[0])] = float(parts[1])
            continue
        if name is not None:
            series[name] = pd.Series(rows, dtype=float)
        name, rows = line.strip(), {}
    if name is not None:
        series[name] = pd.Series(rows, dtype=float)
    return pd.DataFrame(series).sort_index().rename_axis("time")


def run_suite(root: str | Path, engine: str = "batched", batch_size: int = 2,
              only: Iterable[str] = (), report: Callable[[Outcome], None] | None = None
              ) -> list[Outcome]:
    """Run every test folder under ``root`` (or only those named in ``only``, each of
    which must exist); ``report`` is called after each one."""
    if engine not in ENGINES:
        raise SdfitError(f"Unknown engine '{engine}'; expected one of {', '.join(ENGINES)}.")
    wanted = set(only)
    folders = suite_folders(root)
    names = [f.name for f in folders]
    for name in sorted(wanted - set(names)):
        raise SdfitError(f"Conformance folder '{root}' has no test folder '{name}'."
                         f"{did_you_mean(name, names)}")
    outcomes = []
    for folder in folders:
        if wanted and folder.name not in wanted:
            continue
        outcome = run_folder(folder, engine, batch_size)
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes


def run_folder(folder: Path, engine: str = "batched", batch_size: int = 2) -> Outcome:
    """Run one test folder and compare with its canonical output."""
    from .model import compile_model
    from .model.translate import translate

    path = pick_model(folder)
    scalar = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            canonical = read_canonical(folder)
            columns = list(canonical.columns)
            abstract = translate(path)
            scalar = not uses_subscripts(abstract)
            if engine == "pysd":
                frames = [simulate_pysd(folder, path, columns)]
            else:
                model = compile_model(abstract, path, folder.glob("data.tab"))
                frames = simulate_batched(model, columns, batch_size)
    except UnsupportedFeatureError as error:
        return Outcome(folder.name, path.name, "unsupported",
                       f"{error.construct} (in '{error.variable}')", scalar, error.construct)
    except Exception as error:  # a crash is a failure of this folder, not of the suite
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        return Outcome(folder.name, path.name, "fail", f"{type(error).__name__}: {reason}",
                       scalar)
    if any(not frames[0].equals(f) for f in frames[1:]):
        return Outcome(folder.name, path.name, "fail", "the units of the batch differ", scalar)
    ok, detail = compare(frames[0], canonical)
    return Outcome(folder.name, path.name, "pass" if ok else "fail", detail, scalar)


def compare(actual: pd.DataFrame, expected: pd.DataFrame, rtol: float = RTOL,
            atol: float = ATOL) -> tuple[bool, str]:
    """PySD's ``assert_frames_close`` as a verdict and a one-line detail."""
    missing = sorted(set(expected.columns) - set(actual.columns))
    if missing:
        return False, f"no output for {', '.join(repr(m) for m in missing)}"
    times, saved = expected.index.to_numpy(float), actual.index.to_numpy(float)
    if len(times) != len(saved) or not np.allclose(saved, times, rtol=TIME_RTOL, atol=0):
        return False, (f"saved times differ: expected {_times(expected.index)}, got "
                       f"{_times(actual.index)}")
    actual = actual.set_axis(expected.index, axis=0)
    x = _spread_constants(expected.astype(float))
    y = _spread_constants(actual[list(expected.columns)].astype(float))
    both_nan = x.isna() & y.isna()
    error = (x - y).abs().where(~both_nan, 0.0)
    close = (error <= atol + rtol * y.abs()) | both_nan
    if error.empty:
        return True, "nothing to compare"
    # the point nearest to failing: largest error relative to its tolerance
    score = (error / (atol + rtol * y.abs())).fillna(np.inf)
    time, column = score.stack().idxmax()
    worst, value = error.loc[time, column], y.loc[time, column]
    if worst == 0:
        detail = "exact"
    else:
        relative = f"{100 * worst / abs(value):.3g} % of {value:.6g}" if value else "actual 0"
        detail = f"largest difference {worst:.3g} ({relative}) in '{column}' at time {time:g}"
    bad = [c for c in close.columns if not close[c].all()]
    if not bad:
        return True, detail
    return False, f"{len(bad)} of {len(close.columns)} columns differ; {detail}"


# -- engines ----------------------------------------------------------------------------------
def simulate_batched(model, columns: list[str], batch_size: int) -> list[pd.DataFrame]:
    """One frame per unit of a batch of identical units, columns named as ``columns``."""
    names = {}
    for column in columns:
        try:
            var, index = model.element(column)
        except SdfitError:
            continue  # reported by compare() as a missing output
        names[column] = (var.name, index)
    sim = model.run(batch_size, return_columns=list(dict.fromkeys(n for n, _ in names.values())))
    index = pd.Index(sim.times, name="time")
    return [pd.DataFrame({c: sim.values[n][(u, slice(None)) + i]
                          for c, (n, i) in names.items()}, index=index)
            for u in range(batch_size)]


def simulate_pysd(folder: Path, path: Path, columns: list[str]) -> pd.DataFrame:
    """PySD's own runtime, its model built in a private folder (as the PySD engine builds
    it: model files are untrusted, see :func:`sdfit.model.runtime.pysd_engine.load_pysd`)."""
    from .model.runtime.pysd_engine import load_pysd

    with tempfile.TemporaryDirectory() as tmp:
        data = [str(p) for p in folder.glob("data.tab")] or None
        return load_pysd(path, Path(tmp), data).run(return_columns=columns)


# -- helpers ----------------------------------------------------------------------------------
def uses_subscripts(abstract) -> bool:
    """Whether a parsed model defines or uses subscripts."""
    return any(s.subscripts or any(len(e.components) > 1 or e.components[0].subscripts[0]
                                   for e in s.elements)
               for s in abstract.sections)


def _spread_constants(frame: pd.DataFrame) -> pd.DataFrame:
    """Vensim writes constants in the first row only (PySD's ``_remove_constant_nan``)."""
    if len(frame) < 2:
        return frame
    constant = frame.iloc[1:].isna().all()
    frame = frame.copy()
    frame.loc[:, constant] = np.broadcast_to(frame.iloc[0][constant].to_numpy(),
                                             (len(frame), int(constant.sum())))
    return frame


def _times(index: pd.Index) -> str:
    values = index.to_numpy(float)
    if len(values) <= 4:
        return "[" + ", ".join(f"{v:g}" for v in values) + "]"
    return f"{len(values)} times from {values[0]:g} to {values[-1]:g}"


def summary(outcomes: list[Outcome]) -> str:
    """The closing line: ``N passed, M failed`` (unsupported counts as failed)."""
    passed = sum(o.passed for o in outcomes)
    return f"{passed} passed, {len(outcomes) - passed} failed"


def markdown(outcomes: list[Outcome]) -> str:
    """A table of the results grouped by verdict (the README's 'Supported language')."""
    groups: dict[str, list[str]] = {}
    for o in outcomes:
        if o.passed:
            key = "passes" + ("" if o.scalar else " (subscripts)")
        elif o.status == "unsupported":
            key = f"unsupported: {o.construct}"
        else:
            key = "fails"
        groups.setdefault(key, []).append(f"`{o.folder}`")
    rows = sorted(groups.items(), key=lambda kv: (not kv[0].startswith("passes"), kv[0]))
    lines = ["| result | folders |", "| --- | --- |"]
    lines += [f"| {key} ({len(names)}) | {', '.join(names)} |" for key, names in rows]
    return "\n".join(lines)
