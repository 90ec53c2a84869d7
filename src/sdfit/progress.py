"""Progress of long work on stderr: a tqdm bar on a terminal, plain periodic lines in a log
(no carriage returns filling a CI log), and one-line status messages for the steps before."""

from __future__ import annotations

import sys
import time

#: Seconds between two plain progress lines when stderr is not a terminal.
LINE_INTERVAL = 10.0


class Progress:
    """Count finished units towards ``total``; a no-op when ``enabled`` is false."""

    def __init__(self, total: int, description: str, enabled: bool = True, initial: int = 0,
                 unit: str = "unit"):
        self.total, self.description, self.unit = total, description, unit
        self.done = initial
        self.enabled = enabled
        self.started = self.last = time.monotonic()
        self.bar = None
        if enabled and _is_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=description, initial=initial,
                            file=sys.stderr)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.enabled and time.monotonic() - self.last >= LINE_INTERVAL:
            self.last = time.monotonic()
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done:
            self._line()

    def _line(self) -> None:
        share = self.done / self.total if self.total else 1.0
        print(f"{self.description}: {self.done:,} of {self.total:,} {self.unit}s "
              f"({share:.0%}), {time.monotonic() - self.started:.1f} s", file=sys.stderr,
              flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def status(message: str, enabled: bool = True) -> None:
    """One line saying what sdfit is doing now (reading data, compiling the model...)."""
    if enabled:
        print(f"sdfit: {message}", file=sys.stderr, flush=True)


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
