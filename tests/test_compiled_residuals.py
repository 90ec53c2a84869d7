"""The solver's whole loop in compiled code, calling the residuals' C function: the same
fit, number for number, as the loop that returns to Python each iteration; the C
residuals equal the objective's; problems it does not cover keep the Python path."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

import sdfit
from planted import PK, irregular_panel
from sdfit import Parameter, Problem, compiled_residuals, native
from sdfit.compiled_residuals import Residuals
from sdfit.data import read_panel
from sdfit.datasets import EXAMPLES
from sdfit.fitting import Payload, fit_chunk
from sdfit.objective import Objective
from sdfit.resolution import resolve
from sdfit.solvers import LevenbergMarquardt, Status, lm

needs_compiler = pytest.mark.skipif(native.compiler() is None and not os.environ.get("CI"),
                                    reason="no C compiler")
RATES = Parameter("dec * loss rate", x0=0.03)
CENSUS = Problem([Parameter("dec 1 loss rate", fixed=0.05), RATES], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"], weights={"dec 9": 0.5})


@pytest.fixture(scope="module")
def pk_model():
    return sdfit.load_model(EXAMPLES / "theophylline.mdl")


@pytest.fixture(scope="module")
def pk_panel():
    frame, _ = irregular_panel(150, seed=5)
    frame.loc[frame.index[::7], "conc"] = np.nan  # gaps: padded, masked slots
    return read_panel(frame, units=["Subject"], time="Time")


def _problems(aging_chain, census, pk_model, pk_panel):
    rows = np.random.default_rng(4).choice(len(census), 300, replace=False)
    counties = census.take(rows)
    bounded = dataclasses.replace(CENSUS, parameters=[
        CENSUS.parameters[0], Parameter("dec * loss rate", x0=0.03, bounds=(-0.01, 0.04))])
    return {  # initial stocks from data, a fixed constant, weights, active bounds,
        "census": (CENSUS, aging_chain, counties),  # per-unit inputs, irregular times
        "census, bounds active": (bounded, aging_chain, counties),
        "irregular times, doses": (PK, pk_model, pk_panel),
        "three starts": (dataclasses.replace(PK, starts=3), pk_model, pk_panel),
    }


@needs_compiler
@pytest.mark.parametrize("name", ["census", "census, bounds active", "irregular times, doses",
                                  "three starts"])
@pytest.mark.parametrize("broyden", [True, False])
def test_the_compiled_loop_is_the_python_loop_number_for_number(
        name, broyden, aging_chain, census, pk_model, pk_panel, monkeypatch):
    problem, model, panel = _problems(aging_chain, census, pk_model, pk_panel)[name]
    resolved, data = resolve(problem, model, panel)
    payload = Payload(resolved, LevenbergMarquardt(broyden=broyden))
    assert Residuals(Objective(resolved, data), np.arange(len(data))).native is not None
    monkeypatch.setattr(native, "_threads", lambda pid: 2)  # blocks shared out to 2 threads
    with monkeypatch.context() as patch:  # the compiled loop never returns to Python
        patch.setattr(lm._Run, "iterate", None)
        compiled = fit_chunk(payload, data)
    monkeypatch.setattr(compiled_residuals, "_compile", lambda objective, units: None)
    python = fit_chunk(payload, data)
    assert python.success.mean() > 0.9
    for field, value in python.arrays().items():
        np.testing.assert_array_equal(getattr(compiled, field), value, err_msg=field)


@needs_compiler
def test_a_unit_not_finite_at_its_start_fails_alone_in_the_compiled_loop(aging_chain, census,
                                                                           monkeypatch):
    counties = census.take(np.arange(40))
    value = counties.value.copy()
    value[counties.unit == 3] = 1e300  # residuals whose squares overflow: not finite
    counties = dataclasses.replace(counties, value=value)
    resolved, data = resolve(CENSUS, aging_chain, counties)
    payload = Payload(resolved, LevenbergMarquardt())
    compiled = fit_chunk(payload, data)
    monkeypatch.setattr(compiled_residuals, "_compile", lambda objective, units: None)
    python = fit_chunk(payload, data)
    assert compiled.status[3] == Status.NOT_FINITE and compiled.success.sum() == 39
    for field, value in python.arrays().items():
        np.testing.assert_array_equal(getattr(compiled, field), value, err_msg=field)


@needs_compiler
def test_the_c_residuals_equal_the_objectives(pk_model, pk_panel):
    resolved, data = resolve(PK, pk_model, pk_panel)
    objective = Objective(resolved, data)
    rows = np.random.default_rng(1).permutation(np.repeat(np.arange(len(data)), 2))
    x = resolved.parameters.x0 * np.exp(np.random.default_rng(2).normal(0, 0.3, (len(rows), 3)))
    fun = Residuals(objective, np.arange(len(data)))
    expected = objective.residuals(x, rows)
    assert objective.interpolate and not data.obs_mask.all()
    np.testing.assert_array_equal(_call(fun.native, rows, x), expected)


def _call(compiled, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    import ctypes

    pointer = ctypes.c_void_p  # sdfit_residuals(context, n, rows, X, R)
    function = ctypes.CFUNCTYPE(ctypes.c_int, pointer, ctypes.c_int64, pointer, pointer,
                                pointer)(compiled.function)
    rows, x = np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(x)
    out = np.empty((len(rows), compiled.n_residuals))
    assert function(compiled.context, len(rows), rows.ctypes.data, x.ctypes.data,
                    out.ctypes.data) == 0
    return out


@pytest.mark.parametrize("change", [
    {"likelihood": "lognormal"}, {"loss": "huber"}, {"method": "rk4"},
    {"parameters": [Parameter("ka", x0=1.5, ridge=0.1), *PK.parameters[1:]]}])
def test_problems_the_c_residuals_do_not_cover_call_python(pk_model, pk_panel, change):
    method = change.pop("method", None)
    problem = dataclasses.replace(PK, **change)
    resolved, data = resolve(problem, pk_model, pk_panel)
    if method:
        resolved = dataclasses.replace(resolved, method=method)
    fun = Residuals(Objective(resolved, data), np.arange(len(data)))
    assert fun.native is None
    x = np.tile(resolved.parameters.x0, (3, 1))
    assert np.isfinite(fun(x, np.arange(3))).all()  # the objective's own residuals


def test_without_a_compiler_the_fit_is_the_python_loops(pk_model, pk_panel, monkeypatch):
    resolved, data = resolve(PK, pk_model, pk_panel)
    expected = fit_chunk(Payload(resolved, LevenbergMarquardt()), data)
    monkeypatch.setattr(lm, "_native", lambda shape=None: None)  # SDFIT_NATIVE=0 or no compiler
    monkeypatch.setattr(compiled_residuals, "_library", lambda: None)
    assert Residuals(Objective(resolved, data), np.arange(len(data))).native is None
    numpy = fit_chunk(Payload(resolved, LevenbergMarquardt()), data)
    np.testing.assert_allclose(numpy.x, expected.x, rtol=1e-6)
