"""Several starts per unit: all of them one batch, each unit keeps its best, and the table
says how many starts agreed — a single start planted in a local minimum is found out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sdfit
from sdfit import Parameter, Problem
from sdfit.data import read_panel
from sdfit.fitting import start_points
from sdfit.resolution import resolve

#: A frictionless oscillator, observed over several periods: the sum of squares has a local
#: minimum at every frequency whose oscillation lines up with some of the observations.
OSCILLATOR = """{UTF-8}
position = INTEG(velocity, 1)
~~|
velocity = INTEG(-omega * omega * position, 0)
~~|
omega = 1
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 12
~~|
TIME STEP = 0.01
~~|
SAVEPER = TIME STEP
~~|
"""


@pytest.fixture(scope="module")
def oscillator(tmp_path_factory):
    path = tmp_path_factory.mktemp("oscillator") / "oscillator.mdl"
    path.write_text(OSCILLATOR)
    model = sdfit.load_model(path)
    planted = np.array([2.0, 2.3, 2.6, 3.0])
    times = np.arange(0.5, 12.0, 0.5)
    sim = model.run(len(planted), params={"omega": planted}, return_times=times,
                    return_columns=["position"])
    rows = [{"unit": u, "t": t, "position": x} for u in range(len(planted))
            for t, x in zip(sim.times, sim.values["position"][u], strict=True)]
    return model, read_panel(pd.DataFrame(rows), units=["unit"], time="t"), planted


def problem(starts: int) -> Problem:
    return Problem([Parameter("omega", x0=0.7, bounds=(0.1, 4))], starts=starts, seed=1)


def test_one_start_from_x0_stops_in_a_local_minimum(oscillator):
    model, panel, planted = oscillator
    single = sdfit.fit(model, panel, problem(1), backend="serial", progress=False).table
    assert (np.abs(single["omega"] - planted) > 0.1).any()  # the trap is real
    assert (single["objective"] > 1e-3).any()


def test_many_starts_find_the_planted_frequency_and_say_how_many_agreed(oscillator):
    model, panel, planted = oscillator
    result = sdfit.fit(model, panel, problem(12), backend="processes", workers=2,
                       progress=False)
    table = result.table
    np.testing.assert_allclose(table["omega"], planted, rtol=1e-7)
    assert (table["objective"] < 1e-12).all()
    assert ((table["starts_agree"] >= 1) & (table["starts_agree"] < 12)).all()
    assert "Starts: the best objective was reached by all 12 starts in 0 units" in \
        result.summary()
    assert (table["nfev"] > 12).all()  # every start's evaluations are counted


def test_start_points_span_the_bounds_or_the_scale():
    bounded = Problem([Parameter("omega", x0=0.7, bounds=(0.1, 4))], starts=5, seed=3)
    open_ended = Problem([Parameter("omega", x0=0.7, scale=0.5)], starts=5, seed=3)

    class Model:  # the least a resolution needs is not worth it here: blocks by hand
        pass

    for prob, (lo, hi) in ((bounded, (0.1, 4)), (open_ended, (0.2, 1.2))):
        from sdfit.resolved import ParameterBlock, Resolved

        p = prob.parameters[0]
        block = ParameterBlock((), np.array([p.x0]), np.array([p.bounds[0]]),
                               np.array([p.bounds[1]]), np.zeros(1), np.zeros(1, bool),
                               np.array([np.nan if p.scale is None else p.scale]))
        resolved = Resolved(Model(), block, None, None, None, 0.0, 1.0, 1.0, starts=5, seed=3)
        points = start_points(resolved, 2)[:, 0]
        assert points[0] == 0.7 and points[5] == 0.7  # x0 first, for every unit
        strata = np.floor((points[1:5] - lo) / (hi - lo) * 4)
        assert sorted(strata) == [0, 1, 2, 3]  # a Latin hypercube: one point per stratum
        np.testing.assert_array_equal(points[1:5], points[6:10])


def test_an_infinite_bound_without_a_scale_is_refused(oscillator):
    model, panel, _ = oscillator
    with pytest.raises(sdfit.SpecError, match="'omega' has an infinite bound and no scale"):
        resolve(Problem([Parameter("omega", x0=0.7)], starts=4), model, panel)
