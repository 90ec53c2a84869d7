"""The version of sdfit (one place: the package, run records and checkpoints read it)."""

__version__ = "0.2.0"
