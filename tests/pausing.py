"""Run `sdfit fit` in a real process with its backend paused at a known point, for tests
that must act mid-run without watching the clock: the `pausing` backend passes on the
first N finished chunks of the backend it wraps (``SDFIT_PAUSE_BACKEND``, with
``SDFIT_PAUSE_SCHEDULER`` for dask), so that exactly N are saved, then prints ``paused``
on stdout and waits for a line on stdin (or to be killed) before going on.

Usage: ``python tests/pausing.py fit ... --backend pausing`` with ``SDFIT_PAUSE_AFTER=N``.
"""

from __future__ import annotations

import os
import sys

from sdfit.backends import get_backend, register_backend
from sdfit.backends.base import Backend


class Pausing(Backend):
    name = "pausing"

    def __init__(self, workers: int | None = None):
        scheduler = os.environ.get("SDFIT_PAUSE_SCHEDULER")
        self.inner = get_backend(os.environ["SDFIT_PAUSE_BACKEND"], workers=workers,
                                 **({"scheduler": scheduler} if scheduler else {}))
        self.after = int(os.environ["SDFIT_PAUSE_AFTER"])
        self.workers = self.inner.workers

    def map_unordered(self, func, shared, items):
        for count, result in enumerate(self.inner.map_unordered(func, shared, items)):
            if count == self.after:  # the chunks before this one are saved
                print("paused", flush=True)
                sys.stdin.readline()
            yield result

    def close(self) -> None:
        self.inner.close()


if __name__ == "__main__":
    register_backend("pausing", "pausing:Pausing")
    from sdfit.cli import main

    sys.exit(main(sys.argv[1:]))
