"""Exceptions and warnings raised by sdfit.

Only user or configuration errors raise: a unit whose fit fails is a row of the
results table with a status, never an exception.  Every error subclasses a
builtin so that callers can catch it the way they would catch the builtin.
"""

import os
import sys
import warnings


class SdfitError(Exception):
    """Base class of every error sdfit raises on purpose."""


class ModelError(SdfitError, ValueError):
    """The model file is missing, unreadable or inconsistent."""


class UnsupportedFeatureError(ModelError):
    """The model uses a construct the batched engine does not compile.

    Attributes
    ----------
    construct : str
        The language construct, e.g. ``"GET XLS DATA"``.
    variable : str
        The model variable whose equation uses it.
    path : str
        The model file.
    """

    def __init__(self, construct: str, variable: str = "", path: str = ""):
        self.construct, self.variable, self.path = construct, variable, str(path)
        where = f" in the equation of '{variable}'" if variable else ""
        source = f" of model file '{path}'" if path else ""
        super().__init__(
            f"{construct} is not supported by the batched engine{where}{source}; "
            "use --engine pysd to fit it with PySD's own runtime."
        )


class DataError(SdfitError, ValueError):
    """The data file is missing, malformed or does not fit the problem."""


class SpecError(SdfitError, ValueError):
    """The problem specification is invalid."""


class ConvergenceWarning(UserWarning):
    """Some units did not converge, or some parameters are not identifiable."""


class IdentifiabilityWarning(ConvergenceWarning):
    """Some fitted parameters are not identifiable from the targets: their values are an
    artefact of the starting point, not something the data says."""


class FallbackWarning(UserWarning):
    """The batched engine cannot compile the model: PySD's runtime fits it instead."""


class FigureWarning(UserWarning):
    """A figure was not drawn (e.g. a county map without the county shapefile)."""


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn, pointing at the first caller outside sdfit (the user's own line), not at the
    sdfit module that noticed."""
    package = os.path.dirname(__file__)
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class EngineError(SdfitError, RuntimeError):
    """The batched engine failed while simulating, for a reason other than bad input (under
    ``engine="auto"`` the fit falls back to PySD's runtime)."""


class ResultsFolderWarning(UserWarning):
    """Something in a results folder was not what sdfit left there (a damaged or unknown
    chunk file, a file of yours where sdfit keeps its own): it was re-done or left alone,
    never trusted and never deleted."""
