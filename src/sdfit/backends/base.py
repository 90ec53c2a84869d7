"""Backends run one function over chunks of units: in process, in local processes, on Dask.

A backend has one required method, :meth:`Backend.map_unordered`.  The
``shared`` argument (the compiled model and the resolved problem) travels to
each worker once, not once per chunk.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..exceptions import SpecError
from ..names import did_you_mean


class Backend(abc.ABC):
    """Runs ``func(shared, item)`` for many items, possibly in parallel."""

    name: str = ""

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise SpecError(f"The number of workers must be at least 1; got {workers}.")
        self.workers = workers or os.cpu_count() or 1

    @abc.abstractmethod
    def map_unordered(self, func: Callable[[Any, Any], Any], shared: Any,
                      items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """Yield ``(key, func(shared, item))`` for every ``(key, item)`` as each finishes."""

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing
        """Release workers; the backend is not used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: name -> "module:Class"; optional backends are imported only when chosen.
BACKENDS = {
    "serial": "sdfit.backends.local:SerialBackend",
    "processes": "sdfit.backends.local:ProcessBackend",
    "dask": "sdfit.backends.dask:DaskBackend",
}


def register_backend(name: str, target: str) -> None:
    """Make ``"module:Class"`` available as backend ``name``."""
    BACKENDS[name] = target


def get_backend(name: str, **options) -> Backend:
    """Instantiate the backend registered as ``name`` with ``options``."""
    if name not in BACKENDS:
        raise SpecError(f"Unknown backend '{name}'; choose one of {', '.join(BACKENDS)}."
                        f"{did_you_mean(name, BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)
