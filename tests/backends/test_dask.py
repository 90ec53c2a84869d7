"""The dask backend against real `dask scheduler` and `dask worker` processes, and against
addresses and servers that are not a Dask scheduler."""

from __future__ import annotations

import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DaskCluster
from sdfit import SdfitError, SpecError
from sdfit.backends import get_backend
from sdfit.calibrate import fit
from sdfit.cli import main
from sdfit.datasets import aging_chain_path
from sdfit.problem import Parameter, Problem
from sdfit.results import FitResult
from sdfit.rundir import ResultsFolder

pytestmark = pytest.mark.cluster

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])


@pytest.fixture(scope="module")
def counties(census):
    return census.head(300)


@pytest.fixture(scope="module")
def reference(aging_chain, counties):
    """The same fit on the local process pool, with the same chunking."""
    return fit(aging_chain, counties, RECIPE, backend="processes", workers=2, chunk_size=25,
               progress=False).table


def test_cluster_fit_equals_the_process_pool(dask_cluster, aging_chain, counties, reference):
    from distributed import Client

    with Client(dask_cluster.address) as client:
        result = fit(aging_chain, counties, RECIPE, backend=client, chunk_size=25,
                     progress=False)
        assert client.status == "running"  # a client passed in is left open
    assert result.run.backend == "dask" and result.run.workers == 2
    assert result.table["success"].all()
    pd.testing.assert_frame_equal(result.table, reference, check_exact=False, rtol=1e-12,
                                  atol=0)


def test_local_cluster_without_a_scheduler(aging_chain, counties, reference):
    result = fit(aging_chain, counties.head(50), RECIPE, backend="dask", workers=2,
                 chunk_size=25, progress=False)
    pd.testing.assert_frame_equal(result.table, reference.head(50), check_exact=False,
                                  rtol=1e-12, atol=0)


class CountedPayload:
    """A shared payload that counts how often this process pickles it, and records in a
    file each process that unpickles it."""

    pickled = 0

    def __init__(self, log):
        self.log = str(log)

    def __getstate__(self):
        CountedPayload.pickled += 1
        return {"log": self.log}

    def __setstate__(self, state):
        self.log = state["log"]
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()}\n")


def double(payload: CountedPayload, item: int) -> int:
    return 2 * item


@pytest.mark.parametrize("backend", ["dask", "processes"])
def test_shared_payload_travels_once_per_worker_not_per_chunk(dask_cluster, tmp_path, backend,
                                                               monkeypatch):
    monkeypatch.setattr(CountedPayload, "pickled", 0)
    log = tmp_path / "unpickled.txt"
    options = {"scheduler": dask_cluster.address} if backend == "dask" else {"workers": 2}
    with get_backend(backend, **options) as runner:
        results = dict(runner.map_unordered(double, CountedPayload(log),
                                            ((i, i) for i in range(40))))
    assert results == {i: 2 * i for i in range(40)}
    unpickled = log.read_text().split() if log.exists() else []
    if backend == "dask":
        # pickled once by the client and broadcast; each worker holds it, and Dask may
        # fetch it to a worker a second time when a chunk races the broadcast
        assert CountedPayload.pickled == 1
        assert len(set(unpickled)) == 2 and len(unpickled) <= 4, unpickled
    else:
        # forked pool workers inherit it; other start methods pickle it once per worker
        assert CountedPayload.pickled <= 2 and len(unpickled) <= 2, unpickled


