"""python -m sdfit.cli"""

from . import command

command()
