"""Files sdfit writes and reads: atomic writes, exact CSV round trips, sha256 fingerprints."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or None when ``path`` is not a file (e.g. an in-memory
    panel), so a results folder says exactly which inputs it came from."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as CSV atomically, floats with round-trip precision: with pyarrow's
    writer where it is installed (shortest exact representation, several times faster),
    else pandas' with 17 significant digits."""
    try:
        import pyarrow as pa
        from pyarrow import csv
    except ImportError:
        return atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format="%.17g"))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return atomic_write(path, lambda p: csv.write_csv(table, p))


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_csv`, floats exactly as written."""
    # pandas 3 parses floats exactly by default and deprecates the option
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **exact)


def atomic_write(path: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place,
    so a crash never leaves a half-written file under the final name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # our own temporary file, never the user's
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
