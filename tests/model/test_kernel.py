"""The compiled kernel against the NumPy program it replaces: the same numbers (to 1e-12) on
every test model it takes, and the NumPy program wherever it cannot run."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sdfit
from sdfit import native
from sdfit.datasets import EXAMPLES
from sdfit.model.runtime import kernel
from sdfit.model.runtime.kernel_source import KernelUnsupported, generate

#: Without a C compiler these tests skip, but not in CI (CI=true), where one must be present.
needs_compiler = pytest.mark.skipif(native.compiler() is None and not os.environ.get("CI"),
                                    reason="no C compiler")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Compile into a cache of the test session's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def _both(model: sdfit.BatchModel, monkeypatch, **run) -> tuple:
    """The same run through the kernel and through the NumPy program."""
    model._programs.clear()
    compiled = model.run(**run)
    with monkeypatch.context() as patch:
        patch.setattr(kernel, "ENABLED", False)
        model._programs.clear()
        reference = model.run(**run)
    model._programs.clear()
    return compiled, reference


def _assert_same(compiled, reference, where: str) -> None:
    np.testing.assert_array_equal(compiled.times, reference.times, err_msg=where)
    assert compiled.values.keys() == reference.values.keys()
    for name, values in reference.values.items():
        np.testing.assert_allclose(compiled.values[name], values, rtol=1e-12, atol=1e-300,
                                   err_msg=f"{where}: {name}")


def _per_unit_constants(model: sdfit.BatchModel) -> dict:
    """Every scalar constant given three values, one per unit (its own and ±10 %)."""
    params = {}
    for name in model.names("constant"):
        if model.shape(name) == ():
            value = model.constant_value(name)
            params[name] = [value, value * 1.1, value * 0.9]
    return params


@needs_compiler
@pytest.mark.slow
def test_kernel_equals_the_numpy_program_on_every_test_model_it_takes(test_models,
                                                                        monkeypatch):
    compared = 0
    for folder in test_models.values():
        model = folder.model
        if model is None:
            continue
        record = tuple(v.ident for v in model.variables.values() if v.kind != "lookup")
        if not model.prepare(record):
            continue
        for params in ({}, _per_unit_constants(model)):
            compiled, reference = _both(model, monkeypatch, batch_size=3, params=params)
            _assert_same(compiled, reference, folder.name)
        compared += 1
    # every model without subscripts, DELAY N, SMOOTH N, DELAY FIXED or controls that change
    assert compared >= 61


@needs_compiler
@pytest.mark.parametrize("units", [7, 1001])  # one thread; whole blocks over threads
def test_aging_chain_runs_compiled_and_equals_numpy(aging_chain, monkeypatch, units):
    rates = {f"dec {k} loss rate": np.linspace(0.01, 0.05, units) for k in range(1, 10)}
    stocks = {f"dec {k}": np.linspace(100, 5000, units) for k in range(1, 10)}
    assert aging_chain.prepare(("v_dec_9",))
    monkeypatch.setattr(native, "_threads", lambda pid: 2)
    compiled, reference = _both(aging_chain, monkeypatch, batch_size=units, params=rates,
                                initial=stocks, return_columns=["dec 9", "dec 2 loss"])
    _assert_same(compiled, reference, "aging chain")


@needs_compiler
def test_delay_and_smooth_pipelines_with_orders_lowered_per_unit(tmp_path, monkeypatch):
    """DELAY3 lowers its order per unit where the delay is shorter than 3 TIME STEPs (to 0
    below one step: NaN, as PySD); SMOOTH3 keeps three stages."""
    path = tmp_path / "pipelines.mdl"
    path.write_text(_MODEL.format(equation="DELAY3(input, delay) + SMOOTH3(input, delay)")
                    .replace("input = 1", "input = STEP(1, 2) + Time\n\t~\t~\t|\n\n"
                             "delay = 2"))
    model = sdfit.load_model(path)
    assert model.prepare(("v_out",))
    compiled, reference = _both(model, monkeypatch, batch_size=3,
                                params={"delay": [0.1, 0.5, 2.0]}, return_columns=["out"])
    _assert_same(compiled, reference, "pipelines")
    assert np.isnan(reference.values["out"][0]).all() and np.isfinite(
        reference.values["out"][1:]).all()


def test_unsupported_constructs_fall_back_to_the_numpy_program(tmp_path):
    subscripted = sdfit.load_model(EXAMPLES / "aging_chain_subscripted.mdl")
    with pytest.raises(KernelUnsupported, match="subscripts"):
        generate(subscripted, ())
    assert not subscripted.prepare(())
    delayed = tmp_path / "delayed.mdl"
    delayed.write_text(_MODEL.format(equation="DELAY FIXED(input, 2, input)"))
    model = sdfit.load_model(delayed)
    assert not model.prepare(("v_out",))
    sim = model.run(2, params={"input": [1.0, 2.0]}, return_columns=["out"])
    assert sim.values["out"].shape == (2, 41)  # the NumPy program ran
    np.testing.assert_allclose(sim.values["out"][:, 0], [1.0, 2.0])


def test_without_a_compiler_the_numpy_program_runs(aging_chain, monkeypatch):
    monkeypatch.setattr(native, "compiler", lambda: None)
    monkeypatch.setattr(native, "_LIBRARIES", {})
    aging_chain._programs.clear()
    assert not aging_chain.prepare(("v_dec_9",))
    sim = aging_chain.run(2, return_columns=["dec 9"])
    assert np.isfinite(sim.values["dec 9"]).all()
    assert native.last_failure == "no C compiler"
    aging_chain._programs.clear()


@needs_compiler
def test_generated_source_holds_no_text_of_the_model(tmp_path):
    """Names and comments of a model never reach the C source: variables are numbered."""
    name = 'evil */ abort(); /* name'
    hostile = tmp_path / "hostile.mdl"
    hostile.write_text(_MODEL.format(equation=f'"{name}" * 2').replace(
        "input = 1", f'"{name}" = 1\n\t~\t~ */ system("x"); /*\n\t|\n\ninput = 1'))
    model = sdfit.load_model(hostile)
    source = generate(model, ("v_out",)).text
    assert "evil" not in source and "system" not in source
    assert model.prepare(("v_out",))
    np.testing.assert_allclose(model.run(1, return_columns=["out"]).values["out"], 2.0)


_MODEL = """{{UTF-8}}
input = 1
\t~\t~\t|

out = {equation}
\t~\t~\t|

INITIAL TIME = 0
\t~\t~\t|

FINAL TIME = 10
\t~\t~\t|

TIME STEP = 0.25
\t~\t~\t|

SAVEPER = TIME STEP
\t~\t~\t|
"""
