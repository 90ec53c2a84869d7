"""Model variables by name: the table shared by :class:`~.program.BatchModel` and the
PySD fallback engine, elements of subscripted variables (``"population[dec 3]"``),
values given for them, and recorded simulations."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from ...exceptions import ModelError
from ...names import canonical, did_you_mean


@dataclass(frozen=True)
class Variable:
    """A model variable as the user names it, and its identifier in the program."""

    name: str
    ident: str
    kind: str  # "constant", "auxiliary", "stock", "lookup", "control"
    dims: tuple[str, ...] = ()


@dataclass(frozen=True)
class Simulation:
    """Recorded outputs of a batched run.

    Attributes
    ----------
    times : ndarray, shape (T,)
    values : dict
        Variable name -> array of shape ``(B, T, *dims)``.
    elements : dict
        Subscripted variable name -> the names of its elements, ``name[e1,e2]``, in the
        order of its flattened dims.
    """

    times: np.ndarray
    values: dict[str, np.ndarray]
    elements: dict[str, list[str]] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return next(iter(self.values.values())).shape[0] if self.values else 0

    def __repr__(self) -> str:
        names = list(self.values)
        shown = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4
                                        else "")
        span = f"{self.times[0]:g} to {self.times[-1]:g}" if len(self.times) else "no time"
        return (f"Simulation({self.units} units x {len(self.times)} times from {span}: "
                f"{shown})")

    def to_frame(self, unit: int | None = None):
        """The outputs as a DataFrame, one column per variable (per element of a
        subscripted one): one unit's indexed by time, like PySD's ``run``; or, by default,
        every unit's, tidy, with columns ``unit`` and ``time`` first."""
        import pandas as pd

        rows = range(self.units) if unit is None else [unit]
        columns: dict[str, np.ndarray] = {}
        for name, array in self.values.items():
            flat = array[list(rows)].reshape(len(rows) * len(self.times), -1)
            labels = self.elements[name] if array.ndim > 2 else [name]
            columns.update(zip(labels, flat.T, strict=True))
        if unit is not None:
            return pd.DataFrame(columns, index=pd.Index(self.times, name="time"))
        return pd.DataFrame({"unit": np.repeat(np.arange(self.units), len(self.times)),
                             "time": np.tile(self.times, self.units), **columns})


class VariableTable:
    """Looking up a model's variables by name: shared by :class:`BatchModel` and the
    PySD fallback engine (:class:`~sdfit.model.runtime.pysd_engine.PysdModel`)."""

    path: str
    variables: dict[str, Variable]  # canonical name -> Variable

    @property
    def name(self) -> str:
        from pathlib import Path

        return Path(self.path).stem

    def names(self, kind: str | None = None) -> list[str]:
        """Variable names in model order, optionally only those of one ``kind``."""
        return [v.name for v in self.variables.values() if kind is None or v.kind == kind]

    @property
    def stocks(self) -> list[str]:
        return self.names("stock")

    @property
    def constants(self) -> list[str]:
        return self.names("constant")

    def element(self, name: str, what: str = "variable") -> tuple[Variable, tuple[int, ...]]:
        """A variable, or one element of a subscripted one (``"population[dec 3]"``), and
        the element's position in the variable's array (after the batch axis)."""
        base, bracket, rest = str(name).partition("[")
        var = self.variable(base if bracket else name, what)
        if not bracket:
            return var, ()
        ranges = getattr(self, "ranges", {})
        wanted = [canonical(e) for e in rest.strip().removesuffix("]").split(",")]
        if len(wanted) != len(var.dims):
            raise ModelError(f"'{name}' gives {len(wanted)} subscript(s) to '{var.name}', "
                             f"which has {len(var.dims)}.")
        index = []
        for element, dim in zip(wanted, var.dims, strict=True):
            keys = [canonical(e) for e in ranges[dim]]
            if element not in keys:
                raise ModelError(f"'{name}': '{element}' is not an element of '{dim}' "
                                 f"({', '.join(ranges[dim])}).{did_you_mean(element, keys)}")
            index.append(keys.index(element))
        return var, tuple(index)

    def elements(self, name: str) -> list[str]:
        """The names ``var[e1,e2]`` of every element of a variable (itself if scalar)."""
        var = self.variable(name)
        if not var.dims:
            return [var.name]
        ranges = self.ranges
        return [f"{var.name}[{','.join(combo)}]"
                for combo in product(*(ranges[d] for d in var.dims))]

    def variable(self, name: str, what: str = "variable") -> Variable:
        """Look a variable up by name (case, spaces and underscores do not matter)."""
        try:
            return self.variables[key(name)]
        except KeyError:
            hint = did_you_mean(name, self.names())
            raise ModelError(
                f"Model '{self.name}' has no {what} named '{name}'.{hint}"
            ) from None


def unquoted(name: str) -> str:
    """A variable's name as people read it: Vensim's quoted names (``"Attack rate (Beta)"``,
    needed for the parentheses) without their quotes."""
    name = str(name).strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('\\"', '"').strip()
    return name


def key(name: str) -> str:
    """The comparison key of a variable name, quoted or not (``canonical`` of its
    unquoted form)."""
    return canonical(unquoted(name))


def batched(value, shape: tuple[int, ...], batch_size: int, name: str = "a value"
            ) -> np.ndarray:
    """A value given for a variable of subscript ``shape``, with its batch axis: a scalar,
    one value per unit (B,), one per element (*shape) or per unit and element.  Values of
    subscripted variables are spread over every element (shape ``(B or 1, *shape)``)."""
    try:
        value = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"The value given for '{name}' is not a number or an array of "
                         f"numbers: {value!r}.") from None
    if not shape:
        if value.ndim > 1 or (value.ndim == 1 and len(value) != batch_size):
            raise ModelError(f"The value given for '{name}' has shape {value.shape}; give a "
                             f"number or one value per unit ({batch_size}).")
        return value
    if value.ndim == 0:
        return np.full((1,) + shape, value)
    if value.shape == shape:
        return value[None]
    if value.shape == (batch_size,):
        return np.broadcast_to(value.reshape((batch_size,) + (1,) * len(shape)),
                               (batch_size,) + shape)
    if value.shape[1:] != shape or value.shape[0] not in (1, batch_size):
        raise ModelError(f"The value given for '{name}' has shape {value.shape}, which fits "
                         f"neither {batch_size} units nor its subscript shape {shape}.")
    return value
