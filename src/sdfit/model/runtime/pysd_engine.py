"""PySD's own runtime behind the model interface the fitter uses: the fallback engine.

Any model PySD can run can be fitted this way, one unit at a time: where the
batched engine runs every unit at once, :meth:`PysdModel.execute` runs PySD's
``model.run`` once per unit (parameters and initial stocks set, the needed
times and columns returned, ``reload()`` after each run because PySD keeps
parameters from one run to the next).  Per-unit tables become pandas Series
parameters (PySD interpolates them in time, or uses them as the lookup); random
functions draw from NumPy's global generator, seeded per unit from (seed, stream)
so that rows of the same unit get the same draws.  PySD integrates with Euler only.
A :class:`PysdModel` pickles as plain metadata; each process builds its own PySD
model once, in a private folder, from sdfit's own translation made safe for PySD's
builder (:func:`load_pysd`: model files are untrusted input).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...exceptions import ModelError, SpecError
from .program import CONTROLS, METHODS, Variable, VariableTable
from .variables import key, unquoted

#: PySD's component types -> sdfit's variable kinds.
_KINDS = {"Constant": "constant", "Lookup": "lookup", "Data": "data"}

#: Per process: model file -> loaded PySD model (and the private folder it was built in).
_RUNTIMES: dict[str, tuple[object, tempfile.TemporaryDirectory]] = {}


@dataclass
class PysdModel(VariableTable):
    """A model run by PySD, unit by unit, with the interface of a :class:`BatchModel`.

    Build it with :meth:`PysdModel.load`.
    """

    path: str
    variables: dict[str, Variable]
    values: dict[str, float]  # constants (and controls) by identifier: their own values
    random: bool = False  # the model draws random numbers
    file_method: str = "euler"  # what the model file asks for (PySD runs Euler anyway)

    def __repr__(self) -> str:
        return f"PysdModel('{self.name}': {len(self.variables)} variables, PySD's runtime)"

    @classmethod
    def load(cls, path: str | Path) -> PysdModel:
        """Load the model with PySD (in this process) and read its variables.

        Raises
        ------
        ModelError
            PySD cannot translate or load the model.
        """
        path = str(Path(path).resolve())
        abstract = _abstract(path)  # also refuses a missing or unparsable file clearly
        elements = _elements(abstract)
        runtime = _runtime(path)
        variables: dict[str, Variable] = {}
        values: dict[str, float] = {}
        doc = runtime.doc[["Real Name", "Py Name", "Type", "Subtype"]]
        for name, py_name, pysd_type, subtype in doc.itertuples(index=False, name=None):
            ident = "v_" + py_name
            kind = _kind(ident, pysd_type, subtype)
            if kind is None:
                continue
            variables[key(name)] = Variable(unquoted(name), ident, kind)
            if kind in ("constant", "control"):
                values[ident] = _value(runtime, py_name, name, path)
        # list variables in the order of the model file, as the batched engine does
        order = {key(e.name): i for i, e in enumerate(elements)}
        variables = dict(sorted(variables.items(), key=lambda kv: order.get(kv[0], -1)))
        from ..sources import integration_method

        file_method = integration_method(path)
        if file_method != "euler":
            warnings.warn(f"Model file '{path}' asks for {file_method.upper()}; PySD's runtime "
                          "integrates it with Euler's method.", UserWarning, stacklevel=2)
        return cls(path, variables, values, _draws_random(abstract), file_method)

    @property
    def method(self) -> str:
        """The integration method of this engine's runs: always Euler (PySD has no other)."""
        return "euler"

    # -- the BatchModel interface the fitter uses -------------------------------------------
    @property
    def initial_time(self) -> float:
        return self.values["v_initial_time"]

    @property
    def time_step(self) -> float:
        return self.values["v_time_step"]

    @property
    def final_time(self) -> float:
        return self.values["v_final_time"]

    def constant_value(self, name: str) -> float:
        return self.values[self.variable(name).ident]

    def constant_array(self, name: str) -> np.ndarray:
        """A constant's own value (this engine fits constants without subscripts)."""
        return np.asarray(self.constant_value(name), dtype=float)

    def shape(self, name: str) -> tuple[int, ...]:
        """The subscript shape of a variable: ``()``, as this engine sees every variable."""
        self.variable(name)
        return ()

    def execute(
        self,
        batch_size: int,
        overrides: Mapping[str, object],
        record: tuple[str, ...],
        stop_time: float | None = None,
        return_times: Sequence[float] | None = None,
        *,
        inputs: Mapping[str, object] | None = None,
        streams: Sequence[int] | np.ndarray | None = None,
        seed: int = 0,
        method: str | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run PySD once per unit; same contract as :meth:`BatchModel.execute`.  A unit
        whose run fails gets NaN outputs (a per-unit failure, never a crash).

        Raises
        ------
        SpecError
            ``method="rk4"``: PySD integrates with Euler only.
        """
        if method is not None and str(method).lower() != "euler":
            choices = ", ".join(METHODS)
            raise SpecError(f"PySD's runtime integrates with Euler only; method '{method}' "
                            f"(one of {choices}) needs the batched engine.")
        runtime = _runtime(self.path)
        by_ident = {v.ident: v for v in self.variables.values()}
        start = float(overrides.get("v_initial_time", self.initial_time))
        columns = [by_ident[i].name for i in record]
        streams = np.arange(batch_size) if streams is None else np.asarray(streams)
        rows: list[np.ndarray | None] = []
        times = None if return_times is None else np.asarray(return_times, dtype=float)
        for unit in range(batch_size):
            params, stocks = _series(inputs or {}, by_ident, unit), {}
            for ident, value in overrides.items():
                if ident in CONTROLS:
                    continue
                var = by_ident[ident]
                value = np.asarray(value, dtype=float)
                (stocks if var.kind == "stock" else params)[var.name] = float(
                    value if value.ndim == 0 else value[unit])
            try:
                with warnings.catch_warnings(), _seeded(seed, int(streams[unit]), self.random):
                    warnings.simplefilter("ignore")
                    frame = runtime.run(
                        params=params, initial_condition=(start, stocks),
                        return_timestamps=None if times is None else list(times),
                        return_columns=columns, final_time=stop_time)
                rows.append(frame[columns].to_numpy(dtype=float))
                times = frame.index.to_numpy(dtype=float) if times is None else times
            except Exception:  # a numerical failure of this unit only
                rows.append(None)
            finally:
                runtime.reload()  # PySD keeps parameters across runs
        if times is None:
            raise ModelError(f"PySD could not run model '{self.name}' for any unit.")
        table = np.stack([np.full((len(times), len(columns)), np.nan) if r is None else r
                          for r in rows])
        return times, [table[:, :, k] for k in range(len(columns))]


@contextmanager
def _seeded(seed: int, stream: int, active: bool):
    """NumPy's global generator (the one PySD's random functions draw from) seeded from
    (seed, stream) meanwhile, and left as it was afterwards."""
    if not active:
        yield
        return
    # PySD draws from the legacy global generator, hence its legacy API here
    state = np.random.get_state()  # noqa: NPY002
    entropy = np.random.SeedSequence([seed & 0xFFFFFFFF, stream]).generate_state(1)
    np.random.seed(entropy)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _series(inputs: Mapping[str, object], by_ident: dict[str, Variable], unit: int) -> dict:
    """One unit's per-unit tables as PySD parameters: pandas Series indexed by x (PySD reads
    a constant's in time and uses a lookup's as the table)."""
    import pandas as pd

    params = {}
    for ident, table in inputs.items():
        var = by_ident.get(ident)
        if var is None or var.kind in ("stock", "control"):
            raise ModelError(f"Per-unit tables replace constants, data variables and lookups; "
                             f"'{ident}' is not one.")
        row = unit if table.rows > 1 else 0
        keep = ~np.isnan(table.x[row])
        params[var.name] = pd.Series(table.y[row][keep], index=table.x[row][keep])
    return params


def _kind(ident: str, pysd_type, subtype) -> str | None:
    if ident in CONTROLS:
        return "control"
    if pysd_type == "Stateful":
        return "stock" if subtype == "Integ" else "auxiliary"
    if not isinstance(pysd_type, str):  # Time itself
        return None
    return _KINDS.get(pysd_type, "auxiliary")


def _abstract(path: str):
    from ..translate import translate

    return translate(path)


def _elements(abstract) -> list:
    """The main section's elements, controls first (the batched compiler's order)."""
    from pysd.translators.structures import abstract_model as am

    section = next(s for s in abstract.sections if s.type == "main")
    return sorted(section.elements, key=lambda e: not isinstance(e, am.AbstractControlElement))


def _draws_random(abstract) -> bool:
    """Whether the model calls a random function (PySD's: RANDOM 0 1, UNIFORM, NORMAL,
    EXPONENTIAL)."""
    from .noise import FUNCTIONS

    return any(f"reference='{name}'" in repr(element.components)
               for section in abstract.sections for element in section.elements
               for name in FUNCTIONS)


def _value(runtime, py_name: str, name: str, path: str) -> float:
    """The value of a constant by its own equation (NaN when subscripted: this engine
    does not fit those)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = getattr(runtime.components, py_name)()
    except Exception as error:  # e.g. a function PySD does not implement
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ModelError(f"PySD cannot compute '{name}' of model file '{path}': "
                         f"{reason}") from error
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _runtime(path: str):
    """This process's PySD model of ``path``, built on first use in a private folder."""
    if path not in _RUNTIMES:
        folder = tempfile.TemporaryDirectory(prefix="sdfit-pysd-")
        try:
            runtime = load_pysd(path, Path(folder.name))
        except BaseException:
            folder.cleanup()
            raise
        _RUNTIMES[path] = (runtime, folder)
    return _RUNTIMES[path][0]


