"""A package's public names imported on first use (PEP 562), so that ``import sdfit`` and
``sdfit --help`` load almost nothing: NumPy, pandas, matplotlib and PySD's translators come
with the first name that needs them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from importlib import import_module


def attributes(namespace: dict, where: Mapping[str, str], submodules: Collection[str] = ()
               ) -> Callable[[str], object]:
    """The module ``__getattr__`` of the package whose globals are ``namespace``: a name of
    ``where`` from the module named there (relative, ``".spec"``), a name of
    ``submodules`` the submodule itself; each looked up once, then kept in the globals."""
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name in where:
            value = getattr(import_module(where[name], package), name)
        elif name in submodules:
            value = import_module(f".{name}", package)
        else:
            raise AttributeError(f"module '{package}' has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
