"""Where the command line finds :func:`sdfit.figures.write_figures` until it imports it
from :mod:`sdfit.figures` itself."""

from .figures import write_figures

__all__ = ["write_figures"]
