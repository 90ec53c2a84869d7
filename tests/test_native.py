"""Compiled C built once per machine (sdfit.native), and the solver's compiled iteration
against its NumPy reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from sdfit import native
from sdfit.fitting import Payload, fit_chunk
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.solvers import LevenbergMarquardt, lm

#: Without a C compiler these tests skip, but not in CI (CI=true), where one must be present.
needs_compiler = pytest.mark.skipif(native.compiler() is None and not os.environ.get("CI"),
                                    reason="no C compiler")
SOURCE = "double twice(double x) { return 2 * x; }\n"


@needs_compiler
def test_a_library_is_compiled_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    import ctypes

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(native, "_LIBRARIES", {})
    before = native.compile_seconds
    library = native.library(SOURCE)
    library.twice.restype, library.twice.argtypes = ctypes.c_double, [ctypes.c_double]
    assert library.twice(2.5) == 5.0
    assert native.compile_seconds > before
    monkeypatch.setattr(native, "_LIBRARIES", {})
    compiled = native.compile_seconds
    assert native.library(SOURCE) is not None
    assert native.compile_seconds == compiled  # loaded, not compiled


@needs_compiler
def test_a_damaged_library_is_never_trusted(tmp_path, monkeypatch):
    """Built, damaged and loaded in other processes (this one must not have it mapped)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load = f"from sdfit import native; print(native.library({SOURCE!r}) is None)"

    def fresh_process() -> str:
        return subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                              check=True).stdout.strip()

    assert fresh_process() == "False"
    (built,) = native.cache_dir().glob("sdfit-*.so")
    built.write_bytes(b"damaged")
    assert fresh_process() == "True" and not built.exists()  # refused and removed
    assert fresh_process() == "False" and built.exists()  # built again


def test_a_failing_compiler_is_no_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(native, "_LIBRARIES", {})
    if native.compiler() is None:
        assert native.library(SOURCE) is None
        return
    assert native.library("this is not C") is None
    assert native.last_failure.startswith("the C compiler failed")


@needs_compiler
@pytest.mark.parametrize(("broyden", "bounds"), [(True, None), (False, None),
                                                 (True, (-0.01, 0.04))])
def test_compiled_iteration_equals_the_numpy_iteration(aging_chain, census, monkeypatch,
                                                       broyden, bounds):
    """The same optimum, unit by unit; without bounds the same path too (model calls and
    statuses) but for a few units where round-off tips a test the other way.  With active
    bounds the path may differ more (round-off decides which parameters are held), never
    the optimum."""
    rows = np.random.default_rng(11).choice(len(census), 200, replace=False)
    rates = Parameter("dec * loss rate", x0=0.03, **({"bounds": bounds} if bounds else {}))
    problem = Problem([Parameter("dec 1 loss rate", fixed=0.05), rates],
                      target_times=[2010], initial_time=2000, exclude=["dec 1"])
    task, data = resolve(problem, aging_chain, census.take(rows))
    payload = Payload(task, LevenbergMarquardt(broyden=broyden))
    assert lm.compiled()
    compiled = fit_chunk(payload, data)
    monkeypatch.setattr(lm, "_native", lambda shape=None: None)
    reference = fit_chunk(payload, data)
    assert reference.success.all() and compiled.success.all()
    if bounds is None:
        assert np.mean(compiled.nfev == reference.nfev) > 0.98
        assert np.mean(compiled.status == reference.status) > 0.98
    else:
        assert (reference.x == bounds[1]).any()  # some bounds are active
    np.testing.assert_allclose(compiled.x, reference.x, rtol=0, atol=1e-8)
    # exact fits differ at round-off (1e-24 people²), the others to 1e-9 of their SSE
    np.testing.assert_allclose(compiled.sse, reference.sse, rtol=1e-9, atol=1e-12)


def _jacobians(shape):
    """Random Jacobians with every case the diagnostics tell apart."""
    rng = np.random.default_rng(7)
    jac = rng.normal(size=shape) * np.logspace(0, -5, shape[2])  # columns of unlike scale
    jac[::3, :, -1] = 2 * jac[::3, :, 0] - jac[::3, :, 1]  # rank deficient in a third
    jac[::5, :, 1] = 0.0
    jac[4, 0, 0] = np.nan
    jac[6, -1, -1] = np.inf
    jac[7] = 0.0  # changes nothing: rank 0, every parameter wholly null
    return jac


@needs_compiler
# rows > P, rows < P, square with a unit count no multiple of the lanes, 8 lanes (larger)
@pytest.mark.parametrize("shape", [(300, 9, 8), (40, 3, 5), (30, 12, 4), (301, 8, 8),
                                   (9, 40, 20)])
def test_the_compiled_diagnostics_are_numpys(shape, monkeypatch):
    from sdfit import diagnostics

    jac = _jacobians(shape)
    assert diagnostics._native(*shape[1:]) is not None
    compiled = diagnostics.diagnose(jac)
    monkeypatch.setattr(diagnostics, "_native", lambda rows, p: None)
    reference = diagnostics.diagnose(jac)
    np.testing.assert_array_equal(compiled.rank, reference.rank)
    assert compiled.rank[[4, 6, 7]].tolist() == [-1, -1, 0]
    np.testing.assert_array_equal(compiled.identifiable, reference.identifiable)
    full = reference.rank == shape[2]  # a condition of round-off alone is not compared
    np.testing.assert_allclose(compiled.condition[full], reference.condition[full], rtol=1e-9)
    deficient = (reference.rank >= 0) & ~full
    assert (compiled.condition[deficient] > 1 / diagnostics.RANK_RTOL).all()
    np.testing.assert_array_equal(np.isnan(compiled.condition), np.isnan(reference.condition))
    np.testing.assert_allclose(compiled.nullspace, reference.nullspace, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.variance, reference.variance, rtol=1e-9)


@needs_compiler
def test_a_unit_gets_the_same_diagnostics_alone_as_in_a_stack(monkeypatch):
    """Units side by side in vector lanes, and on any number of threads, do not touch."""
    from sdfit import diagnostics

    jac = _jacobians((600, 9, 8))
    monkeypatch.setattr(native, "threads", lambda: 1)
    both = diagnostics.diagnose(jac)
    monkeypatch.setattr(native, "threads", lambda: 2)
    two = diagnostics.diagnose(jac)
    for units in [slice(0, 1), slice(3, 4), slice(7, 8), slice(31, 33), slice(599, 600)]:
        alone = diagnostics.diagnose(jac[units])
        for name in ("rank", "condition", "nullspace", "identifiable", "variance"):
            np.testing.assert_array_equal(getattr(alone, name), getattr(both, name)[units])
    for name in ("rank", "condition", "nullspace", "identifiable", "variance"):
        np.testing.assert_array_equal(getattr(two, name), getattr(both, name))
