"""Where chunks of units are fitted: serial, local processes, or a Dask cluster."""

from .base import BACKENDS, Backend, as_backend, get_backend, register_backend

__all__ = ["BACKENDS", "Backend", "as_backend", "get_backend", "register_backend"]
