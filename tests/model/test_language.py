"""The scalar Vensim/XMILE language: the batched engine against PySD's own runtime.

PySD is the independent reference: its built-ins run one unit's floats, its
stateful objects step one unit at a time; the batched engine must give the same
numbers for every unit of a batch, each with its own parameters.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pysd
import pytest
from pysd.py_backend import functions as pysd_functions
from pysd.py_backend.lookups import HardcodedLookups

import sdfit
from helpers import compare_suite_with_pysd
from sdfit.model.runtime import functions as F

#: Every stateful structure, lookups, a macro called twice, fed by STEP/RAMP/PULSE TRAIN.
STATEFULS = """{UTF-8}
:MACRO: DECAY(input, tau)
DECAY = INTEG(input - DECAY / tau, input * tau)
~~|
:END OF MACRO:
input = 1 + STEP(4, 1) + RAMP(0.5, 2, 6) + PULSE TRAIN(1, 0.5, 2, 8) + PULSE(3, 1)
~~|
delay time = 2
~~|
order = 3
~~|
initial value = 3
~~|
average time = 1.5
~~|
d1 = DELAY1(input, delay time)
~~|
d3i = DELAY3I(input, delay time, initial value)
~~|
dn = DELAY N(input, delay time + 0.1 * Time, initial value, order)
~~|
df = DELAY FIXED(input, delay time, initial value)
~~|
s1 = SMOOTH(input, average time)
~~|
s3i = SMOOTH3I(input, average time, initial value)
~~|
sn = SMOOTH N(input, average time, initial value, order)
~~|
tr = TREND(input, average time, 0.1)
~~|
fc = FORECAST(input, average time, 2)
~~|
sample = SAMPLE IF TRUE(MODULO(Time, 2) < 0.5, input, initial value)
~~|
init = INITIAL(input * initial value)
~~|
ai = ACTIVE INITIAL(s1 * 2, initial value)
~~|
stock = INTEG(ai - stock / average time, init)
~~|
tbl((0,0),(2,1),(5,4),(10,3))
~~|
looked = tbl(Time * average time) + WITH LOOKUP(input, ((0,1),(3,2),(9,0)))
~~|
m1 = DECAY(input, average time)
~~|
m2 = DECAY(2 * input, delay time) + XIDZ(input, MODULO(Time, 3), -1) + QUANTUM(input, 0.7)
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 10
~~|
TIME STEP = 0.25
~~|
SAVEPER = 0.5
~~|
"""

#: Per-unit values chosen so that orders differ between units: a delay time of 0.5
#: lowers DELAY3's order to 2 (3 * TIME STEP > 0.5), DELAY FIXED runs 2 to 13 steps.
#: (Orders are ints: PySD cannot build a SMOOTH N of float order.)
PER_UNIT = {"delay time": [2.0, 0.5, 0.6, 3.3], "order": [3, 1, 4, 2],
            "initial value": [3.0, -1.0, 0.0, 10.0], "average time": [1.5, 0.7, 3.0, 1.0]}


@pytest.mark.parametrize("per_unit", [
    PER_UNIT,
    # only the initial value differs: stages start per unit while delay times are shared,
    # and as many units as stages (a misaligned stage axis would broadcast silently)
    {"initial value": [3.0, -1.0, 10.0]},
], ids=["all constants per unit", "initial value per unit"])
def test_every_stateful_structure_equals_pysd_unit_by_unit(tmp_path, per_unit):
    path = tmp_path / "statefuls.mdl"
    path.write_text(STATEFULS)
    model = sdfit.load_model(path)
    units = len(next(iter(per_unit.values())))
    sim = model.run(units, params={k: np.array(v) for k, v in per_unit.items()})
    shutil.copytree(tmp_path, tmp_path / "pysd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PySD warns when it lowers an order
        reference = pysd.read_vensim(str(tmp_path / "pysd" / "statefuls.mdl"))
        for unit in range(units):
            expected = reference.run(params={k: v[unit] for k, v in per_unit.items()})
            reference.reload()
            ours = sim.to_frame(unit)
            assert list(ours.index) == list(expected.index)
            for column in expected.columns:
                np.testing.assert_allclose(ours[column], expected[column], rtol=1e-12,
                                           atol=0, err_msg=f"{column} of unit {unit}")


def test_scalar_results_stay_scalar_and_batches_broadcast():
    assert np.ndim(F.xidz(1.0, 0.0, 5.0)) == 0 and F.xidz(1.0, 0.0, 5.0) == 5.0
    np.testing.assert_array_equal(F.xidz(np.array([1.0, 2.0]), np.array([0.0, 4.0]), 5.0),
                                  [5.0, 0.5])
    assert F.if_then_else(True, 1.0, np.zeros(3)) == 1.0


class _Clock:
    """PySD's time object as its functions see it."""

    def __init__(self, t: float, dt: float):
        self.t, self.dt = t, dt

    def __call__(self):
        return self.t

    def time_step(self):
        return self.dt


