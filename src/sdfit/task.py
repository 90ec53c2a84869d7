"""A problem resolved against a model: the arrays and layout a worker needs to compute
residuals (:class:`FitTask`), and the per-unit data (:class:`UnitData`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model.runtime.program import BatchModel
from .model.runtime.pysd_engine import PysdModel


@dataclass(frozen=True)
class FitTask:
    """A problem resolved against a model: everything a worker needs besides the unit data.

    ``model`` is the engine: a :class:`BatchModel` runs all rows of ``x`` at once,
    a :class:`~sdfit.model.PysdModel` runs PySD once per row.

    The residuals of a unit are ``sqrt(weight) * (model - observed)`` over
    ``targets``, time-major, followed by one penalty residual
    ``sqrt(ridge) * (x - x0)`` per parameter with a ridge (see :attr:`penalised`).
    """

    model: BatchModel | PysdModel
    parameters: tuple[str, ...]
    idents: tuple[str, ...]
    x0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    fixed: dict[str, float]
    stocks: tuple[str, ...]
    stock_idents: tuple[str, ...]
    targets: tuple[tuple[float, str], ...]
    target_idents: tuple[str, ...]
    target_times: tuple[float, ...]
    start_time: float
    sqrt_weights: np.ndarray
    ridge: np.ndarray  # (P,) penalty weight of each parameter, 0 for none
    shared: np.ndarray  # (P,) True where one value serves every unit
    # subscripted variables: the element of each parameter, stock and target (``()`` for
    # a variable without subscripts), the own values of the subscripted constants the
    # parameters belong to (fixed elements set), and the shapes of subscripted stocks
    elements: tuple[tuple[int, ...], ...] = ()
    stock_elements: tuple[tuple[int, ...], ...] = ()
    target_columns: tuple[tuple[int, tuple[int, ...]], ...] = ()
    defaults: dict[str, np.ndarray] = field(default_factory=dict)
    fixed_names: dict[str, float] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def penalised(self) -> np.ndarray:
        """Indices of the parameters with a ridge penalty, in residual order."""
        return np.flatnonzero(self.ridge > 0)

    def residuals(self, x: np.ndarray, initial: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Weighted residuals, shape (N, M + R): targets then ridge penalties."""
        r = self.sqrt_weights * (self.outputs(x, initial) - observed)
        penalised = self.penalised
        if not penalised.size:
            return r
        penalty = np.sqrt(self.ridge[penalised]) * (x[:, penalised] - self.x0[penalised])
        return np.concatenate([r, penalty], axis=1)

    def describe(self) -> dict:
        """The resolved problem as plain data, for run.json and the diagnostics."""
        return {
            "parameters": list(self.parameters),
            "x0": dict(zip(self.parameters, self.x0.tolist(), strict=True)),
            "bounds": {p: [lo, hi] for p, lo, hi in zip(self.parameters, self.lower.tolist(),
                                                        self.upper.tolist(), strict=True)},
            "fixed": dict(self.fixed_names),
            "ridge": {self.parameters[j]: float(self.ridge[j]) for j in self.penalised},
            "shared": [p for p, s in zip(self.parameters, self.shared, strict=True) if s],
            "targets": [[t, v] for t, v in self.targets],
            "stocks": list(self.stocks),
            "initial_time": self.start_time,
        }

    def outputs(self, x: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Model values at the targets, shape (N, M), for parameter rows ``x`` (N, P) and
        initial stocks ``initial`` (N, S)."""
        n = len(x)
        overrides: dict[str, object] = {"v_initial_time": self.start_time, **self.fixed}
        arrays = {ident: np.repeat(value, n, axis=0) for ident, value in self.defaults.items()}
        arrays |= {ident: np.empty((n,) + shape) for ident, shape in self.shapes.items()}
        for idents, elements, values in ((self.idents, self.elements, x),
                                         (self.stock_idents, self.stock_elements, initial)):
            for ident, index, column in zip(idents, elements or [()] * len(idents),
                                            values.T, strict=True):
                if index:
                    arrays[ident][(slice(None),) + index] = column
                else:
                    overrides[ident] = column
        overrides.update(arrays)
        _, values = self.model.execute(n, overrides, self.target_idents,
                                       stop_time=max(self.target_times),
                                       return_times=self.target_times)
        # values: one (N, T, *dims) array per recorded variable -> (N, T * V), time-major
        columns = self.target_columns or [(k, ()) for k in range(len(values))]
        return np.stack([values[k][(slice(None), slice(None)) + index]
                         for k, index in columns], axis=2).reshape(n, -1)


@dataclass(frozen=True)
class UnitData:
    """Per-unit arrays: initial stocks (U, S) and observed targets (U, M)."""

    initial: np.ndarray
    observed: np.ndarray

    def __len__(self) -> int:
        return len(self.observed)

    def take(self, rows) -> UnitData:
        return UnitData(self.initial[rows], self.observed[rows])
