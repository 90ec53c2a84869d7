"""The residuals of units for rows of parameters: simulate, read the model at each
observation, transform by the likelihood, append the penalties.

An observation between two saved Euler steps is compared with the linear interpolation of
the model's values at those steps.  The steps a chunk needs are recorded once per run (the
union over its units), and every unit's observations are gathered from them with index
arrays computed once per chunk: no per-unit Python on the hot path.
"""

from __future__ import annotations

import numpy as np

from . import likelihoods
from .model.runtime.program import TIME_RPREC
from .resolved import Resolved, UnitData


class Objective:
    """Residuals of the units of ``data`` under the resolved problem.

    Parameters
    ----------
    resolved
        The problem, shared by every chunk.
    data
        The units of this chunk.
    """

    def __init__(self, resolved: Resolved, data: UnitData):
        self.resolved, self.data = resolved, data
        obs = resolved.observations
        steps = np.where(data.obs_mask, (data.obs_time - resolved.start_time)
                         / resolved.time_step, 0.0)
        lo = np.floor(steps + TIME_RPREC)
        fraction = np.where(steps - lo > TIME_RPREC, steps - lo, 0.0)
        self.fraction = fraction
        self.interpolate = bool((fraction > 0).any())
        if self.interpolate:
            hi = lo + (fraction > 0)
            grid = np.unique(np.concatenate([lo[data.obs_mask], hi[data.obs_mask]]))
        else:  # every observation on a step: the step after it is not needed
            grid = np.unique(lo[data.obs_mask])
        self.times = resolved.start_time + grid * resolved.time_step
        self.lo = np.searchsorted(grid, lo).astype(np.int64)
        self.hi = np.searchsorted(grid, hi).astype(np.int64) if self.interpolate else self.lo
        self.record = tuple(dict.fromkeys(s.ident for s in obs.slots))
        self.columns = [(self.record.index(s.ident), s.index) for s in obs.slots]
        self.sqrt_w = np.where(data.obs_mask, np.take(obs.sqrt_weights, data.obs_var), 0.0)

    # -- the model at the observations ----------------------------------------------------
    def outputs(self, x: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Model values at each observation slot, shape (n, M), for parameter rows ``x``
        (n, P) of the units ``units`` (n,)."""
        _, stacked = self.simulate(x, units, self.record, self.columns, self.times)
        rows = np.arange(len(x))[:, None]
        var = self.data.obs_var[units]
        lo = stacked[rows, self.lo[units], var]
        if not self.interpolate:
            return lo
        w = self.fraction[units]
        hi = stacked[rows, self.hi[units], var]
        return np.where(w > 0, lo * (1 - w) + hi * w, lo)

    def simulate(self, x: np.ndarray, units: np.ndarray, record: tuple[str, ...],
                 columns, times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Run the rows ``x`` of ``units`` with everything the problem sets (fixed values,
        initial stocks, inputs) and return the saved times (T,) and the values (n, T, V) of
        ``columns``: (position in ``record``, element index) pairs.  ``times`` None saves
        every SAVEPER of the whole run."""
        resolved, data = self.resolved, self.data
        n = len(x)
        overrides: dict[str, object] = {"v_initial_time": resolved.start_time}
        arrays = {ident: np.repeat(value, n, axis=0)
                  for ident, value in resolved.defaults.items()}
        arrays |= {ident: np.empty((n,) + shape)
                   for ident, shape in resolved.stocks.shapes.items()}
        p = resolved.parameters
        for slot, value in p.fixed:
            if not slot.index:
                overrides[slot.ident] = value
        for slots, values in ((p.slots, x), (resolved.stocks.slots, data.initial[units]),
                              (resolved.inputs.constants, data.constants[units])):
            for slot, column in zip(slots, values.T, strict=True):
                if slot.index:
                    arrays[slot.ident][(slice(None),) + slot.index] = column
                else:
                    overrides[slot.ident] = column
        overrides.update(arrays)
        saved, values = resolved.model.execute(
            n, overrides, record, stop_time=None if times is None else float(times[-1]),
            return_times=times, **self._options(units))
        # one (n, T, *dims) array per recorded variable -> (n, T, V) of the wanted columns
        return saved, np.stack([values[k][(slice(None), slice(None)) + index]
                                for k, index in columns], axis=2)

    def _options(self, units: np.ndarray) -> dict:
        """Engine options beyond Euler with the model's own inputs: per-unit tables, the
        integration method."""
        resolved, options = self.resolved, {}
        if resolved.inputs.series:
            from .model.runtime.inputs import UnitTable

            options["inputs"] = {slot.ident: UnitTable(x[units], y[units])
                                 for slot, (x, y) in zip(resolved.inputs.series,
                                                         self.data.series, strict=True)}
        if resolved.method is not None:
            options["method"] = resolved.method
        if getattr(resolved.model, "random", False):
            streams = units if self.data.streams is None else self.data.streams[units]
            options.update(streams=streams, seed=resolved.seed)
        return options

    # -- residuals ------------------------------------------------------------------------
    def residuals(self, x: np.ndarray, units: np.ndarray,
                  alpha: np.ndarray | None = None) -> np.ndarray:
        """Residuals (n, M + R): the likelihood's, then one ``sqrt(λ)(x - x0)`` per ridge."""
        r = self.data_residuals(self.outputs(x, units), units, alpha)
        p = self.resolved.parameters
        penalised = p.penalised
        if not penalised.size:
            return r
        penalty = np.sqrt(p.ridge[penalised]) * (x[:, penalised] - p.x0[penalised])
        return np.concatenate([r, penalty], axis=1)

    def data_residuals(self, model: np.ndarray, units: np.ndarray,
                       alpha: np.ndarray | None = None) -> np.ndarray:
        obs = self.resolved.observations
        return likelihoods.residuals(obs.likelihood, model, self.data.obs_value[units],
                                     self.sqrt_w[units], self.data.obs_mask[units], obs.loss,
                                     obs.f_scale, self.slot_alpha(alpha, units))

    def slot_alpha(self, alpha: np.ndarray | None, units: np.ndarray) -> np.ndarray | None:
        """Per-slot dispersions from per-row ones: (n,) per unit, (n, V) per variable."""
        if alpha is None:
            return None
        if alpha.ndim == 1:
            return alpha[:, None]
        return np.take_along_axis(alpha, self.data.obs_var[units], axis=1)

    def dispersion_groups(self, n_rows: int, units: np.ndarray) -> tuple[np.ndarray, int]:
        """Codes (n, M) of the group each slot's dispersion belongs to."""
        rows = np.arange(n_rows)[:, None]
        if self.resolved.observations.dispersion == "unit":
            return np.broadcast_to(rows, (n_rows, self.data.obs_mask.shape[1])), n_rows
        v = len(self.resolved.observations.slots)
        return rows * v + self.data.obs_var[units], n_rows * v

    @property
    def n_residuals(self) -> int:
        return self.data.obs_mask.shape[1] + len(self.resolved.parameters.penalised)
