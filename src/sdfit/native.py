"""Compiled C, built once per machine: the kernels generated from models and the solver's
per-unit steps.

A C source is compiled with the system's C compiler (``$CC``, Python's own, ``cc``) into
a shared library in the user cache, named by the sha256 of the source, the compiler
command, sdfit's version and the machine (``-march=native``), and loaded with
:mod:`ctypes`.  A library is never trusted under another name: a file that does not load
is deleted and built again.  Without a compiler, or with ``SDFIT_NATIVE=0``, nothing is
compiled and the callers run their NumPy code instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._version import __version__

#: ``SDFIT_NATIVE=0`` compiles nothing (every caller runs its NumPy code).
ENABLED = os.environ.get("SDFIT_NATIVE", "1") != "0"
#: IEEE arithmetic exactly as NumPy's: no fast-math, no contraction into fused multiply-adds.
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared",
         "-w")

#: Seconds spent compiling in this process (cache misses only; summed over builds that
#: ran side by side): a first run's compile.
compile_seconds = 0.0
#: Why the last library could not be had.
last_failure: str | None = None

_LIBRARIES: dict[str, ctypes.CDLL] = {}
_LOCK = threading.Lock()
_BUILDING: dict[str, threading.Lock] = {}
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def library(source: str) -> ctypes.CDLL | None:
    """The shared library of a C source: from this process, from the cache, or compiled
    now; None when there is no compiler or it fails."""
    global compile_seconds, last_failure
    command = compiler() if ENABLED else None
    if command is None:
        last_failure = "no C compiler" if ENABLED else "SDFIT_NATIVE=0"
        return None
    key = hashlib.sha256("\0".join([source, *command, *FLAGS, __version__, _machine()])
                         .encode()).hexdigest()
    with _LOCK:  # one build per source at a time; different sources build side by side
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        if key in _LIBRARIES:
            return _LIBRARIES[key]
        path = cache_dir() / f"sdfit-{key[:32]}.so"
        if not path.exists():
            started = time.perf_counter()
            if not _compile(command, source, path):
                return None
            with _LOCK:
                compile_seconds += time.perf_counter() - started
        try:
            _LIBRARIES[key] = ctypes.CDLL(str(path))
        except OSError as error:  # a damaged cache entry: deleted, built next time
            last_failure = f"could not load {path.name}: {error}"
            path.unlink(missing_ok=True)
            return None
        return _LIBRARIES[key]


def compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, Python's own, or ``cc``; None without one."""
    for candidate in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc",
                      "clang"):
        if candidate:
            command = shlex.split(candidate)
            if command and shutil.which(command[0]):
                return command
    return None


def cache_dir() -> Path:
    """Where compiled libraries are kept: ``<user cache>/sdfit/native``."""
    import platformdirs  # pooch.os_cache's folder; importing pooch costs 40 ms

    return Path(platformdirs.user_cache_dir("sdfit")) / "native"


def _compile(command: list[str], source: str, path: Path) -> bool:
    """Compile into ``path`` atomically (a temporary file renamed into place)."""
    global last_failure
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            c_file, target = Path(tmp) / "source.c", Path(tmp) / path.name
            c_file.write_text(source)
            done = subprocess.run([*command, *FLAGS, "-o", str(target), str(c_file), "-lm"],
                                  capture_output=True, text=True)
            if done.returncode != 0 or not target.exists():
                last_failure = f"the C compiler failed: {done.stderr.strip()[:500]}"
                return False
            os.replace(target, path)
    except OSError as error:  # no compiler to run, a cache that cannot be written
        last_failure = f"could not compile into {path.parent}: {error}"
        return False
    return True


def _machine() -> str:
    """What ``-march=native`` compiles for: the CPU's flags where the system tells them."""
    flags = ""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo") as info:
                flags = next((line for line in info if line.startswith("flags")), "")
        except OSError:
            pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def threads() -> int:
    """Threads compiled code runs on: one per core in the main process; one in a worker
    process of a pool, whose siblings use the other cores (``SDFIT_THREADS`` overrides)."""
    return _threads(os.getpid())


@functools.cache
def _threads(pid: int) -> int:
    if "SDFIT_THREADS" in os.environ:
        return max(1, int(os.environ["SDFIT_THREADS"]))
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return 1
    return os.cpu_count() or 1


def pool() -> ThreadPoolExecutor:
    """This process's thread pool for compiled calls, which release the GIL (a forked
    child makes its own)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(threads(), thread_name_prefix="sdfit-native"))
    return _POOL[1]
