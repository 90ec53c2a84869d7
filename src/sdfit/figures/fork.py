"""Two cores for drawing: a few independent tasks (figures to PNG bytes, report sections
to HTML) split between this process and one forked copy of it.

Matplotlib draws in one thread, holding the GIL; a forked child has every module, font
and cached raster of its parent already, so it starts drawing at once (a fresh process
would first import them all, which costs as much as the drawing).  Where there is no
``fork`` (Windows), or a task fails in the child, the tasks run here, so that an error is
raised as it would be without the child.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def run_split(tasks: Sequence[Callable[[], T]], child: Sequence[int]) -> list[T]:
    """``[task() for task in tasks]``, the tasks at positions ``child`` run in a forked
    process meanwhile (their results must pickle)."""
    child = sorted(set(child))
    if not child or len(child) == len(tasks) or not hasattr(os, "fork"):
        return [task() for task in tasks]
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no memory or process left for a copy: draw here
        os.close(read)
        os.close(write)
        return [task() for task in tasks]
    if pid == 0:  # the child: its tasks, pickled into the pipe, then out at once
        os.close(read)
        status = 1
        try:
            with os.fdopen(write, "wb") as pipe:
                pickle.dump([tasks[i]() for i in child], pipe, pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing of the parent's buffers
    os.close(write)
    try:
        results = {i: tasks[i]() for i in range(len(tasks)) if i not in child}
    finally:
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    if status == 0:
        results.update(zip(child, pickle.loads(data), strict=True))
    else:  # the child failed: again here, where the error is raised as usual
        results.update((i, tasks[i]()) for i in child)
    return [results[i] for i in range(len(tasks))]
