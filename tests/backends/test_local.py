"""The local backends; for the process pool, how a run ends when it is killed or stopped:
real processes, real signals."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sdfit
from sdfit.backends import get_backend
from sdfit.rundir import ResultsFolder

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="workers die with their parent on Linux only")

#: a run through ResultsFolder and ProcessBackend, as fit() does it: chunks 0 and 1 finish
#: and are saved; the workers then hang in chunks 2 and 3 until they are stopped
RUN = """
import faulthandler, os, signal, sys, time
faulthandler.register(signal.SIGUSR1)  # the stacks, should the test find it hung
import numpy as np
from sdfit.backends.local import ProcessBackend
from sdfit.backends.signals import Terminated, sigterm_as_interrupt
from sdfit.rundir import ResultsFolder


def chunk(shared, item):
    if item >= 2:
        os.write(1, f"worker {os.getpid()}\\n".encode())  # one write: lines never interleave
        time.sleep(3600)
    return np.full(2, float(item))


if __name__ == "__main__":
    try:
        with sigterm_as_interrupt(), ResultsFolder(sys.argv[1]) as folder, \\
                ProcessBackend(2) as backend:
            folder.begin({"model": "m"}, 2, 6, resume=False)
            for key, x in backend.map_unordered(chunk, None, ((i, i) for i in range(6))):
                folder.save_chunk(key, {"x": x})
                os.write(1, f"saved {key}\\n".encode())
    except Terminated:
        print("sdfit: terminated", file=sys.stderr)
        sys.exit(Terminated.exit_status)
    except KeyboardInterrupt:
        print("sdfit: interrupted", file=sys.stderr)
        sys.exit(130)
"""


def start_run(tmp_path: Path) -> tuple[subprocess.Popen, list[int], Path]:
    """Start RUN in a session of its own; return it once chunks 0 and 1 are saved and both
    workers hang, with the workers' pids."""
    script = tmp_path / "run.py"
    script.write_text(RUN)
    out = tmp_path / "results"
    run = subprocess.Popen([sys.executable, str(script), str(out)], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           start_new_session=True, env={
                               **os.environ, "PYTHONPATH": str(Path(sdfit.__file__).parents[1])})
    workers, saved, said = [], set(), b""
    deadline = time.monotonic() + 120
    while len(workers) < 2 or len(saved) < 2:
        if b"\n" not in said:  # read the pipe itself: a buffered reader hides lines from select
            ready, _, _ = select.select([run.stdout], [], [], deadline - time.monotonic())
            more = os.read(run.stdout.fileno(), 4096) if ready else b""
            if not more:
                os.killpg(run.pid, signal.SIGKILL)
                raise AssertionError(f"the run did not get going:\n{run.communicate()[1]}")
            said += more
            continue
        line, said = said.split(b"\n", 1)
        word, value = line.split()
        (workers.append(int(value)) if word == b"worker" else saved.add(int(value)))
    return run, workers, out


def end_session(run: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the run's session (it is its own process group), so
    that a failing test leaves nothing behind."""
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    run.wait()


def wait_until_gone(pids: list[int], timeout: float = 60) -> list[int]:
    """Wait (on pidfds, no polling) until every process in ``pids`` has ended; return those
    still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


def chunks_kept(out: Path) -> set[int]:
    with ResultsFolder(out) as folder:  # also proves the lock was released
        return folder.begin({"model": "m"}, 2, 6, resume=True)


def test_workers_die_with_a_parent_that_is_sigkilled(tmp_path):
    run, workers, out = start_run(tmp_path)
    try:
        os.kill(run.pid, signal.SIGKILL)  # the parent only, as the OOM killer would
        run.wait()
        alive = wait_until_gone(workers)
    finally:
        end_session(run)
    assert not alive, f"workers {alive} outlived their parent"
    assert chunks_kept(out) == {0, 1}


@pytest.mark.parametrize("stop, whole_group, status, message", [
    (signal.SIGTERM, False, 143, "sdfit: terminated"),  # `kill PID`
    (signal.SIGTERM, True, 143, "sdfit: terminated"),  # a service manager stopping it
    (signal.SIGINT, True, 130, "sdfit: interrupted"),  # Ctrl-C in the terminal
])
def test_sigterm_and_ctrl_c_stop_the_run_cleanly(tmp_path, stop, whole_group, status,
                                                 message):
    run, workers, out = start_run(tmp_path)
    try:
        (os.killpg if whole_group else os.kill)(run.pid, stop)
        try:
            _, stderr = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # hung: say where (faulthandler, see RUN)
            os.kill(run.pid, signal.SIGUSR1)
            os.killpg(run.pid, signal.SIGKILL)
            raise AssertionError(f"the run did not stop:\n{run.communicate()[1]}") from None
        alive = wait_until_gone(workers)
    finally:
        end_session(run)
    assert run.returncode == status
    assert stderr == message + "\n"  # no traceback, from the parent or a worker
    assert not alive, f"workers {alive} outlived the run"
    assert chunks_kept(out) == {0, 1}


def square(shared, item):
    return shared * item * item


@pytest.mark.parametrize("name", ["serial", "processes"])
def test_every_item_is_mapped_once(name):
    with get_backend(name, workers=2) as backend:
        results = dict(backend.map_unordered(square, 3, ((i, i) for i in range(20))))
    assert results == {i: 3 * i * i for i in range(20)}

