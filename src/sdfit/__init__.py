"""sdfit: calibrate one system dynamics model to thousands of units at once."""

__version__ = "0.1.0"

from . import datasets
from .data import Panel, read_panel
from .exceptions import (
    ConvergenceWarning,
    DataError,
    FallbackWarning,
    IdentifiabilityWarning,
    ModelError,
    SdfitError,
    SpecError,
    UnsupportedFeatureError,
)
from .fit import fit
from .model import BatchModel, Simulation, load_model
from .problem import Parameter, Problem
from .results import FitResult
from .solvers import LevenbergMarquardt, ScipyLeastSquares, Solver, Status
from .spec import Spec, load_spec

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
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "FallbackWarning",
]
