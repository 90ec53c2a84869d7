"""Compile once: compiled models kept in the user cache, so that a repeated run neither
translates nor compiles the model again.

An entry is the pickled :class:`~.runtime.program.BatchModel` (plain data: names,
expressions as text, constant arrays), named by a key made of the model file's suffix
and sha256, the sha256 of every data file given and of sdfit's model code (a changed
compiler never meets an old entry, even under the same version number), and PySD's and
NumPy's versions.  The key is stored in the entry too and checked on loading: an entry
whose key does not match, or that does not load, is never used (the model is compiled
again and the entry replaced).  Models that read external files named inside them
(``GET XLS``, ``GET DIRECT ...``, ``GET DATA``, ...) are not cached: their values could
change without the model file changing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from ..._version import __version__
from ..translate import VENSIM_SUFFIXES, XMILE_SUFFIXES

#: ``SDFIT_MODEL_CACHE=0`` translates and compiles on every load.
ENABLED = os.environ.get("SDFIT_MODEL_CACHE", "1") != "0"
#: External data read by the model itself: such models are compiled on every load.
EXTERNAL = re.compile(rb"GET\s*(XLS|DIRECT|123|DATA|VDF)", re.IGNORECASE)


@dataclass(frozen=True)
class LoadRecord:
    """How the last model was loaded: from the cache, or translated and compiled."""

    path: str
    cached: bool
    seconds: float  # the whole load, translation and compile included on a miss


#: The last :func:`load`, for run records ("compile: 0.4 s" on a first run only).
last_load: LoadRecord | None = None


def load(path: str | Path, data_files: Iterable[str | Path], compile_model: Callable):
    """The compiled model of ``path``: from the cache when its key matches, else
    ``compile_model()`` (then stored)."""
    global last_load
    started = time.perf_counter()
    data_files = list(data_files)
    key = cache_key(path, data_files) if ENABLED else None
    model = _read(key) if key else None
    cached = model is not None
    if model is None:
        model = compile_model()
        if key:
            _write(key, model)
    else:
        model.path = str(path)  # the same content under another name
    last_load = LoadRecord(str(path), cached, time.perf_counter() - started)
    return model


def cache_key(path: str | Path, data_files: list) -> str | None:
    """The key of a model file and its data files; None when it must not be cached (a
    missing file, external data read by the model)."""
    suffix = Path(path).suffix.lower()
    if suffix not in VENSIM_SUFFIXES | XMILE_SUFFIXES:
        return None  # the translator says what is wrong
    try:
        content = Path(path).read_bytes()
        data = [Path(f).read_bytes() for f in data_files]
    except OSError:
        return None  # the compiler says what is wrong
    if EXTERNAL.search(content):
        return None
    digest = hashlib.sha256()
    for part in (content, *data):
        digest.update(hashlib.sha256(part).digest())
    digest.update("\0".join([suffix, __version__, _code_digest(), _version("pysd"),
                              np.__version__]).encode())
    return digest.hexdigest()


@cache
def _code_digest() -> str:
    """sha256 of the source of :mod:`sdfit.model` (the translator, compiler and runtime)."""
    digest = hashlib.sha256()
    root = Path(__file__).parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """``<user cache>/sdfit/models``."""
    import platformdirs  # pooch.os_cache's folder; importing pooch costs 40 ms

    return Path(platformdirs.user_cache_dir("sdfit")) / "models"


def _read(key: str):
    path = cache_dir() / f"{key}.pickle"
    try:
        with open(path, "rb") as handle:
            stored_key, model = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception:  # a damaged entry: compiled again and replaced
        return None
    return model if stored_key == key else None


def _write(key: str, model) -> None:
    """Store atomically (temporary file, then rename); a cache that cannot be written is
    no error."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
            pickle.dump((key, model), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, folder / f"{key}.pickle")
    except OSError:
        pass


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""
