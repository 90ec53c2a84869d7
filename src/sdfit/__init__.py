"""sdfit: calibrate one system dynamics model to thousands of units at once.

The public API is imported lazily (PEP 562): ``import sdfit`` loads almost nothing, and
NumPy, pandas, SciPy and PySD's translators are imported by the first name that needs them.
"""

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
from .lazy import attributes

#: public name -> the module (relative to this package) that defines it
_LAZY = {
    "BatchModel": ".model", "Simulation": ".model", "load_model": ".model",
    "Panel": ".data", "read_panel": ".data",
    "Parameter": ".problem", "Problem": ".problem",
    "Spec": ".spec", "load_spec": ".spec",
    "resolve": ".resolution",
    "fit": ".calibrate", "FitResult": ".results",
    "LevenbergMarquardt": ".solvers", "ScipyLeastSquares": ".solvers", "Solver": ".solvers",
    "Status": ".solvers",
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


__getattr__ = attributes(globals(), _LAZY, _SUBMODULES)


def __dir__():
    return sorted(set(globals()) | set(__all__))
