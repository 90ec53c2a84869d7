"""Every documented combination of engine × shared parameters × resume × backend runs, from
the Python API and from the command line, and gives the same parameters.

Units are independent unless a parameter is shared: then they form one joint problem
solved in process, whatever the backend (the run record says so).  Resuming continues a
run interrupted after its first chunk; the backends are the local ones and a real Dask
cluster (marker ``cluster``)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import sdfit
from sdfit.backends import get_backend
from sdfit.backends.base import Backend
from sdfit.cli import main
from sdfit.datasets import aging_chain, aging_chain_path, synthetic_panel
from sdfit.demo import PLANTED
from sdfit.files import read_csv

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sdfit.FallbackWarning")]
RATES = list(PLANTED)
CHUNK = 1  # 3 units: 3 chunks (PySD's runtime costs about 5 ms a run)
PROBLEM = sdfit.Problem([sdfit.Parameter("dec 1 loss rate", fixed=0.05),
                         sdfit.Parameter("dec * loss rate", x0=0.05)],
                        initial_time=2000, target_times=[2005, 2010], exclude=["dec 1"])
SHARED = sdfit.Problem([sdfit.Parameter("dec 9 loss rate", x0=0.05, shared=True),
                        *PROBLEM.parameters], initial_time=2000, target_times=[2005, 2010],
                       exclude=["dec 1"])


class Crashing(Backend):
    """A backend that stops (as a killed run would) after its first finished chunk."""

    name = "crashing"

    def __init__(self, inner: Backend):
        self.inner, self.workers = inner, inner.workers

    def map_unordered(self, func, shared, items):
        for count, result in enumerate(self.inner.map_unordered(func, shared, items)):
            if count == 1:
                raise KeyboardInterrupt("a run stopped after its first chunk")
            yield result

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    planted = PLANTED | {"dec 1 loss rate": (0.05, 0.05)}
    data, _ = synthetic_panel(aging_chain(), 3, planted,
                              {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)},
                              [2005, 2010], seed=11)
    return data.to_csv(tmp_path_factory.mktemp("combinations") / "panel.csv")


@pytest.fixture(scope="module")
def reference(panel):
    """The serial batched fit every combination must reproduce."""
    return sdfit.fit(aging_chain_path(), sdfit.read_panel(panel), PROBLEM,
                     backend="serial", engine="batched", progress=False).table[RATES]


def backend_of(name: str, cluster) -> dict:
    if name == "dask":
        return {"backend": "dask", "scheduler": cluster.address}
    return {"backend": name}


def api_fit(panel, engine, backend, resume, out, cluster):
    options = backend_of(backend, cluster)
    if resume:  # a run interrupted after its first chunk, then resumed
        api_interrupted(panel, engine, backend, out, cluster)
    return sdfit.fit(aging_chain_path(), sdfit.read_panel(panel), PROBLEM,
                     engine=engine, chunk_size=CHUNK, progress=False, out=out, resume=resume,
                     **options)


def cli_fit(panel, engine, backend, resume, out, cluster, capsys):
    flags = ["fit", "--model", str(aging_chain_path()), "--data", str(panel),
             "--initial-time", "2000", "--target-times", "2005", "2010", "--exclude", "dec 1",
             "--param", "dec * loss rate=0.05", "--fixed", "dec 1 loss rate=0.05",
             "--engine", engine, "--chunk-size", str(CHUNK), "--out", str(out), "-q",
             "--no-figures", "--backend", backend]
    if backend == "dask":
        flags += ["--scheduler", cluster.address]
    if resume:  # the same run interrupted after its first chunk, through the API
        api_interrupted(panel, engine, backend, out, cluster)
        flags.append("--resume")
    assert main(flags) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    if resume:
        assert "Resumed an interrupted run: 1 of 3 chunks were already done." in said
    return read_csv(out / "params.csv")


def api_interrupted(panel, engine, backend, out, cluster):
    options = backend_of(backend, cluster)
    inner = get_backend(options["backend"], workers=2,
                        **({"scheduler": options["scheduler"]} if backend == "dask" else {}))
    with pytest.raises(KeyboardInterrupt):
        sdfit.fit(aging_chain_path(), sdfit.read_panel(panel), PROBLEM,
                  backend=Crashing(inner), engine=engine, chunk_size=CHUNK, progress=False,
                  out=out)
    inner.close()


COMBINATIONS = [pytest.param(engine, backend, resume,
                             marks=[pytest.mark.cluster] if backend == "dask" else [],
                             id=f"{engine}-{backend}-{'resume' if resume else 'fresh'}")
                for engine, backend, resume in itertools.product(
                    ("batched", "pysd"), ("serial", "processes", "dask"), (False, True))]


@pytest.fixture
def cluster(request):
    if "dask" in request.node.name:
        return request.getfixturevalue("dask_cluster")
    return None


@pytest.mark.parametrize("engine, backend, resume", COMBINATIONS)
def test_api_and_command_line_agree_in_every_combination(panel, reference, engine, backend,
                                                         resume, cluster, tmp_path, capsys):
    result = api_fit(panel, engine, backend, resume, tmp_path / "api", cluster)
    assert result.run.engine == engine and result.run.backend == backend
    assert result.run.resumed_chunks == (1 if resume else 0) and result.run.chunks == 3
    exact = engine == "batched"  # PySD's runtime with SciPy's solver: the same optimum
    tolerance = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-6, "atol": 1e-9}
    np.testing.assert_allclose(result.table[RATES], reference, **tolerance)
    table = cli_fit(panel, engine, backend, resume, tmp_path / "cli", cluster, capsys)
    np.testing.assert_allclose(table[RATES], reference, **tolerance)


@pytest.mark.parametrize("engine, backend", [("batched", "serial"), ("batched", "processes"),
                                             ("pysd", "processes")])
def test_shared_parameters_from_the_api_and_the_command_line(panel, engine, backend, tmp_path,
                                                             capsys):
    result = sdfit.fit(aging_chain_path(), sdfit.read_panel(panel), SHARED, engine=engine,
                       backend=backend, progress=False)
    assert result.run.backend == "joint (in process)" and result.run.engine == engine
    assert result.table["dec 9 loss rate"].nunique() == 1 and result.table["success"].all()
    flags = ["fit", "--model", str(aging_chain_path()), "--data", str(panel),
             "--initial-time", "2000", "--target-times", "2005", "2010", "--exclude", "dec 1",
             "--param", "dec * loss rate=0.05", "--fixed", "dec 1 loss rate=0.05",
             "--shared", "dec 9 loss rate", "--engine", engine, "--backend", backend,
             "--out", str(tmp_path / "cli"), "-q", "--no-figures"]
    assert main(flags) == 0, capsys.readouterr().err
    assert "(joint (in process), 1 worker)" in capsys.readouterr().out
    table = read_csv(tmp_path / "cli" / "params.csv")
    pd.testing.assert_series_equal(table["dec 9 loss rate"], result.table["dec 9 loss rate"],
                                   check_exact=False, rtol=1e-9)
