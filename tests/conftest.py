"""Shared fixtures.  Data from ../shared/data is read where SDFIT_DATA points; outside CI
the tests that need it skip with a message, in CI (CI=true) they fail instead."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sdfit
from sdfit.data import read_panel
from sdfit.datasets import aging_chain_path

CENSUS = "census/Males by decade and county.csv"

# README's command gives a relative SDFIT_DATA (../shared/data); tests that change folder
# (README's blocks run in a folder of their own) and PySD's model builds must still find it
if os.environ.get("SDFIT_DATA"):
    os.environ["SDFIT_DATA"] = str(Path(os.environ["SDFIT_DATA"]).resolve())


def _shared_data() -> Path:
    root = os.environ.get("SDFIT_DATA")
    if root and (Path(root) / CENSUS).is_file():
        return Path(root)
    message = ("set SDFIT_DATA to the shared data folder (e.g. SDFIT_DATA=../shared/data) "
               "to run the tests that use the census data, original model and test-models")
    if os.environ.get("CI"):
        pytest.fail(f"SDFIT_DATA is required in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_data()


@pytest.fixture(scope="session")
def census_path(shared_data) -> Path:
    return shared_data / CENSUS


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    """The suite runs on two workers (pytest-xdist, ``--dist loadgroup``): a file's tests
    stay together on one worker, so that its module fixtures are made once, and every file
    that reads the test-models suite joins one group, so that the suite is run once."""
    suite_files = {item.module.__name__ for item in items
                   if "test_models" in getattr(item, "fixturenames", ())}
    for item in items:
        module = item.module.__name__
        group = "test-models" if module in suite_files else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def census(census_path):
    return read_panel(census_path)


@pytest.fixture(scope="session")
def original_model_path(shared_data) -> Path:
    return shared_data / "models" / "Aging_Chain.mdl"


@pytest.fixture(scope="session")
def test_models(shared_data):
    """Every folder of the test-models suite, run once per session by both engines."""
    from suite import run_suite

    return run_suite(shared_data / "test-models" / "tests")


@pytest.fixture(scope="session")
def aging_chain():
    return sdfit.load_model(aging_chain_path())


# -- a real Dask cluster: one scheduler and two worker processes on 127.0.0.1 ------------
class DaskCluster:
    """`dask scheduler` and `dask worker` processes, each in its own process group so that
    a worker can be killed whole (nanny and worker) and nothing outlives the session."""

    def __init__(self, folder: Path, n_workers: int = 2):
        self.folder = folder
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        # the workers import this very sdfit (and the test modules, for test-only payloads)
        tests = Path(__file__).parent
        paths = [str(Path(sdfit.__file__).parents[1]), str(tests), str(tests / "backends")]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port",
                                     str(self.port), "--no-dashboard",
                                     "--idle-timeout", "1800s")  # a net should we be killed
        self.workers: list[subprocess.Popen | None] = [None] * n_workers

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:  # the child keeps its own copy
            return subprocess.Popen([sys.executable, "-m", "dask", *args], env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=self.folder)

    def start_worker(self, i: int) -> None:
        self.workers[i] = self._spawn(
            f"worker-{i}", "worker", self.address, "--name", f"w{i}", "--nthreads", "1",
            "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout",
            "60s", "--local-directory", str(self.folder / f"w{i}"))

    def kill_worker(self, i: int) -> None:
        """SIGKILL the whole `dask worker` process group: a machine lost mid-run.  Returns
        once the scheduler has removed it, so that a client asking for the results it held
        learns they are lost instead of retrying the dead address until distributed's
        30 s connect timeout (which is what a real client sometimes pays)."""
        from distributed import Client

        _kill_group(self.workers[i], signal.SIGKILL)
        self.workers[i].wait()
        self.workers[i] = None
        with Client(self.address, timeout=30) as client:
            # an event on the scheduler, polled: it has no blocking "worker gone" call
            deadline = time.monotonic() + 30
            while f"w{i}" in {w["name"] for w in client.scheduler_info()["workers"].values()}:
                assert time.monotonic() < deadline, f"the scheduler never removed w{i}"
                time.sleep(0.02)

    def tasks_on_worker(self, i: int) -> int:
        """Tasks of worker ``i`` that losing it would lose: running or queued there, or
        finished and held in its memory (not yet gathered)."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            names = {info["name"]: address
                     for address, info in client.scheduler_info()["workers"].items()}
            address = names[f"w{i}"]
            return (len(client.processing([address])[address])
                    + len(client.has_what([address])[address]))

    def wait_for_workers(self, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(len(self.workers), timeout=timeout)

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            _kill_group(process, signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            if process is not None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _kill_group(process, signal.SIGKILL)
                    process.wait()

    def log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.folder.glob("*.log")))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_group(process: subprocess.Popen | None, sig: int) -> None:
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            process.wait()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, started once and always stopped."""
    pytest.importorskip("distributed", reason="the dask tests need pip install 'sdfit[dask]'")
    cluster = DaskCluster(tmp_path_factory.mktemp("dask-cluster"))
    try:
        for i in range(len(cluster.workers)):
            cluster.start_worker(i)
        try:
            cluster.wait_for_workers()
        except (OSError, TimeoutError) as error:
            pytest.fail(f"the Dask cluster did not start ({error}):\n{cluster.log()}")
        yield cluster
    finally:
        cluster.stop()


# -- a fit of some US counties, for the figures and the report ---------------------------
# Los Angeles (the largest county), Kalawao (Hawaii: a parameter not identifiable) and
# Denali (Alaska: a unit the county shapefile has no shape for), and the first 30 others
COUNTIES = [(6, 37), (15, 5), (2, 68)]


@pytest.fixture(scope="session")
def county_fit(census, aging_chain):
    """(FitResult, Panel) of the bundled `us-counties` problem on 33 counties."""
    import numpy as np
    import pandas as pd

    rows = census.units.get_indexer(pd.MultiIndex.from_tuples(COUNTIES))
    panel = census.take(np.unique(np.concatenate([np.arange(30), rows])))
    spec = sdfit.load_spec("us-counties")
    return sdfit.fit(aging_chain, panel, spec.problem, backend="serial", progress=False), panel


@pytest.fixture(scope="session")
def county_stories(county_fit):
    """UnitStory of every unit of ``county_fit`` (sdfit.stories: the bundled aging chain
    simulated again with each unit's fitted parameters), by unit key."""
    from sdfit.stories import unit_stories

    return unit_stories(county_fit[0])


@pytest.fixture(scope="session")
def county_shapefile(shared_data) -> Path:
    return shared_data / "census" / "US_County_2000_2004.shp"
