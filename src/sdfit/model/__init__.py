"""Models: parse with PySD's translators, compile into a batched array program
(or, as a fallback, run PySD's own runtime unit by unit).

Names are imported lazily (PEP 562): loading a model the compiled-model cache holds never
imports PySD's translators or the compiler.
"""

from ..lazy import attributes

#: public name -> the module (relative to this package) that defines it
_LAZY = {
    "BatchModel": ".runtime.program", "Simulation": ".runtime.program",
    "Variable": ".runtime.program", "PysdModel": ".runtime.pysd_engine",
    "ENGINES": ".engine", "open_model": ".engine", "load_model": ".engine",
    "compile_model": ".compiler.compile",
}
# ``translate`` (the function) lives in the submodule of the same name: import it from
# there, ``from sdfit.model.translate import translate``; a package attribute would be
# shadowed by the submodule as soon as anything imports it.

__all__ = ["ENGINES", "BatchModel", "PysdModel", "Simulation", "Variable", "compile_model",
           "load_model", "open_model"]


__getattr__ = attributes(globals(), _LAZY)
