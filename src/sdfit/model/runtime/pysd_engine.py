"""PySD's own runtime behind the model interface the fitter uses: the fallback engine.

Any model PySD can run can be fitted this way, one unit at a time: where the
batched engine runs every unit at once, :meth:`PysdModel.execute` runs PySD's
``model.run`` once per unit (parameters and initial stocks set, the needed
times and columns returned, ``reload()`` after each run because PySD keeps
parameters from one run to the next).  A :class:`PysdModel` pickles as plain
metadata; each process builds its own PySD model once, in a private folder, from
sdfit's own translation made safe for PySD's builder (:func:`load_pysd`: model
files are untrusted input).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...exceptions import ModelError
from ...names import canonical
from .program import CONTROLS, Variable, VariableTable

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

    @classmethod
    def load(cls, path: str | Path) -> PysdModel:
        """Load the model with PySD (in this process) and read its variables.

        Raises
        ------
        ModelError
            PySD cannot translate or load the model.
        """
        path = str(Path(path).resolve())
        elements = _elements(path)  # also refuses a missing or unparsable file clearly
        runtime = _runtime(path)
        variables: dict[str, Variable] = {}
        values: dict[str, float] = {}
        doc = runtime.doc[["Real Name", "Py Name", "Type", "Subtype"]]
        for name, py_name, pysd_type, subtype in doc.itertuples(index=False, name=None):
            ident = "v_" + py_name
            kind = _kind(ident, pysd_type, subtype)
            if kind is None:
                continue
            variables[canonical(name)] = Variable(name, ident, kind)
            if kind in ("constant", "control"):
                values[ident] = _value(runtime, py_name, name, path)
        # list variables in the order of the model file, as the batched engine does
        order = {canonical(e.name): i for i, e in enumerate(elements)}
        variables = dict(sorted(variables.items(), key=lambda kv: order.get(kv[0], -1)))
        return cls(path, variables, values)

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
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run PySD once per unit; same contract as :meth:`BatchModel.execute`.  A unit
        whose run fails gets NaN outputs (a per-unit failure, never a crash)."""
        runtime = _runtime(self.path)
        by_ident = {v.ident: v for v in self.variables.values()}
        start = float(overrides.get("v_initial_time", self.initial_time))
        columns = [by_ident[i].name for i in record]
        rows: list[np.ndarray | None] = []
        times = None if return_times is None else np.asarray(return_times, dtype=float)
        for unit in range(batch_size):
            params, stocks = {}, {}
            for ident, value in overrides.items():
                if ident in CONTROLS:
                    continue
                var = by_ident[ident]
                value = np.asarray(value, dtype=float)
                (stocks if var.kind == "stock" else params)[var.name] = float(
                    value if value.ndim == 0 else value[unit])
            try:
                with warnings.catch_warnings():
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


def _kind(ident: str, pysd_type, subtype) -> str | None:
    if ident in CONTROLS:
        return "control"
    if pysd_type == "Stateful":
        return "stock" if subtype == "Integ" else "auxiliary"
    if not isinstance(pysd_type, str):  # Time itself
        return None
    return _KINDS.get(pysd_type, "auxiliary")


def _elements(path: str) -> list:
    """The main section's elements, controls first (the batched compiler's order)."""
    from pysd.translators.structures import abstract_model as am

    from ..translate import translate

    section = next(s for s in translate(path).sections if s.type == "main")
    return sorted(section.elements, key=lambda e: not isinstance(e, am.AbstractControlElement))


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

    source = Path(path)
    abstract = translate(source)
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
