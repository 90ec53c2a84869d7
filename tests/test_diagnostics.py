"""Identifiability diagnostics: exact linear algebra, planted truths, the census problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sdfit
from sdfit import IdentifiabilityWarning
from sdfit.calibrate import fit
from sdfit.data import from_wide
from sdfit.datasets import synthetic_panel
from sdfit.diagnostics import NULL_TOL, diagnose
from sdfit.fitting import Payload, fit_chunk
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.solvers import ScipyLeastSquares

RATES = [f"dec {k} loss rate" for k in range(1, 10)]
RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])
FIXED = Problem([Parameter("dec 1 loss rate", fixed=0.05), Parameter("dec * loss rate", x0=0.05)],
                target_times=[2010], initial_time=2000, exclude=["dec 1"])


def test_diagnose_a_stack_of_known_jacobians():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(6, 3))
    collinear = full.copy()
    collinear[:, 1] = 1000.0 * collinear[:, 0]  # same direction, another unit of measure
    zero = full.copy()
    zero[:, 2] = 0.0
    broken = np.full((6, 3), np.nan)
    d = diagnose(np.stack([full, collinear, zero, broken]))
    assert d.rank.tolist() == [3, 2, 2, -1]
    # full rank: variances are the diagonal of (JᵀJ)⁻¹, computed independently
    np.testing.assert_allclose(d.variance[0], np.diag(np.linalg.inv(full.T @ full)), rtol=1e-10)
    assert d.identifiable[0].all() and np.isfinite(d.condition[0])
    # collinear columns: column scaling makes the two equally unidentifiable
    np.testing.assert_allclose(d.nullspace[1, :2], np.sqrt(0.5), rtol=1e-6)
    assert d.identifiable[1].tolist() == [False, False, True]
    assert np.isnan(d.variance[1, :2]).all() and np.isfinite(d.variance[1, 2])
    # a parameter that changes nothing lies wholly in the null space
    np.testing.assert_allclose(d.nullspace[2], [0, 0, 1], atol=1e-12)
    assert not d.identifiable[3].any() and np.isnan(d.condition[3])


def test_fewer_residuals_than_parameters_is_structurally_rank_deficient():
    d = diagnose(np.random.default_rng(1).normal(size=(5, 2, 3)))
    assert (d.rank == 2).all() and np.isinf(d.condition).all()
    np.testing.assert_allclose(np.sum(d.nullspace**2, axis=1), 1.0)  # one null direction


@pytest.fixture(scope="module")
def noisy_panel(aging_chain):
    """Planted rates, five target times, additive Gaussian noise of 20 people."""
    times = [2002, 2004, 2006, 2008, 2010]
    panel, truth = synthetic_panel(aging_chain, 300, {r: (-0.02, 0.08) for r in RATES},
                                   {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)},
                                   times, seed=1)
    frame = panel.frame.copy()
    targets = [c for c in frame.columns if c[0] != 2000]
    frame[targets] += np.random.default_rng(2).normal(0, 20, (len(frame), len(targets)))
    problem = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=times,
                      initial_time=2000, exclude=["dec 1"])
    return from_wide(frame, "<noisy>"), truth, problem


def test_intervals_cover_planted_rates_about_95_percent(aging_chain, noisy_panel):
    panel, truth, problem = noisy_panel
    result = fit(aging_chain, panel, problem, backend="serial", progress=False)
    assert result.table["success"].all() and (result.table["rank"] == 9).all()
    low = result.table[[f"{r}_ci_low" for r in RATES]].to_numpy()
    high = result.table[[f"{r}_ci_high" for r in RATES]].to_numpy()
    covered = (low <= truth[RATES].to_numpy()) & (truth[RATES].to_numpy() <= high)
    assert 0.92 < covered.mean() < 0.97, covered.mean()
    assert result.identifiability.dof == 40 - 9


def test_standard_errors_agree_with_scipys_jacobian(aging_chain, noisy_panel):
    """s² (JᵀJ)⁻¹ from SciPy's least_squares Jacobian at its own solution, unit by unit."""
    panel, _, problem = noisy_panel
    small = panel.take(np.arange(5))
    result = fit(aging_chain, small, problem, backend="serial", progress=False)
    task, data = resolve(problem, aging_chain, small)
    scipy = fit_chunk(Payload(task, ScipyLeastSquares()), data)
    for u in range(5):
        cov = scipy.objective[u] / (40 - 9) * np.linalg.inv(scipy.jacobian[u].T @ scipy.jacobian[u])
        ours = result.table.loc[u, [f"{r}_stderr" for r in RATES]].to_numpy(float)
        np.testing.assert_allclose(ours, np.sqrt(np.diag(cov)), rtol=2e-3)


