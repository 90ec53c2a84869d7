"""Backends on this machine: in the calling process, or in a pool of processes."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .base import Backend

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
    """A pool of local worker processes (default: one per core)."""

    name = "processes"

    def __init__(self, workers: int | None = None):
        super().__init__(workers)
        self._pool: cf.ProcessPoolExecutor | None = None

    def map_unordered(self, func: Callable[[Any, Any], Any], shared: Any,
                      items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        # the shared payload is pickled once per worker through the initializer
        self.close()
        self._pool = cf.ProcessPoolExecutor(self.workers, initializer=_receive,
                                            initargs=(shared,))
        items = iter(items)
        running: dict[cf.Future, int] = {}

        def submit(count: int) -> None:
            for _, (key, item) in zip(range(count), items, strict=False):
                running[self._pool.submit(_call, func, item)] = key

        # a bounded number of chunks in flight: memory does not grow with the unit count
        submit(self.workers * (1 + QUEUED_PER_WORKER))
        try:
            while running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
                    submit(1)
        finally:
            for future in running:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_SHARED: Any = None


def _receive(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _call(func: Callable[[Any, Any], Any], item: Any) -> Any:
    return func(_SHARED, item)