def load_pysd(path: str | Path, folder: Path, data_files=None):
    """PySD's model of ``path``, built in the empty ``folder`` as ``pysd.read_vensim`` and
    ``read_xmile`` build it, but from sdfit's own translation, made safe for PySD's
    builder (:func:`..sanitize.for_pysd`), and with the generated Python checked before
    it is imported.

    Raises
    ------
    ModelError
        The model cannot be translated, holds text PySD would write unescaped, or PySD
        cannot build or load it.
    """
    import pysd
    from pysd.builders.python.python_model_builder import ModelBuilder

    from .. import sanitize
    from ..translate import translate

    # absolute: PySD finds the model's external files beside the model file, from the
    # module it writes into ``folder``, where a relative path would point elsewhere
    source = Path(path).resolve()
    abstract = translate(source)
    _refuse_extensions(abstract, str(source))
    sanitize.for_pysd(abstract, str(source))
    for sibling in source.parent.iterdir():  # data files the model may read
        # never a .py: PySD writes its modules here and would write through a link
        if sibling.suffix.lower() != ".py":
            os.symlink(sibling, folder / sibling.name)
    for section in abstract.sections:
        # a fixed name for the main module (the model's own could break PySD's header);
        # a name no macro module can have (those are made of letters, digits and _)
        name = "sdfit-model.py" if section.type == "main" else section.path.name
        section.path = folder / name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main = ModelBuilder(abstract).build_model()
            for section in abstract.sections:
                sanitize.check_pysd_module(section.path, str(source))
            return pysd.load(str(main), data_files)
    except ModelError:
        raise
    except Exception as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ModelError(f"PySD could not load model file '{path}': {reason}") from error


def _refuse_extensions(abstract, path: str) -> None:
    """sdfit's translation holds what PySD's builder would build wrongly without a word:
    SINTEG (it would drop the restrictions)."""
    from ..sources import SintegStructure

    for section in abstract.sections:
        for element in section.elements:
            if any(isinstance(c.ast, SintegStructure) for c in element.components):
                raise ModelError(f"PySD cannot run SINTEG (in the equation of "
                                 f"'{element.name}' of model file '{path}'); the batched "
                                 "engine can.")