def test_recipe_flags_dec_1_and_2_in_every_county_and_the_fixed_formulation_is_well_posed(
        aging_chain, census):
    with pytest.warns(IdentifiabilityWarning, match="dec 1 loss rate \\(3137 units\\)"):
        recipe = fit(aging_chain, census, RECIPE, backend="processes", workers=2,
                     progress=False)
    flags = recipe.identifiability.not_identifiable
    assert flags["dec 1 loss rate"] == flags["dec 2 loss rate"] == 3137
    assert flags["dec 3 loss rate"] > 3000 and flags["dec 6 loss rate"] == 0
    assert (recipe.table["rank"] <= 8).all()
    assert np.isnan(recipe.table["dec 4 loss rate_stderr"]).all()
    assert "no degrees of freedom" in recipe.identifiability.stderr_note
    with pytest.warns(IdentifiabilityWarning, match="1 of 3137 units"):
        fixed = fit(aging_chain, census, FIXED, backend="processes", workers=2, progress=False)
    # only Kalawao County, Hawaii (state 15, county 5) has no one in cohorts 1 and 2
    odd = fixed.table.loc[~fixed.table["dec 2 loss rate_identifiable"], ["state", "county"]]
    assert odd.to_numpy().tolist() == [[15, 5]]
    assert fixed.identifiability.full_rank == 3136


def test_ridge_pins_an_unidentified_parameter_and_says_so(aging_chain, census):
    ridge = Problem([Parameter("dec 1 loss rate", x0=0.05, ridge=1e8),
                     Parameter("dec * loss rate", x0=0.05)],
                    target_times=[2010], initial_time=2000, exclude=["dec 1"])
    subset = census.head(50)
    result = fit(aging_chain, subset, ridge, backend="serial", progress=False)
    fixed = fit(aging_chain, subset, FIXED, backend="serial", progress=False)
    assert result.table["success"].all()
    assert result.table["dec 1 loss rate_identifiable"].all()
    assert result.identifiability.penalty_only == {"dec 1 loss rate": 50}
    # an exact fit exists for any dec 1 loss rate: the ridge lands where fixing puts it
    np.testing.assert_allclose(result.table["dec 1 loss rate"], 0.05, atol=1e-9)
    np.testing.assert_allclose(result.table[RATES[1:]], fixed.table[RATES[1:]], atol=1e-7)
    assert (result.table["sse"] < 1e-3).all()  # sse leaves the penalty out


def test_written_diagnostics_round_trip(aging_chain, census, tmp_path):
    with pytest.warns(IdentifiabilityWarning):
        result = fit(aging_chain, census.head(8), RECIPE, backend="serial", progress=False)
    result.write(tmp_path)
    again = sdfit.FitResult.read(tmp_path).table
    pd.testing.assert_frame_equal(again, result.table)
    assert NULL_TOL == result.identifiability.null_tol


def test_the_normal_quantile_is_scipys():
    from scipy.special import ndtri

    from sdfit import diagnostics

    assert diagnostics.CONFIDENCE == 0.95
    assert diagnostics._NORMAL_QUANTILE == pytest.approx(ndtri(0.975), rel=1e-15)
