"""Units observed at their own irregular times, with parameters planted from a known
population: the data of the pooling and uncertainty tests and of benchmarks/pooling.py
(imported as ``planted``; pytest puts this folder on the path).

The residuals are built here from :meth:`BatchModel.run`, independently of sdfit's
problem layer: ``model - observed`` at each unit's own times, padded with exact zeros
after its ``n_obs`` observations.

:func:`irregular_panel` plants a theophylline-like panel: each unit its own dose and its
own sampling times off the TIME STEP grid, simulated by hand (:func:`euler_concentration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import sdfit
from sdfit import Parameter, Problem

MODELS = Path(__file__).parent / "fixtures"


@dataclass
class Observed:
    """A residual function ``fun(x, units)`` for units seen at their own times.

    ``times`` (U, M) are on the model's TIME STEP grid; ``n_obs`` (U,) of them are real.
    """

    model: object
    parameters: list[str]
    stock: str
    times: np.ndarray
    n_obs: np.ndarray
    values: np.ndarray | None = None

    def __post_init__(self):
        self.mask = np.arange(self.times.shape[1]) < self.n_obs[:, None]
        self.grid = np.unique(self.times[self.mask])
        self.index = np.searchsorted(self.grid, np.where(self.mask, self.times, self.grid[0]))

    def outputs(self, x: np.ndarray, units: np.ndarray) -> np.ndarray:
        sim = self.model.run(len(x), params=dict(zip(self.parameters, x.T, strict=True)),
                             return_times=self.grid, return_columns=[self.stock])
        rows = np.arange(len(x))[:, None]
        return np.where(self.mask[units], sim.values[self.stock][rows, self.index[units]], 0.0)

    def __call__(self, x: np.ndarray, units: np.ndarray) -> np.ndarray:
        return np.where(self.mask[units], self.outputs(x, units) - self.values[units], 0.0)

    def frame(self):
        """The observations as a long table: unit, time, value."""
        import pandas as pd

        return pd.DataFrame({"unit": np.nonzero(self.mask)[0], "time": self.times[self.mask],
                             "value": self.values[self.mask]})


def observation_times(rng, units: int, low: int, high: int, grid: np.ndarray) -> tuple:
    """Between ``low`` and ``high`` distinct times of ``grid`` per unit, sorted, padded."""
    n_obs = rng.integers(low, high + 1, units)
    times = np.zeros((units, high))
    for u in range(units):
        times[u, :n_obs[u]] = np.sort(rng.choice(grid, n_obs[u], replace=False))
    return times, n_obs


def linear_units(seed: int, units: int = 200, low: int = 2, high: int = 4,
                 noise: float = 1.5) -> tuple[Observed, np.ndarray, np.ndarray]:
    """The linear stock (``level = initial level + inflow * t``) with (initial level,
    inflow) planted from a correlated normal population and one binary covariate that
    shifts both means.  Returns the residual function, the truth and the covariate."""
    rng = np.random.default_rng(seed)
    model = sdfit.load_model(MODELS / "linear_stock.mdl")
    region = (rng.random(units) < 0.4).astype(float)
    chol = np.array([[2.0, 0.0], [0.5, 0.7]])
    truth = (np.array([10.0, 2.0]) + np.outer(region, [3.0, -0.5])
             + rng.standard_normal((units, 2)) @ chol.T)
    times, n_obs = observation_times(rng, units, low, high, np.arange(1, 41) * 0.25)
    obs = Observed(model, ["initial level", "inflow"], "level", times, n_obs)
    obs.values = np.where(obs.mask, obs.outputs(truth, np.arange(units))
                          + noise * rng.standard_normal(times.shape), 0.0)
    return obs, truth, region


#: the decay population: log elimination rate and log initial amount
DECAY_MEAN = np.log([0.3, 100.0])
DECAY_SD = np.array([0.4, 0.25])


def decay_units(seed: int, units: int = 300, low: int = 2, high: int = 4,
                noise: float = 4.0) -> tuple[Observed, np.ndarray]:
    """The nonlinear decay (``amount = initial amount * exp(-rate t)``, under Euler) with
    both parameters planted log-normally (independent), observed with Gaussian noise."""
    rng = np.random.default_rng(seed)
    model = sdfit.load_model(MODELS / "decay.mdl")
    truth = np.exp(DECAY_MEAN + DECAY_SD * rng.standard_normal((units, 2)))
    times, n_obs = observation_times(rng, units, low, high, np.arange(1, 81) * 0.125)
    obs = Observed(model, ["elimination rate", "initial amount"], "amount", times, n_obs)
    obs.values = np.where(obs.mask, obs.outputs(truth, np.arange(units))
                          + noise * rng.standard_normal(times.shape), 0.0)
    return obs, truth


DT = 1 / 128  # the TIME STEP of examples/theophylline.mdl
PK = Problem([Parameter("ka", x0=1.5, bounds=(0.01, 20)),
              Parameter("ke", x0=0.1, bounds=(0.001, 2)),
              Parameter("volume", x0=0.5, bounds=(0.01, 5))],
             targets=["conc"], inputs={"dose": "Dose"})


def euler_concentration(ka, ke, volume, dose, times):
    """The theophylline model stepped by hand (Euler, TIME STEP 1/128 h from 0), the model
    read between two steps by linear interpolation: independent of sdfit's program."""
    steps = int(np.ceil(max(times) / DT)) + 1
    gut, central = dose, 0.0
    values = [central / volume]
    for _ in range(steps):
        absorption, elimination = ka * gut, ke * central
        gut, central = gut - absorption * DT, central + (absorption - elimination) * DT
        values.append(central / volume)
    return np.interp(times, np.arange(len(values)) * DT, values)


def irregular_panel(n_units: int, seed: int, counts=(6, 11)):
    """Units with planted (ka, ke, volume), their own doses and their own times."""
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame({"ka": rng.uniform(0.8, 3.0, n_units),
                          "ke": rng.uniform(0.05, 0.2, n_units),
                          "volume": rng.uniform(0.3, 0.7, n_units),
                          "dose": rng.uniform(3.0, 6.0, n_units)})
    rows = []
    for unit, (ka, ke, volume, dose) in truth.iterrows():
        count = rng.integers(*counts, endpoint=True)  # as Theoph: about half while absorbing
        times = np.sort(np.concatenate([rng.uniform(0.1, 2.0, count // 2),
                                        rng.uniform(2.0, 24.0, count - count // 2)]))
        for t, c in zip(times, euler_concentration(ka, ke, volume, dose, times), strict=True):
            rows.append({"Subject": f"s{unit}", "Dose": dose, "Time": t, "conc": c})
    return pd.DataFrame(rows), truth
