"""A problem resolved against a model and a panel, as a few small typed blocks.

:func:`sdfit.resolve.resolve` builds them once; workers receive a :class:`Resolved` (what
every unit shares: the model, the parameters, the layout of stocks, inputs and
observations) and the :class:`UnitData` of their chunk (what differs per unit: initial
stocks, input values, the padded observations).  :mod:`sdfit.objective` turns the pair into
residuals.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .model.interface import Engine


@dataclass(frozen=True)
class Slot:
    """Where a value goes in the model: a variable (``ident``) or one element of it."""

    name: str  # the model's spelling: "dec 3 loss rate", "loss rate[dec 3]"
    ident: str  # the program identifier of its variable
    index: tuple[int, ...] = ()  # the element's position, () for a whole scalar variable


@dataclass(frozen=True)
class ParameterBlock:
    """The fitted constants (P of them) and the fixed ones."""

    slots: tuple[Slot, ...]
    x0: np.ndarray  # (P,)
    lower: np.ndarray  # (P,)
    upper: np.ndarray  # (P,)
    ridge: np.ndarray  # (P,) penalty weight, 0 for none
    shared: np.ndarray  # (P,) bool: one value for every unit
    scale: np.ndarray  # (P,) spread of the starts where a bound is infinite (NaN: none)
    fixed: tuple[tuple[Slot, float], ...] = ()
    pooled: np.ndarray | None = None  # (P,) bool: drawn from an estimated population
    transforms: tuple[str, ...] = ()  # per parameter: the population's scale

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    @property
    def penalised(self) -> np.ndarray:
        """Indices of the parameters with a ridge penalty, in residual order."""
        return np.flatnonzero(self.ridge > 0)

    def __len__(self) -> int:
        return len(self.slots)


@dataclass(frozen=True)
class StockBlock:
    """The stocks started from the data (none: every stock from the model's equations)."""

    slots: tuple[Slot, ...] = ()
    data_names: tuple[str, ...] = ()  # the data's names of those stocks
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # subscripted stocks


@dataclass(frozen=True)
class InputBlock:
    """Model variables given per unit by data columns."""

    constants: tuple[Slot, ...] = ()  # one value per unit (UnitData.constants columns)
    series: tuple[Slot, ...] = ()  # a table per unit (UnitData.series entries)
    kinds: tuple[str, ...] = ()  # per series: "time" (evaluated at Time) or "lookup"
    columns: dict[str, str] = field(default_factory=dict)  # model name -> data column


@dataclass(frozen=True)
class ObservationBlock:
    """What the model is compared with: the target variables and how residuals are made."""

    slots: tuple[Slot, ...]  # target variables or elements, by variable code
    data_names: tuple[str, ...]  # the data's names of the targets
    sqrt_weights: np.ndarray  # (V,) per target variable
    likelihood: str = "gaussian"
    dispersion: str = "unit"
    loss: str = "linear"
    f_scale: float = 1.0
    times: tuple[float, ...] | None = None  # a restriction to these times

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]


@dataclass(frozen=True)
class PoolingBlock:
    """How pooled parameters are estimated, and the covariates of their population mean."""

    method: str = "foce"
    samples: int = 400
    scale: str = "estimate"  # residual variance: estimated, or fixed at 1 (counts)
    covariates: tuple[str, ...] = ()  # column names of UnitData.covariates ("state=2", ...)
    mask: np.ndarray | None = None  # (Q, C) bool: covariates of each pooled parameter