@pytest.mark.parametrize("name, ours, theirs", [
    ("pulse", lambda t, dt: F.pulse(t, dt, 3.0, width=1.5),
     lambda c: pysd_functions.pulse(c, 3.0, width=1.5)),
    ("xmile pulse", lambda t, dt: F.pulse(t, dt, 2.0, magnitude=4.0),
     lambda c: pysd_functions.pulse(c, 2.0, magnitude=4.0)),
    # an end off the grid: at the end time itself PySD has no pulse, Vensim (and sdfit) one
    ("pulse train", lambda t, dt: F.pulse_train(t, dt, 1.0, 2.5, width=0.75, end=9.1),
     lambda c: pysd_functions.pulse(c, 1.0, repeat_time=2.5, width=0.75, end=9.1)),
    ("xmile pulse train", lambda t, dt: F.pulse_train(t, dt, 1.0, 2.0, magnitude=3.0),
     lambda c: pysd_functions.pulse(c, 1.0, repeat_time=2.0, magnitude=3.0)),
    ("step", lambda t, dt: F.step(t, dt, 2.0, 4.0), lambda c: pysd_functions.step(c, 2.0, 4.0)),
    ("ramp", lambda t, dt: F.ramp(t, 0.5, 2.0, 7.0),
     lambda c: pysd_functions.ramp(c, 0.5, 2.0, 7.0)),
])
def test_time_functions_equal_pysd_over_a_batch_of_times(name, ours, theirs):
    dt = 0.25
    times = np.arange(0, 12, dt)
    expected = [theirs(_Clock(t, dt)) for t in times]
    np.testing.assert_array_equal(ours(times, dt), expected, err_msg=name)
    assert [ours(float(t), dt) for t in times] == expected


@pytest.mark.parametrize("function, arguments", [
    (("xidz", 3), [(-2.0, 0.0, 1e-7, 3.0), (0.0, 1e-7, 0.0, -2.0), (9.0, 9.0, 9.0, 9.0)]),
    (("zidz", 2), [(-2.0, 0.0, 1e-7, 3.0), (0.0, 1e-7, -1e-7, -2.0)]),
    (("quantum", 2), [(7.3, -7.3, 2.0, 0.5), (2.0, 2.0, 0.0, -1.0)]),
    (("modulo", 2), [(7.3, -7.3, 2.0, 0.5), (2.0, 2.0, 0.5, 0.25)]),
])
def test_arithmetic_builtins_equal_pysd_element_by_element(function, arguments):
    name, _ = function
    ours = getattr(F, name)(*(np.array(a) for a in arguments))
    expected = [getattr(pysd_functions, name)(*args) for args in zip(*arguments, strict=True)]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("mode", ["interpolate", "extrapolate", "hold_backward"])
def test_lookups_equal_pysd_inside_at_and_beyond_the_points(mode):
    xs, ys = np.array([0.0, 2.0, 5.0, 10.0]), np.array([1.0, 0.0, 4.0, 3.0])
    reference = HardcodedLookups(list(xs), list(ys), {}, mode, {}, "tbl")
    reference.initialize()
    x = np.array([-3.0, 0.0, 1.0, 2.0, 4.9, 5.0, 7.5, 10.0, 12.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PySD warns when it extrapolates
        expected = [reference(v) for v in x]
    np.testing.assert_allclose(F.lookup(x, xs, ys, mode), expected, rtol=1e-15)


@pytest.mark.slow
def test_every_scalar_test_model_equals_pysd(test_models):
    """Not only within Vensim's 5 %: the same numbers as PySD, folder by folder."""
    assert compare_suite_with_pysd(test_models, subscripted=False) == 69  # all without subs
