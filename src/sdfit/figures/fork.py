"""Both cores for drawing: a few independent tasks (figures to PNG bytes, report sections
to HTML) split between this process and forked copies of it, one copy a task.

Matplotlib draws in one thread, holding the GIL; a forked copy has every module, font
and cached raster of its parent already, so it starts drawing at once (a fresh process
would first import them all, which costs as much as the drawing).  A copy a task rather
than one for all: three figures of unequal cost then share two cores evenly.  Where there
is no ``fork`` (Windows), or a task fails in its copy, the task runs here, so that an
error is raised as it would be without the copy.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def run_split(tasks: Sequence[Callable[[], T]], child: Sequence[int]) -> list[T]:
    """``[task() for task in tasks]``, the tasks at positions ``child`` each run in a
    forked process of its own meanwhile (their results must pickle)."""
    child = sorted(set(child))
    if not child or len(child) == len(tasks) or not hasattr(os, "fork"):
        return [task() for task in tasks]
    copies = {}
    for i in child:
        copy = _fork(tasks[i])
        if copy is None:  # no memory or process left for a copy: run here
            break
        copies[i] = copy
    results = {}
    try:
        results = {i: tasks[i]() for i in range(len(tasks)) if i not in copies}
    finally:
        answers = {i: _answer(*copy) for i, copy in copies.items()}
    for i, (ok, value) in answers.items():
        # a task that failed in its copy runs again here, where its error is raised
        results[i] = value if ok else tasks[i]()
    return [results[i] for i in range(len(tasks))]


def _fork(task: Callable[[], T]) -> tuple[int, int] | None:
    """A copy running ``task``: (its pid, the pipe its pickled result comes through)."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the copy: its task, pickled into the pipe, then out at once
        os.close(read)
        status = 1
        try:
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(task(), pipe, pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing of the parent's buffers
    os.close(write)
    return pid, read


def _answer(pid: int, read: int) -> tuple[bool, object]:
    """(whether the copy succeeded, its result), once it has ended."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    return (True, pickle.loads(data)) if status == 0 else (False, None)