@dataclass(frozen=True)
class Resolved:
    """Everything a worker needs besides the unit data.

    ``model`` is the engine: a BatchModel runs all rows at once, a PysdModel runs PySD once
    per row (both implement :class:`~sdfit.model.interface.Engine`).
    """

    model: Engine
    parameters: ParameterBlock
    stocks: StockBlock
    inputs: InputBlock
    observations: ObservationBlock
    start_time: float
    time_step: float
    final_time: float
    defaults: dict[str, np.ndarray] = field(default_factory=dict)  # subscripted constants
    method: str | None = None
    seed: int = 0
    starts: int = 1
    pooling: PoolingBlock | None = None  # None: no pooled parameter

    def with_model(self, model: Engine) -> Resolved:
        return replace(self, model=model)

    def describe(self) -> dict:
        """The resolved problem as plain data, for run.json, diagnostics and fingerprints."""
        p = self.parameters
        names = p.names
        return {
            "parameters": names,
            "x0": dict(zip(names, p.x0.tolist(), strict=True)),
            "bounds": {n: [lo, hi] for n, lo, hi in zip(names, p.lower.tolist(),
                                                       p.upper.tolist(), strict=True)},
            "fixed": {s.name: v for s, v in p.fixed},
            "ridge": {names[j]: float(p.ridge[j]) for j in p.penalised},
            "shared": [n for n, s in zip(names, p.shared, strict=True) if s],
            "targets": self.observations.names,
            "target_times": (None if self.observations.times is None
                             else list(self.observations.times)),
            "weights": dict(zip(self.observations.names,
                                (self.observations.sqrt_weights ** 2).tolist(), strict=True)),
            "likelihood": self.observations.likelihood,
            "loss": self.observations.loss,
            "f_scale": self.observations.f_scale,
            "dispersion": self.observations.dispersion,
            "stocks": [s.name for s in self.stocks.slots],
            "inputs": dict(self.inputs.columns),
            "initial_time": self.start_time,
            "final_time": self.final_time,
            "time_step": self.time_step,
            "method": self.method,
            "starts": self.starts,
            "seed": self.seed,
            "pooled": ([] if self.pooling is None else
                       [n for n, q in zip(names, p.pooled, strict=True) if q]),
            "pooling": (None if self.pooling is None else
                        {"method": self.pooling.method, "samples": self.pooling.samples,
                         "scale": self.pooling.scale,
                         "transforms": dict(zip(names, p.transforms, strict=True)),
                         "covariates": list(self.pooling.covariates)}),
        }

    def fingerprint(self) -> str:
        """sha256 of what decides a unit's result besides its data and the model file (so
        what the model file says, its TIME STEP and FINAL TIME, is left to the file's hash)."""
        described = {k: v for k, v in self.describe().items()
                     if k not in ("time_step", "final_time")}
        text = json.dumps(described, sort_keys=True, default=repr)
        digest = hashlib.sha256(text.encode())
        for name in sorted(self.defaults):
            digest.update(np.ascontiguousarray(self.defaults[name]).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class UnitData:
    """Per-unit arrays of U units.

    ``obs_*`` are the observations padded to the longest unit: ``obs_mask`` says which are
    real; padded slots hold time and value 0 and variable 0.
    """

    initial: np.ndarray  # (U, S) initial stocks from the data
    constants: np.ndarray  # (U, K) per-unit constant inputs
    series: tuple[tuple[np.ndarray, np.ndarray], ...]  # per series input: x, y (U, L) padded
    obs_time: np.ndarray  # (U, M)
    obs_var: np.ndarray  # (U, M) int: the target variable's code
    obs_value: np.ndarray  # (U, M)
    obs_mask: np.ndarray  # (U, M) bool
    covariates: np.ndarray | None = None  # (U, C) of a pooled fit's population mean
    #: (U,) each unit's row in the panel given to the fit: its stream of random numbers,
    #: the same whatever the chunking and whichever units are dropped for invalid data
    streams: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.obs_value)

    @property
    def n_obs(self) -> np.ndarray:
        # einsum counts a row of a few slots in a third of the time of sum(axis=1)
        return np.einsum("ij->i", self.obs_mask, dtype=np.int64)

    def take(self, rows) -> UnitData:
        """The data of some units (positions, a mask or a slice).  Consecutive positions,
        as the fitter's chunks are, give views rather than copies (0.1 ms of a census)."""
        if (isinstance(rows, np.ndarray) and rows.dtype.kind in "iu" and len(rows)
                and rows[0] >= 0 and (np.diff(rows) == 1).all()):
            rows = slice(int(rows[0]), int(rows[-1]) + 1)
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = (tuple((x[rows], y[rows]) for x, y in value)
                              if f.name == "series" else None if value is None
                              else value[rows])
        return UnitData(**values)