def test_without_the_extra_the_dask_backend_is_one_sentence(monkeypatch, tmp_path, capsys,
                                                             census):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(SpecError, match=r"needs Dask distributed: pip install 'sdfit\[dask\]'"):
        get_backend("dask")
    data = tmp_path / "counties.csv"
    census.head(5).to_csv(data)
    out = tmp_path / "out"
    code = main(["fit", "--model", str(aging_chain_path()), "--data", str(data),
                 "--param", "dec * loss rate=0.05", "--initial-time", "2000",
                 "--target-times", "2010", "--exclude", "dec 1", "--backend", "dask",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sdfit[dask]" in err
    assert not out.exists()


def test_unreachable_scheduler_is_one_sentence():
    from conftest import _free_port

    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(SpecError, match=f"Could not connect to the Dask scheduler at '{address}'"):
        get_backend("dask", scheduler=address, timeout=2)


@pytest.mark.slow
def test_a_worker_killed_midway_loses_no_unit(dask_cluster, census, tmp_path):
    """SIGKILL one of the two workers (nanny and all) while the CLI fits through the
    cluster: its chunks run again on the other worker and every unit's result equals
    the undisturbed run's."""
    data = tmp_path / "counties.csv"
    census.to_csv(data)
    out = tmp_path / "out"
    # the run pauses after 15 saved chunks (tests/pausing.py): the worker is killed while
    # it holds chunks, at a known point, without watching the clock
    command = [sys.executable, str(Path(__file__).parents[1] / "pausing.py"), "fit",
               "us-counties-recipe", "--data", str(data), "--backend", "pausing",
               "--chunk-size", "16", "--out", str(out), "--quiet", "--no-figures"]
    run = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "SDFIT_PAUSE_BACKEND": "dask",
                                "SDFIT_PAUSE_SCHEDULER": dask_cluster.address,
                                "SDFIT_PAUSE_AFTER": "15"})
    try:
        assert run.stdout.readline() == "paused\n", run.stderr.read()
        done = 15
        lost = dask_cluster.tasks_on_worker(0)
        dask_cluster.kill_worker(0)
        assert lost > 0, "the killed worker held no chunk"
        stdout, stderr = run.communicate("go\n", timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
        dask_cluster.start_worker(0)
        dask_cluster.wait_for_workers()
    assert run.returncode == 0, stderr
    print(f"killed worker w0 holding {lost} chunk task(s) after {done} of 197 chunks were "
          f"saved; the fit said:\n{stdout}")
    assert "Fitted 3137 units: 3137 succeeded, 0 failed." in stdout
    table = FitResult.read(out).table
    undisturbed = fit(aging_chain_path(), census, RECIPE, backend="processes", workers=2,
                      chunk_size=16, progress=False).table
    assert not table.duplicated(["state", "county"]).any()
    pd.testing.assert_frame_equal(table, undisturbed, check_exact=False, rtol=1e-12, atol=0)


# -- every wait on the scheduler is bounded, and ends in one sentence ----------------------
@pytest.mark.parametrize("address, says", [
    ("foo", "Scheduler address 'foo' is malformed (missing port number in address 'foo'); "
            "write it as tcp://HOST:PORT."),
    ("tcp://", "Scheduler address 'tcp://' is malformed (missing port number"),
    ("tcp://10.0.0.5:notaport", "Scheduler address 'tcp://10.0.0.5:notaport' is malformed ("),
    ("tcp://10.0.0.5:99999", "is malformed (port 99999 is out of range)"),
    ("http://10.0.0.5:8786", "is malformed (unknown scheme 'http', not one of"),
    ("tcp://[::1", "Scheduler address 'tcp://[::1' is malformed (invalid address"),
])
def test_a_malformed_scheduler_address_is_one_sentence(address, says):
    pytest.importorskip("distributed")
    with pytest.raises(SpecError, match=re.escape(says)):
        get_backend("dask", scheduler=address)


def test_a_port_that_accepts_tcp_but_is_not_dask_is_one_sentence():
    pytest.importorskip("distributed")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # the kernel accepts connections; nothing ever answers
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(SpecError) as refused:
            get_backend("dask", scheduler=address, timeout=1)
    assert str(refused.value) == (f"Could not connect to the Dask scheduler at '{address}': "
                                  "no answer within 1 s.")


class WebPage(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1024)
        self.request.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nnot a scheduler")


def test_a_server_that_answers_something_else_is_one_sentence():
    pytest.importorskip("distributed")
    with socketserver.TCPServer(("127.0.0.1", 0), WebPage) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        try:
            with pytest.raises(SpecError) as refused:
                get_backend("dask", scheduler=address, timeout=5)
        finally:
            server.shutdown()
            thread.join()
    assert str(refused.value) == (f"Could not connect to the Dask scheduler at '{address}': "
                                  "the server there does not answer as a Dask scheduler.")


@pytest.fixture
def own_cluster(tmp_path):
    """A scheduler and one worker of this test's own, as the test kills or freezes them."""
    pytest.importorskip("distributed")
    cluster = DaskCluster(tmp_path, n_workers=1)
    try:
        cluster.start_worker(0)
        cluster.wait_for_workers()
        yield cluster
    finally:
        cluster.scheduler.send_signal(signal.SIGCONT)  # should it have been frozen
        cluster.stop()


def first_two_only(shared, item: int) -> int:
    """Chunks 0 and 1 finish; any other is still under way when the scheduler goes (Dask
    runs tasks of one client in the order they were submitted)."""
    if item >= 2:
        time.sleep(600)
    return item


@pytest.mark.slow
@pytest.mark.parametrize("fault, reason", [(signal.SIGKILL, "scheduler connection lost"),
                                           (signal.SIGSTOP, "no answer within 3 s")])
def test_a_scheduler_lost_mid_run_is_one_sentence_and_the_chunks_are_kept(own_cluster, tmp_path,
                                                                           fault, reason):
    out = tmp_path / "results"
    prints = {"model": "m"}
    with pytest.raises(SdfitError) as lost, ResultsFolder(out) as folder, \
            get_backend("dask", scheduler=own_cluster.address, timeout=3) as backend:
        folder.begin(prints, 1, 6, resume=False)
        for key, value in backend.map_unordered(first_two_only, None,
                                                ((i, i) for i in range(6))):
            folder.save_chunk(key, {"x": np.array([value])})
            if key == 1:
                os.killpg(own_cluster.scheduler.pid, fault)
    assert str(lost.value) == (
        f"Lost the Dask scheduler at '{own_cluster.address}' during the fit ({reason}); the "
        "chunks already saved in the results folder are kept: run again with --resume once "
        "it is back.")
    with ResultsFolder(out) as folder:
        assert folder.begin(prints, 1, 6, resume=True) == {0, 1}


@pytest.mark.slow
def test_a_finished_chunk_whose_scheduler_froze_is_one_sentence_not_a_hang(own_cluster):
    """A chunk can finish just before the scheduler goes: its result, fetched through the
    scheduler, must not be waited for forever (a race the test above met once)."""
    from distributed import wait

    with get_backend("dask", scheduler=own_cluster.address, timeout=3) as backend:
        future = backend.client.submit(int, 7)
        wait([future])
        os.killpg(own_cluster.scheduler.pid, signal.SIGSTOP)
        with pytest.raises(SdfitError, match="no answer within 3 s"):
            backend._result(future, 0)


@pytest.mark.slow
def test_a_scheduler_without_workers_is_one_sentence(tmp_path):
    pytest.importorskip("distributed")
    from distributed import Client

    cluster = DaskCluster(tmp_path, n_workers=0)
    try:
        Client(cluster.address, timeout=60).close()  # the scheduler is up
        with get_backend("dask", scheduler=cluster.address, timeout=2) as backend, \
                pytest.raises(SdfitError) as idle:
            list(backend.map_unordered(first_two_only, None, [(0, 0)]))
    finally:
        cluster.stop()
    assert str(idle.value) == (f"The Dask cluster at '{cluster.address}' took no work: No "
                               "valid workers found.")
