"""Integration methods: Euler (PySD's) and the classical Runge-Kutta method, against
closed-form solutions, with the order of convergence each method must show."""

from __future__ import annotations

import numpy as np
import pytest

import sdfit
from sdfit import ModelError
from sdfit.model import PysdModel

#: Each model: its equations, the variable compared and its exact value at FINAL TIME.
CASES = {
    # x' = -k x, x(0) = 1
    "exponential decay": ("x = INTEG(-k * x, 1)\n~~|\nk = 0.7\n~~|\n", "x",
                          np.exp(-0.7 * 4)),
    # P' = r P (1 - P / K), P(0) = 10, K = 100
    "logistic": ("P = INTEG(r * P * (1 - P / K), 10)\n~~|\nr = 1.2\n~~|\nK = 100\n~~|\n", "P",
                 100 / (1 + 9 * np.exp(-1.2 * 4))),
    # x'' = -w^2 x, x(0) = 1, x'(0) = 0
    "harmonic oscillator": ("x = INTEG(v, 1)\n~~|\nv = INTEG(-w * w * x, 0)\n~~|\n"
                            "w = 1.5\n~~|\n", "x", np.cos(1.5 * 4)),
    # a SMOOTH and a DELAY1 of a ramp: s' = (t - s) / tau, s(0) = 0
    "smooth of a ramp": ("s = SMOOTH(Time, tau)\n~~|\ntau = 0.8\n~~|\n", "s",
                         4 - 0.8 * (1 - np.exp(-4 / 0.8))),
    "delay of a ramp": ("d = DELAY1(Time, tau)\n~~|\ntau = 0.8\n~~|\n", "d",
                        4 - 0.8 * (1 - np.exp(-4 / 0.8))),
}
STEPS = (1 / 16, 1 / 32, 1 / 64, 1 / 128)


def _model(tmp_path, body: str, time_step: float, extra: str = ""):
    path = tmp_path / f"m{int(1 / time_step)}.mdl"
    path.write_text("{UTF-8}\n" + body + f"INITIAL TIME = 0\n~~|\nFINAL TIME = 4\n~~|\n"
                    f"TIME STEP = {time_step}\n~~|\nSAVEPER = TIME STEP\n~~|\n" + extra)
    return sdfit.load_model(path)


def _errors(tmp_path, case: str, method: str) -> np.ndarray:
    body, name, exact = CASES[case]
    errors = []
    for dt in STEPS:
        sim = _model(tmp_path, body, dt).run(1, return_columns=[name], method=method)
        errors.append(abs(sim.values[name][0, -1] - exact))
    return np.array(errors)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_error_shrinks_with_the_order_of_the_method(tmp_path, case, method, order):
    errors = _errors(tmp_path, case, method)
    observed = np.log2(errors[:-1] / errors[1:])  # halving TIME STEP divides by 2^order
    np.testing.assert_allclose(observed, order, atol=0.2, err_msg=f"{errors}")
    if method == "rk4":
        assert errors[0] < 1e-4


def test_rk4_runs_every_unit_of_a_batch_with_its_own_parameters(tmp_path):
    model = _model(tmp_path, CASES["logistic"][0], 1 / 16)
    rates = np.array([0.5, 1.2, 2.0])
    sim = model.run(3, params={"r": rates}, return_columns=["P"], method="rk4")
    exact = 100 / (1 + 9 * np.exp(-rates * 4))
    np.testing.assert_allclose(sim.values["P"][:, -1], exact, rtol=1e-6)
    one = model.run(1, params={"r": 2.0}, return_columns=["P"], method="rk4")
    np.testing.assert_array_equal(one.values["P"][0], sim.values["P"][2])


def test_discrete_states_move_once_per_step_under_rk4(tmp_path):
    """DELAY FIXED and SAMPLE IF TRUE read the values at each step's start, whatever the
    method (Vensim's rule for its discrete delays)."""
    body = ("d = DELAY FIXED(Time * Time, 1, -1)\n~~|\n"
            "s = SAMPLE IF TRUE(MODULO(Time, 1) < 0.1, Time, 0)\n~~|\n")
    model = _model(tmp_path, body, 1 / 4)
    euler = model.run(2, return_columns=["d", "s"], method="euler")
    rk4 = model.run(2, return_columns=["d", "s"], method="rk4")
    for name in ("d", "s"):
        np.testing.assert_array_equal(rk4.values[name], euler.values[name])
    times = euler.times
    np.testing.assert_allclose(euler.values["d"][0], np.where(times >= 1, (times - 1) ** 2, -1))


def test_non_negative_stocks_stay_non_negative_under_rk4(tmp_path):
    path = tmp_path / "tank.xmile"
    path.write_text(XMILE.format(method="RK4"))
    model = sdfit.load_model(path)
    assert model.method == "rk4"
    level = model.run(1, return_columns=["tank"]).values["tank"][0]
    assert level.min() == 0 and level[0] == 2


XMILE = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
  <header><vendor>sdfit</vendor><product version="1">tests</product></header>
  <sim_specs method="{method}" time_units="Months">
    <start>0</start><stop>4</stop><dt>0.25</dt>
  </sim_specs>
  <model><variables>
    <stock name="tank"><eqn>2</eqn><outflow>drain</outflow><non_negative/></stock>
    <flow name="drain"><eqn>1</eqn></flow>
  </variables></model>
</xmile>
"""


def test_the_method_comes_from_the_file_and_can_be_overridden(tmp_path):
    body, name, exact = CASES["exponential decay"]
    settings = ("\\\\\\---/// Sketch information\nV300\n*View 1\n///---\\\\\\\n"
                ":L\x7f<%^E!@\n1:Current.vdf\n15:0,0,0,{code},0,0\n19:100,0\n")
    for code, method in ((0, "euler"), (1, "rk4"), (5, "rk4")):
        model = _model(tmp_path, body, 1 / 8, settings.format(code=code))
        assert model.method == method
    x_file = model.run(1, return_columns=[name]).values[name][0, -1]
    x_rk4 = model.run(1, return_columns=[name], method="rk4").values[name][0, -1]
    x_euler = model.run(1, return_columns=[name], method="euler").values[name][0, -1]
    assert x_file == x_rk4 and abs(x_rk4 - exact) < abs(x_euler - exact) / 1000
    with pytest.raises(ModelError, match="Unknown integration method 'rk2'"):
        model.run(1, method="rk2")


def test_pysd_engine_refuses_rk4_in_one_sentence(tmp_path):
    model = _model(tmp_path, CASES["exponential decay"][0], 1 / 8)
    engine = PysdModel.load(model.path)
    record = (model.variable("x").ident,)
    with pytest.raises(sdfit.SpecError, match="PySD's runtime integrates with Euler only"):
        engine.execute(1, {}, record, method="rk4")
    times, (x,) = engine.execute(1, {}, record, method="euler")
    np.testing.assert_allclose(x, model.execute(1, {}, record)[1][0], rtol=1e-13)
