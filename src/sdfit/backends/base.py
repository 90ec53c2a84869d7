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
    """Instantiate the backend registered as ``name`` with ``options``
    (``workers``; for ``dask`` also ``scheduler``)."""
    if not isinstance(name, str):
        raise SpecError(f"A backend is a name ({', '.join(BACKENDS)}), a Backend or a "
                        f"distributed.Client; got {type(name).__name__}.")
    if name not in BACKENDS:
        raise SpecError(f"Unknown backend '{name}'; choose one of {', '.join(BACKENDS)}."
                        f"{did_you_mean(name, BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def as_backend(backend: str | Backend | Any, workers: int | None = None,
               scheduler: str | None = None) -> tuple[Backend, bool]:
    """The backend to run on, from a name, a Backend or a ``distributed.Client``, and
    whether it was made here (and so is to be closed by the caller).  ``scheduler``
    is the address of a running Dask scheduler for the ``dask`` backend."""
    if scheduler is not None and backend != "dask":
        raise SpecError(f"A scheduler address is for the dask backend, not {backend!r}; "
                        "use --backend dask.")
    if isinstance(backend, Backend):
        return backend, False
    if _is_dask_client(backend):
        from .dask import DaskBackend

        return DaskBackend(client=backend), True
    options = {"scheduler": scheduler} if scheduler is not None else {}
    return get_backend(backend, workers=workers, **options), True


def _is_dask_client(obj: Any) -> bool:
    # by name, so that choosing another backend never imports distributed
    return any(cls.__module__.startswith("distributed") and cls.__name__ == "Client"
               for cls in type(obj).__mro__)
