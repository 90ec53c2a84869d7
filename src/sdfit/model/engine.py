"""Choosing the engine that simulates a model for fitting: batched, or PySD's runtime."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from ..exceptions import (
    EngineError,
    FallbackWarning,
    ModelError,
    SdfitError,
    SpecError,
    UnsupportedFeatureError,
)
from ..names import did_you_mean
from .runtime.program import BatchModel
from .runtime.pysd_engine import PysdModel

#: ``auto`` compiles for the batched engine and falls back to PySD's runtime, warning,
#: when the model uses a construct the compiler does not support, or the compiler fails
#: for a reason that is not the model's fault.
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
        from .sources import integration_method
        from .translate import translate

        return compile_model(translate(path), path, data_files, integration_method(path))

    return cache.load(path, data_files, compile_now)


def open_model(model: BatchModel | PysdModel | str | Path,
               engine: str = "auto") -> BatchModel | PysdModel:
    """The model ready to simulate with ``engine``.

    Raises
    ------
    UnsupportedFeatureError
        ``engine="batched"`` and the model uses a construct it does not compile.
    EngineError
        ``engine="batched"`` and the compiler failed for another reason than bad input.
    ModelError
        The model file is missing, unreadable or inconsistent (whatever the engine).
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
        reason = (f"does not support {error.construct} (in the equation of "
                  f"'{error.variable}' of '{error.path}')")
    except (ModelError, SpecError):  # bad input: PySD would not read it either
        raise
    except Exception as error:  # the compiler's own failure, not the model's
        if isinstance(error, SdfitError) and not isinstance(error, EngineError):
            raise
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        if engine == "batched":
            raise EngineError(f"The batched engine could not compile '{path}' "
                              f"({type(error).__name__}: {detail}).") from error
        reason = f"could not compile '{path}' ({type(error).__name__}: {detail})"
    warnings.warn(f"The batched engine {reason}; fitting with PySD's own runtime instead, "
                  "one unit at a time (much slower).", FallbackWarning, stacklevel=2)
    return PysdModel.load(path)
