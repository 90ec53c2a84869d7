"""Random functions: Vensim's distributions (and PySD's, for the four it has), one
reproducible stream per unit, common random numbers for rows of the same unit."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pysd
import pytest
from scipy import stats

import sdfit
from sdfit.model import PysdModel
from sdfit.model.runtime.noise import Noise

N = 20_000  # draws per distribution: one per stream


def _cdf_of_truncated(base, low, high, shift, stretch):
    """CDF of shift + stretch * base truncated to [low, high] (Vensim's rule)."""
    lo, hi = base.cdf((low - shift) / stretch), base.cdf((high - shift) / stretch)
    return lambda z: np.clip((base.cdf((z - shift) / stretch) - lo) / (hi - lo), 0, 1)


@pytest.mark.parametrize("name, draw, cdf", [
    ("uniform", lambda n: n.uniform(1, (), -2.0, 3.0), stats.uniform(-2, 5).cdf),
    ("normal", lambda n: n.normal(2, (), -1.0, 2.0, 0.5, 1.5),
     stats.truncnorm(-1.0, 1.0, loc=0.5, scale=1.5).cdf),
    ("exponential", lambda n: n.exponential(3, (), 1.0, 6.0, 0.5, 2.0),
     stats.truncexpon((6.0 - 1.0) / 2.0, loc=1.0, scale=2.0).cdf),
    ("gamma", lambda n: n.gamma(4, (), 0.0, 8.0, 2.5, 0.5, 1.5),
     _cdf_of_truncated(stats.gamma(2.5), 0.0, 8.0, 0.5, 1.5)),
    ("beta", lambda n: n.beta(5, (), 0.0, 9.0, 2.0, 3.0, 1.0, 10.0),
     _cdf_of_truncated(stats.beta(2.0, 3.0), 0.0, 9.0, 1.0, 10.0)),
    ("weibull", lambda n: n.weibull(6, (), -np.inf, np.inf, 1.7, 0.0, 2.0),
     _cdf_of_truncated(stats.weibull_min(1.7, scale=1 / stats.weibull_min(1.7).mean()),
                       -np.inf, np.inf, 0.0, 2.0)),
    ("triangular", lambda n: n.triangular(7, (), -np.inf, 4.0, 1.0, 2.0, 5.0),
     _cdf_of_truncated(stats.triang(1 / 4, loc=1.0, scale=4.0), -np.inf, 4.0, 0.0, 1.0)),
])
def test_continuous_draws_follow_their_distribution(name, draw, cdf):
    values = draw(Noise(7, np.arange(N), N))
    assert values.shape == (N,)
    assert stats.kstest(values, cdf).pvalue > 1e-3, name


@pytest.mark.parametrize("name, draw, pmf, support", [
    ("poisson", lambda n: n.poisson(1, (), 1.0, 9.0, 3.5, 0.0, 1.0),
     stats.poisson(3.5).pmf, np.arange(1, 10)),
    ("binomial", lambda n: n.binomial(2, (), -np.inf, np.inf, 0.3, 12, 0.0, 1.0),
     stats.binom(12, 0.3).pmf, np.arange(0, 13)),
    ("negative binomial", lambda n: n.negative_binomial(3, (), -np.inf, 12.0, 0.4, 3, 0.0,
                                                        1.0),
     lambda k: stats.nbinom(3, 0.4).pmf(k - 3), np.arange(3, 13)),
])
def test_integer_draws_follow_their_distribution(name, draw, pmf, support):
    values = draw(Noise(11, np.arange(N), N))
    assert np.all(np.isin(values, support)), name  # integers inside the truncation
    expected = pmf(support) / pmf(support).sum() * N
    observed = np.array([(values == k).sum() for k in support])
    assert stats.chisquare(observed, expected).pvalue > 1e-3, name


def test_stretch_and_shift_of_integer_draws():
    base = Noise(3, np.arange(N), N).poisson(1, (), -np.inf, np.inf, 2.0, 0.0, 1.0)
    scaled = Noise(3, np.arange(N), N).poisson(1, (), -np.inf, np.inf, 2.0, 10.0, 0.5)
    np.testing.assert_array_equal(scaled, 10.0 + 0.5 * base)


def test_draws_depend_only_on_seed_stream_site_and_step():
    streams = np.array([4, 9, 4, 2])
    noise = Noise(5, streams, 4)
    first = noise.uniform01(1, (3,))
    assert first.shape == (4, 3)
    np.testing.assert_array_equal(first[0], first[2])  # the same unit: the same numbers
    assert len(np.unique(first)) == 9  # elements, units and sites independent
    alone = Noise(5, [9], 1).uniform01(1, (3,))
    np.testing.assert_array_equal(alone[0], first[1])  # whoever shares the batch
    assert not np.array_equal(noise.uniform01(2, (3,)), first)  # another call site
    noise.step += 1
    assert not np.array_equal(noise.uniform01(1, (3,)), first)  # another step
    assert not np.array_equal(Noise(6, streams, 4).uniform01(1, (3,)), first)  # another seed


MODEL = """{UTF-8}
dim: a, b, c
~~|
sigma = 0.2
~~|
shock[dim] = RANDOM NORMAL(-5, 5, 0, sigma, 0)
~~|
arrivals = RANDOM POISSON(0, 100, 3, 0, 1, 0)
~~|
level[dim] = INTEG(shock[dim] + arrivals, 0)
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 5
~~|
TIME STEP = 0.5
~~|
SAVEPER = TIME STEP
~~|
"""


def test_a_model_gives_rows_of_a_unit_common_random_numbers(tmp_path):
    path = tmp_path / "noisy.mdl"
    path.write_text(MODEL)
    model = sdfit.load_model(path)
    assert model.random
    record = (model.variable("level").ident,)
    sigma = model.variable("sigma").ident
    _, (level,) = model.execute(4, {sigma: np.array([0.2, 0.2, 0.3, 0.2])}, record,
                                streams=np.array([7, 7, 7, 8]), seed=1)
    assert level.shape == (4, 11, 3)
    np.testing.assert_array_equal(level[0], level[1])  # a Jacobian column's base row
    assert not np.array_equal(level[0], level[3])  # another unit
    assert len(np.unique(level[0, -1])) == 3  # each element its own draws
    # the shocks scale with sigma (the same underlying draws): a smooth objective
    arrivals = model.execute(1, {}, (model.variable("arrivals").ident,), streams=[7], seed=1)
    shocks = level[:, 1:] - level[:, :-1] - 0.5 * arrivals[1][0][:, :-1, None]
    np.testing.assert_allclose(shocks[2], shocks[0] * 1.5, rtol=1e-12)
    again = model.execute(2, {}, record, streams=np.array([7, 8]), seed=1)[1][0]
    np.testing.assert_array_equal(again, level[[0, 3]])
    other = model.execute(2, {}, record, streams=np.array([7, 8]), seed=2)[1][0]
    assert not np.array_equal(other, again)


ZERO_NOISE = """{UTF-8}
u = RANDOM UNIFORM(2, 2, 0)
~~|
n = RANDOM NORMAL(0, 10, 3.5, 0, 0)
~~|
e = RANDOM EXPONENTIAL(1, 10, 0.5, 0, 0)
~~|
stock = INTEG(u + n * e - stock / 4, 1)
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 8
~~|
TIME STEP = 0.25
~~|
SAVEPER = 1
~~|
"""


def test_where_the_noise_is_zero_the_result_equals_pysds(tmp_path):
    path = tmp_path / "quiet.mdl"
    path.write_text(ZERO_NOISE)
    ours = sdfit.load_model(path).run(3).to_frame(1)
    shutil.copytree(tmp_path, tmp_path / "pysd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pysd.read_vensim(str(tmp_path / "pysd" / "quiet.mdl")).run()
    assert list(ours.index) == list(theirs.index)
    for column in ("u", "n", "e", "stock"):
        np.testing.assert_array_equal(ours[column], theirs[column].astype(float), column)


def test_pysd_engine_seeds_each_unit_from_its_stream(tmp_path):
    path = tmp_path / "noisy.mdl"
    path.write_text(MODEL.replace("shock[dim]", "shock").replace("level[dim]", "level")
                    .replace("RANDOM POISSON(0, 100, 3, 0, 1, 0)", "RANDOM UNIFORM(0, 6, 0)"))
    engine = PysdModel.load(path)
    assert engine.random
    record = (engine.variable("level").ident,)
    _, (level,) = engine.execute(3, {}, record, streams=np.array([3, 3, 4]), seed=9)
    np.testing.assert_array_equal(level[0], level[1])
    assert not np.array_equal(level[0], level[2])
    _, (again,) = engine.execute(1, {}, record, streams=[4], seed=9)
    np.testing.assert_array_equal(again[0], level[2])
