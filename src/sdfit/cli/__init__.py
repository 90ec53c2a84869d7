"""The ``sdfit`` command line.

Every user error ends as one sentence on stderr and exit status 2, with no traceback and
nothing written in the output folder; Ctrl-C exits 130 and SIGTERM 143, keeping the chunks
already saved.  Heavy modules are imported by the subcommand that needs them, so that
``sdfit --help`` is quick.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    from .._version import __version__
    from ..exceptions import SdfitError
    from . import fit, tools

    parser = argparse.ArgumentParser(
        prog="sdfit",
        description="Calibrate one system dynamics model separately to each of many units.")
    parser.add_argument("--version", action="version", version=f"sdfit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    fit.add_parser(commands)
    tools.add_parsers(commands)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    from ..backends.signals import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            return args.run(args) or 0
    except SdfitError as error:
        print(f"sdfit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("sdfit: terminated; the chunks already saved are kept (--resume continues).",
              file=sys.stderr)
        return Terminated.exit_status
    except KeyboardInterrupt:
        print("sdfit: interrupted; the chunks already saved are kept (--resume continues).",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: results are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def command() -> None:
    """The ``sdfit`` program: :func:`main`, then exit.  The objects pandas and matplotlib
    made are frozen first, so that the collector's passes as the interpreter ends skip
    them (a tenth of a second of every command); nothing is left to do by then."""
    status = main()
    gc.freeze()
    sys.exit(status)
