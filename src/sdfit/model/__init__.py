"""Models: parse with PySD's translators, compile into a batched array program."""

from .compile import compile_model, load_model
from .program import BatchModel, Simulation, Variable
from .translate import translate

__all__ = ["BatchModel", "Simulation", "Variable", "compile_model", "load_model", "translate"]
