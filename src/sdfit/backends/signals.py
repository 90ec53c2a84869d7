"""How a run ends when it is stopped: SIGTERM unwinds like Ctrl-C, and local worker
processes never outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator

#: Linux's prctl option asking for a signal when the parent process dies
PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived.  A KeyboardInterrupt, so that everything unwinds as it does on
    Ctrl-C (workers stopped, chunks already saved kept); the command line exits with
    :attr:`exit_status`, as a process killed by SIGTERM would."""

    exit_status = 128 + signal.SIGTERM


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block, SIGTERM raises :class:`Terminated` in the main thread.

    Elsewhere than in the main thread (where Python runs signal handlers) this does
    nothing.  The previous handler is restored on leaving.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def die_with_parent(parent: int | None = None) -> None:
    """Make this worker process end with the process that started it.

    Called first thing in a local pool worker: it is SIGKILLed by the kernel when its
    parent dies, however that dies (Linux's ``PR_SET_PDEATHSIG``).  ``parent`` is the
    pid the worker's parent must have (sdfit's own with the ``fork`` and ``spawn``
    start methods); None with ``forkserver``, whose workers are children of the fork
    server, which itself ends with sdfit.  The worker ignores SIGINT and SIGTERM: Ctrl-C
    (and a service manager's SIGTERM) reach the whole process group, and the parent
    then stops its workers itself, so that the user reads one message, not one
    traceback per worker.  Elsewhere than on Linux only the signals are set: the
    kernel has no such request.
    """
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    parent = parent or os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)
