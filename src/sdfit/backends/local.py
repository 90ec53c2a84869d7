"""Backends on this machine: in the calling process, or in a pool of processes."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .base import Backend


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
        futures = {self._pool.submit(_call, func, item): key for key, item in items}
        try:
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
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
