"""A Dask distributed cluster: an existing scheduler, or a local cluster sized to the machine.

Install with ``pip install 'sdfit[dask]'``; every worker must be able to import
sdfit.  The shared payload (compiled model, resolved problem, solver) is
scattered to every worker once; each chunk task then carries only its units.
A worker lost mid-run costs nothing but time: the scheduler runs its chunks
again elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from ..exceptions import SdfitError, SpecError
from .base import Backend

INSTALL_HINT = "The dask backend needs Dask distributed: pip install 'sdfit[dask]'."

#: chunks queued per worker thread beyond the one it runs, so no worker waits for work
#: while the client still holds only a bounded number of chunks in flight
QUEUED_PER_THREAD = 2


class DaskBackend(Backend):
    """Chunks of units as tasks on a Dask cluster.

    Every wait on the scheduler is bounded by ``timeout``: an address that does not
    answer as a Dask scheduler, a scheduler lost or silent mid-run, end in one
    :class:`~sdfit.SdfitError` sentence (the chunks already saved are kept).  Only
    the fitting of a chunk itself may take longer: while chunks are under way the
    scheduler is asked every ``timeout`` seconds whether it is still there.

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
        self.timeout = timeout
        self._lost_scheduler = False
        self._cluster = None
        self._owns_client = client is None
        if client is None and scheduler is None:
            self._cluster = distributed.LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                # a free port: never clash with another cluster's dashboard on this machine
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = distributed.Client(self._cluster)
        elif client is None:
            _check_scheduler(scheduler, timeout)
            try:
                client = distributed.Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as error:
                raise SpecError(f"Could not connect to the Dask scheduler at '{scheduler}': "
                                f"{_reason(error, timeout)}.") from None
        self.client = client
        self.address = client.scheduler.address
        threads = sum(self._ask(client.scheduler.ncores).values())
        self.workers = threads or self.workers

    def map_unordered(self, func: Callable[[Any, Any], Any], shared: Any,
                      items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        from distributed import wait

        # one copy per worker, sent now, instead of one inside every chunk task
        # (in a list: scatter would split a tuple into one future per element)
        try:
            [payload] = self.client.scatter([shared], broadcast=True, hash=False,
                                            timeout=self.timeout)
        except (OSError, TimeoutError) as error:
            raise SdfitError(f"The Dask cluster at '{self.address}' took no work: "
                             f"{_reason(error, self.timeout)}.") from None
        items = iter(items)
        keys: dict[Any, int] = {}

        def submit(count: int) -> None:
            for _, (key, item) in zip(range(count), items, strict=False):
                keys[self.client.submit(func, payload, item, pure=False)] = key

        submit(self.workers * (1 + QUEUED_PER_THREAD))
        try:
            while keys:
                try:
                    done = wait(list(keys), timeout=self.timeout,
                                return_when="FIRST_COMPLETED").done
                except TimeoutError:  # chunks may take long; the scheduler must still answer
                    self._ask(self.client.scheduler.identity)
                    continue
                for future in done:
                    key = keys.pop(future)
                    yield key, self._result(future, key)
                    future.release()
                    submit(1)
        except cf.CancelledError as error:  # by the client, when it loses the scheduler
            groups = getattr(error, "error_groups", None)
            reason = groups[0].reason if groups else getattr(error, "reason", "cancelled")
            raise SdfitError(self._lost(reason.replace("-", " "))) from None
        finally:
            # released, not cancelled: cancelling waits for a scheduler that may be gone,
            # and the scheduler forgets tasks no client holds
            for future in [*keys, payload]:
                future.release()

    def close(self) -> None:
        if self._owns_client:
            # a client that lost its scheduler logs its failure to reconnect with a
            # traceback; the sentence raised has said it already
            with _quiet("distributed.client") if self._lost_scheduler else nullcontext():
                self.client.close(timeout=self.timeout)
        if self._cluster is not None:
            self._cluster.close(timeout=self.timeout)
            self._cluster = None

    def _ask(self, question: Callable[[], Any]) -> Any:
        """The scheduler's answer to ``question`` (an rpc), within the timeout."""
        try:
            return self.client.sync(question, callback_timeout=self.timeout)
        except TimeoutError:
            raise SdfitError(self._lost(f"no answer within {self.timeout:g} s")) from None
        except OSError as error:
            raise SdfitError(self._lost(_reason(error, self.timeout))) from None

    def _result(self, future: Any, key: int) -> Any:
        from distributed import KilledWorker

        try:
            while True:  # a finished chunk's result still comes through the scheduler
                try:
                    return future.result(timeout=self.timeout)
                except TimeoutError:  # raises the lost scheduler's sentence if it is gone
                    self._ask(self.client.scheduler.identity)
        except KilledWorker:
            raise SdfitError(f"Chunk {key} ended every Dask worker at '{self.address}' that "
                             "ran it (out of memory?); fit it with fewer units per chunk "
                             "(--chunk-size).") from None

    def _lost(self, reason: str) -> str:
        self._lost_scheduler = True
        return (f"Lost the Dask scheduler at '{self.address}' during the fit ({reason}); the "
                "chunks already saved in the results folder are kept: run again with --resume "
                "once it is back.")


def _check_scheduler(address: str, timeout: float) -> None:
    """Refuse, in one sentence, an address that is malformed or that does not answer
    Dask's handshake within ``timeout`` (distributed's own connect would wait for ever
    for a server that accepts the connection but is not Dask)."""
    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme '{scheme}', not one of {', '.join(backends)}")
        if scheme in ("tcp", "tls", "ws", "wss") and not 0 < parse_host_port(location)[1] < 65536:
            raise ValueError(f"port {parse_host_port(location)[1]} is out of range")
    except (ValueError, TypeError) as error:
        raise SpecError(f"Scheduler address '{address}' is malformed ({error}); write it as "
                        "tcp://HOST:PORT.") from None

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    try:  # in a thread of its own: the caller may be inside an event loop (Jupyter)
        with cf.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, handshake()).result()
    except Exception as error:  # whatever a server that is not Dask makes the handshake raise
        raise SpecError(f"Could not connect to the Dask scheduler at '{address}': "
                        f"{_reason(error, timeout)}.") from None


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return f"no answer within {timeout:g} s"
    if isinstance(error, OSError | TimeoutError):
        return " ".join(str(error).split()).rstrip(".") or type(error).__name__
    return "the server there does not answer as a Dask scheduler"


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise SpecError(INSTALL_HINT) from None
    return distributed
