"""Choosing the engine that simulates a model for fitting: batched, or PySD's runtime."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from ..exceptions import FallbackWarning, SpecError, UnsupportedFeatureError
from ..names import did_you_mean
from .runtime.program import BatchModel
from .runtime.pysd_engine import PysdModel

#: ``auto`` compiles for the batched engine and falls back to PySD's runtime, warning,
#: when the model uses a construct the compiler does not support.
ENGINES = ("auto", "batched", "pysd")


def load_model(path: str | Path, data_files: Iterable[str | Path] = ()) -> BatchModel:
    """Read a Vensim ``.mdl`` or XMILE model and compile it for batched simulation (from
    the compiled-model cache when it holds this very file: see
    :mod:`sdfit.model.compiler.cache`).

    Raises
    ------
    ModelError
        The file is missing or cannot be parsed.
    UnsupportedFeatureError
        The model uses a construct the batched engine does not compile.
    """
    from .compiler import cache

    data_files = list(data_files)

    def compile_now() -> BatchModel:
        from .compiler.compile import compile_model
        from .translate import translate

        return compile_model(translate(path), path, data_files)

    return cache.load(path, data_files, compile_now)


def open_model(model: BatchModel | PysdModel | str | Path,
               engine: str = "auto") -> BatchModel | PysdModel:
    """The model ready to simulate with ``engine``.

    Raises
    ------
    UnsupportedFeatureError
        ``engine="batched"`` and the model uses a construct it does not compile.
    SpecError
        Unknown engine.
    """
    if engine not in ENGINES:
        raise SpecError(f"Unknown engine '{engine}'; choose one of {', '.join(ENGINES)}."
                        f"{did_you_mean(engine, ENGINES)}")
    if isinstance(model, BatchModel | PysdModel):
        path = model.path
        if engine == "auto" or isinstance(model, BatchModel) == (engine == "batched"):
            return model
    else:
        path = model
    if engine == "pysd":
        return PysdModel.load(path)
    try:
        return load_model(path)
    except UnsupportedFeatureError as error:
        if engine == "batched":
            raise
        warnings.warn(
            f"The batched engine does not support {error.construct} (in the equation of "
            f"'{error.variable}' of '{error.path}'); fitting with PySD's own runtime instead, "
            "one unit at a time (much slower).", FallbackWarning, stacklevel=2)
        return PysdModel.load(path)
