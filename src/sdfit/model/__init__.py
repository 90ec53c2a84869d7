"""Models: parse with PySD's translators, compile into a batched array program
(or, as a fallback, run PySD's own runtime unit by unit)."""

from .compile import compile_model, load_model
from .engines import ENGINES, open_model
from .program import BatchModel, Simulation, Variable
from .pysd_runtime import PysdModel
from .translate import translate

__all__ = ["ENGINES", "BatchModel", "PysdModel", "Simulation", "Variable", "compile_model",
           "load_model", "open_model", "translate"]
