"""Peak resident memory of this process and all its children, sampled in a thread."""

from __future__ import annotations

import threading

import psutil


class PeakRSS:
    """``with PeakRSS() as peak: ...`` then ``peak.bytes``: the largest total RSS of the
    process tree seen while the block ran (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.bytes = interval, 0
        self._stop = threading.Event()

    def _total(self) -> int:
        root = psutil.Process()
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a worker that just exited
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, self._total())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.bytes = self._total()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self._total())
