"""The figures of ``sdfit fit`` drawn by a copy of the process forked when the command
starts: while this process imports pandas, loads the model and fits, the copy imports
matplotlib and the figure modules and loads the county shapes (a third of a second of
every command with figures); it then draws the figures it is sent.

The copy is made before any thread starts, holds no lock of the results folder, and
leaves with ``os._exit`` (no atexit handlers, no flushing of this process's buffers).
It receives the result without its context (the model), and sends back the paths it
wrote and the warnings it met.  Where there is no ``fork``, or the copy fails for any
reason, the figures are drawn here, so that errors are raised as they would be without it.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path


class Drawer:
    """A forked copy ready to run ``draw(result, *args)`` (see the module's docstring)."""

    def __init__(self, draw: Callable, prepare: Callable[[], object]):
        self.draw_here, self.pid = draw, None
        if not hasattr(os, "fork"):
            return
        job_read, self.job = os.pipe()
        self.reply, reply_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no memory or process left for a copy: draw here
            for fd in (job_read, self.job, self.reply, reply_write):
                os.close(fd)
            return
        if pid == 0:
            os.close(self.job)
            os.close(self.reply)
            _serve(job_read, reply_write, draw, prepare)
        os.close(job_read)
        os.close(reply_write)
        self.pid = pid

    def draw(self, result, *args) -> list[Path]:
        """The figures of ``result``, drawn by the copy when it can, else here."""
        if self.pid is not None:
            reply = self._ask(dict(result.__dict__, context=None), args)
            if reply is not None:
                paths, caught = reply
                for message, category in caught:
                    warnings.warn(message, category, stacklevel=2)
                return paths
        return self.draw_here(result, *args)

    def close(self) -> None:
        """Let the copy go (it leaves when its job pipe closes) and reap it."""
        if self.pid is None:
            return
        os.close(self.job)
        os.close(self.reply)
        os.waitpid(self.pid, 0)
        self.pid = None

    def _ask(self, state: dict, args: tuple):
        try:
            with os.fdopen(os.dup(self.job), "wb") as pipe:
                pickle.dump((state, args), pipe, pickle.HIGHEST_PROTOCOL)
            with os.fdopen(os.dup(self.reply), "rb") as pipe:
                status, value = pickle.load(pipe)
        except (OSError, EOFError, pickle.PickleError):
            return None
        finally:
            self.close()
        return value if status == "ok" else None


def _serve(job: int, reply: int, draw: Callable, prepare: Callable[[], object]) -> None:
    """The copy: prepare, wait for one job, answer, leave."""
    status = 1
    try:
        try:
            prepare()
        except Exception:  # noqa: BLE001  the job then fails here and is drawn by the parent
            pass
        with os.fdopen(job, "rb") as pipe:
            try:
                state, args = pickle.load(pipe)
            except EOFError:  # no figures wanted after all (the command failed or is done)
                status = 0
                return
        from ..results import FitResult

        result = FitResult.__new__(FitResult)
        result.__dict__.update(state)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                paths = draw(result, *args)
            answer = ("ok", (paths, [(str(w.message), w.category) for w in caught]))
        except BaseException as error:  # noqa: BLE001  raised again where it belongs
            answer = ("failed", repr(error))
        with os.fdopen(reply, "wb") as pipe:
            pickle.dump(answer, pipe, pickle.HIGHEST_PROTOCOL)
        status = 0
    finally:
        os._exit(status)
