"""A Dask distributed cluster: an existing scheduler, or a local cluster sized to the machine.

Install with ``pip install 'sdfit[dask]'``; every worker must be able to import
sdfit.  The shared payload (compiled model, resolved problem, solver) is
scattered to every worker once; each chunk task then carries only its units.
A worker lost mid-run costs nothing but time: the scheduler runs its chunks
again elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..exceptions import SpecError
from .base import Backend

INSTALL_HINT = "The dask backend needs Dask distributed: pip install 'sdfit[dask]'."

#: chunks queued per worker thread beyond the one it runs, so no worker waits for work
#: while the client still holds only a bounded number of chunks in flight
QUEUED_PER_THREAD = 2


class DaskBackend(Backend):
    """Chunks of units as tasks on a Dask cluster.

    Parameters
    ----------
    workers
        Worker processes of the local cluster started when neither ``scheduler``
        nor ``client`` is given (default one per core); a running cluster keeps
        its own workers.
    scheduler
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    client
        A connected ``distributed.Client`` to use (and leave open).
    timeout
        Seconds to wait for the scheduler to answer.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 client: Any = None, timeout: float = 30):
        super().__init__(workers)
        distributed = _import_distributed()
        self._cluster = None
        self._owns_client = client is None
        if client is None and scheduler is None:
            self._cluster = distributed.LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                # a free port: never clash with another cluster's dashboard on this machine
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = distributed.Client(self._cluster)
        elif client is None:
            try:
                client = distributed.Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise SpecError(f"Could not connect to the Dask scheduler at '{scheduler}': "
                                f"{reason}.") from None
        self.client = client
        threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        self.workers = threads or self.workers

    def map_unordered(self, func: Callable[[Any, Any], Any], shared: Any,
                      items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        # one copy per worker, sent now, instead of one inside every chunk task
        # (in a list: scatter would split a tuple into one future per element)
        [payload] = self.client.scatter([shared], broadcast=True, hash=False)
        items = iter(items)
        keys: dict[Any, int] = {}
        window = as_completed()

        def submit(count: int) -> None:
            for _, (key, item) in zip(range(count), items, strict=False):
                future = self.client.submit(func, payload, item, pure=False)
                keys[future] = key
                window.add(future)

        submit(self.workers * (1 + QUEUED_PER_THREAD))
        try:
            for future in window:
                yield keys.pop(future), future.result()
                future.release()
                submit(1)
        finally:
            for future in keys:
                future.cancel()
            payload.release()

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise SpecError(INSTALL_HINT) from None
    return distributed
