"""Models: parse with PySD's translators, compile into a batched array program
(or, as a fallback, run PySD's own runtime unit by unit)."""

from .compiler.compile import compile_model, load_model
from .engine import ENGINES, open_model
from .runtime.program import BatchModel, Simulation, Variable
from .runtime.pysd_engine import PysdModel
from .translate import translate

__all__ = ["ENGINES", "BatchModel", "PysdModel", "Simulation", "Variable", "compile_model",
           "load_model", "open_model", "translate"]
