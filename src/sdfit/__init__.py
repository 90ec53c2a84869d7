"""sdfit: calibrate one system dynamics model to thousands of units at once.

The public API is imported lazily (PEP 562): ``import sdfit`` loads almost nothing, and
NumPy, pandas, SciPy and PySD's translators are imported by the first name that needs them.
"""

from importlib import import_module

from ._version import __version__
from .exceptions import (
    ConvergenceWarning,
    DataError,
    EngineError,
    FallbackWarning,
    IdentifiabilityWarning,
    ModelError,
    SdfitError,
    SpecError,
    UnsupportedFeatureError,
)

#: public name -> the module that defines it
_LAZY = {
    "BatchModel": "model", "Simulation": "model", "load_model": "model",
    "Panel": "data", "read_panel": "data",
    "Parameter": "problem", "Problem": "problem",
    "Spec": "spec", "load_spec": "spec",
    "resolve": "resolution",
    "fit": "calibrate", "FitResult": "results",
    "LevenbergMarquardt": "solvers", "ScipyLeastSquares": "solvers", "Solver": "solvers",
    "Status": "solvers",
}
_SUBMODULES = {"datasets", "data", "model", "results", "diagnostics", "report", "solvers"}

__all__ = [
    "__version__",
    # models
    "BatchModel",
    "Simulation",
    "load_model",
    # data and problems
    "Panel",
    "read_panel",
    "datasets",
    "Parameter",
    "Problem",
    "Spec",
    "load_spec",
    "resolve",
    # fitting
    "fit",
    "FitResult",
    "LevenbergMarquardt",
    "ScipyLeastSquares",
    "Solver",
    "Status",
    # errors
    "SdfitError",
    "ModelError",
    "UnsupportedFeatureError",
    "DataError",
    "SpecError",
    "EngineError",
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "FallbackWarning",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'sdfit' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
