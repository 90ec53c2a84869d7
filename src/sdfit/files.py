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


#: Rows converted to Arrow at once when writing a table: a million-unit table is written
#: without a second, Arrow copy of it beside the pandas one (issue 15).
WRITE_BLOCK = 1 << 16


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as CSV atomically, floats with round-trip precision: with pyarrow's
    writer where it is installed (shortest exact representation, several times faster),
    a block of rows at a time, else pandas' with 17 significant digits."""
    try:
        from pyarrow import csv
    except ImportError:
        return atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format="%.17g"))

    return _write_blocks(frame, path, csv.CSVWriter)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as Parquet atomically (needs pyarrow), a block of rows at a time."""
    from pyarrow import parquet

    return _write_blocks(frame, path, parquet.ParquetWriter)


def _write_blocks(frame: pd.DataFrame, path: Path, writer_class) -> Path:
    """``frame`` through a pyarrow writer (``writer_class(file, schema)``), atomically."""
    def write(p):
        schema = _schema(frame)
        with writer_class(p, schema) as writer:
            for block in arrow_blocks(frame, schema):
                writer.write_table(block)

    return atomic_write(path, write)


def arrow_blocks(frame: pd.DataFrame, schema):
    """The frame as Arrow tables of WRITE_BLOCK rows (one, empty, for an empty frame), all
    of the whole frame's ``schema``."""
    import pyarrow as pa

    for first in range(0, max(len(frame), 1), WRITE_BLOCK):
        yield pa.Table.from_pandas(frame.iloc[first:first + WRITE_BLOCK], schema=schema,
                                   preserve_index=False)


def _schema(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Schema.from_pandas(frame, preserve_index=False)


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


def parse_json(data: str | bytes):
    """The JSON value in ``data``, or None if it is not JSON (a damaged record is a state
    the callers handle, not an error)."""
    import json

    try:
        return json.loads(data)
    except ValueError:
        return None
