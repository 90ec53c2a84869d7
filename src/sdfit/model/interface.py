"""The engine contract: what problem resolution, the objective and the diagnostics may call
on a model.  Both engines implement all of it — :class:`~sdfit.model.BatchModel` (every unit
of a batch at once) and :class:`~sdfit.model.PysdModel` (PySD's runtime, unit by unit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .runtime.variables import Variable


@runtime_checkable
class Engine(Protocol):
    """A model ready to simulate batches of units."""

    path: str
    variables: dict[str, Variable]

    @property
    def name(self) -> str: ...

    @property
    def initial_time(self) -> float: ...

    @property
    def final_time(self) -> float: ...

    @property
    def time_step(self) -> float: ...

    @property
    def constants(self) -> list[str]: ...

    @property
    def stocks(self) -> list[str]: ...

    def names(self, kind: str | None = None) -> list[str]: ...

    def variable(self, name: str, what: str = "variable") -> Variable: ...

    def element(self, name: str, what: str = "variable") -> tuple[Variable, tuple[int, ...]]:
        ...

    def elements(self, name: str) -> list[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def constant_value(self, name: str) -> float: ...

    def constant_array(self, name: str) -> np.ndarray: ...

    def execute(self, batch_size: int, overrides: Mapping[str, object],
                record: tuple[str, ...], stop_time: float | None = None,
                return_times: Sequence[float] | None = None, **options
                ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run ``batch_size`` rows: ``overrides`` by identifier; returns the saved times (T,)
        and one ``(batch_size, T, *dims)`` array per recorded identifier.  ``options``:
        ``inputs`` (per-unit tables), ``streams``/``seed`` (random functions), ``method``."""
        ...
