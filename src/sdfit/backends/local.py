"""Backends on this machine: in the calling process, or in a pool of processes."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .base import Backend
from .signals import die_with_parent

#: chunks queued per worker beyond the one it runs, so that no worker waits for work
QUEUED_PER_WORKER = 2


class SerialBackend(Backend):
    """Everything in the calling process: simplest to debug and profile."""

    name = "serial"

    def __init__(self, workers: int | None = None):
        super().__init__(1)

    def map_unordered(self, func, shared, items):
        for key, item in items:
            yield key, func(shared, item)


class ProcessBackend(Backend):
    """A pool of local worker processes (default: one per core).  Workers die with the
    process that started them (see :func:`~sdfit.backends.signals.die_with_parent`), and
    are killed at once when the run stops early (an error, Ctrl-C, SIGTERM)."""

    name = "processes"

    def __init__(self, workers: int | None = None):
        super().__init__(workers)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._running: dict[cf.Future, int] = {}

    def map_unordered(self, func: Callable[[Any, Any], Any], shared: Any,
                      items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        # the shared payload is pickled once per worker through the initializer
        self.close()
        context = multiprocessing.get_context()
        parent = None if context.get_start_method() == "forkserver" else os.getpid()
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=context,
                                            initializer=_start_worker,
                                            initargs=(shared, parent))
        items = iter(items)
        running = self._running = {}
        # finished futures arrive here, put by the pool's own thread; waiting on this queue
        # can be interrupted (Ctrl-C, SIGTERM) without leaving a lock held, which
        # concurrent.futures.wait cannot promise (it takes one lock per future in a loop)
        finished: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()

        def submit(count: int) -> None:
            for _, (key, item) in zip(range(count), items, strict=False):
                future = self._pool.submit(_call, func, item)
                running[future] = key
                future.add_done_callback(finished.put)

        # a bounded number of chunks in flight: memory does not grow with the unit count
        submit(self.workers * (1 + QUEUED_PER_WORKER))
        try:
            while running:
                future = finished.get()
                yield running.pop(future), future.result()
                submit(1)
        finally:
            if running:  # stopped early: do not wait for the chunks under way
                self.close()

    def close(self) -> None:
        if self._pool is None:
            return
        if self._running:
            # ProcessPoolExecutor cannot stop running tasks before Python 3.14
            kill = getattr(self._pool, "kill_workers", None)
            if kill is not None:
                kill()
            else:
                for process in list((self._pool._processes or {}).values()):
                    process.kill()
            self._running = {}
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None


_SHARED: Any = None


def _start_worker(shared: Any, parent: int | None) -> None:
    global _SHARED
    die_with_parent(parent)
    _SHARED = shared


def _call(func: Callable[[Any, Any], Any], item: Any) -> Any:
    return func(_SHARED, item)
