"""The results folder of a run: locked while the run lasts, replaced as a whole at its end,
and never a place where sdfit deletes what it did not write.

For ``--out results`` sdfit works in a hidden sibling, ``.results.sdfit-partial/``:

* ``lock``: held (``flock``) for the run's lifetime; says which process holds it;
* ``chunks/``: the checkpoint of the run (:mod:`sdfit.checkpoint`), kept when the
  run is interrupted, for ``--resume``;
* ``staging/``: the new results, written there and then swapped in as ``results``
  in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, so
  that ``results`` is briefly absent but never a mixture of two runs).

``results/.sdfit.json`` lists every file sdfit wrote there with its sha256.  After
the swap, the previous results' files that still have their recorded checksum are
deleted; everything else in the old folder (a user's ``notes.txt``, anywhere
inside, or a table the user edited) is moved into the new one.  A folder that
exists, is not empty and has no such marker is refused, never replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np

from ..checkpoint import Checkpoint
from ..exceptions import ResultsFolderWarning, SdfitError, SpecError, warn_user
from ..files import parse_json, sha256
from .marker import (
    MARKER,
    fsync,
    is_complete,
    read_marker,
    seal,
    user_entries,
    verified,
    write_marker,
)

try:
    import fcntl
except ImportError:  # Windows: no flock (see _lock)
    fcntl = None

SUFFIX = ".sdfit-partial"
#: what sdfit says when writing fails for a reason the user can fix
WRITE_ERRORS = {errno.ENOSPC: "no space is left on the device",
                errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "a file grew beyond the size allowed",
                errno.EACCES: "permission was denied", errno.EPERM: "permission was denied",
                errno.EROFS: "the file system is read-only"}


def partial_folder(out: str | Path) -> Path:
    """Where sdfit keeps the lock, chunks and staging of the results folder ``out``."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}{SUFFIX}"


class ResultsFolder:
    """The results folder ``out`` of one run, used as a context manager that locks it.

    Parameters
    ----------
    out
        The results folder; created (with its parents) at :meth:`commit`.

    Raises
    ------
    SpecError
        ``out`` is empty or the current folder, a file, a mount point, below a file,
        not writable, or a folder holding files sdfit did not write.
    """

    def __init__(self, out: str | Path):
        self.name = os.fspath(out)
        self.out = _checked(self.name)
        self.partial = partial_folder(self.out)
        self.checkpoint = Checkpoint(self.partial / "chunks", self.name)
        self._lock: int | None = None
        self._made_staging = False  # this run created staging/: it may delete it
        self._swapped = False

    # -- the run's lifetime ---------------------------------------------------------------
    def __enter__(self) -> ResultsFolder:
        try:
            self._lock = _lock(self.partial / "lock", self.name)
            self._recover()
        except BaseException as error:
            self.__exit__(type(error), error, None)  # releases; says an OSError in a sentence
            raise
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._lock is not None:  # else the folder was never ours: touch nothing
            try:
                if self._made_staging and not self._swapped:  # unfinished: of no use
                    shutil.rmtree(self.partial / "staging", ignore_errors=True)
                os.unlink(self.partial / "lock")  # see _lock: a run waiting then tries again
                with contextlib.suppress(OSError):  # not empty: chunks, or a new run's lock
                    self.partial.rmdir()
            finally:
                os.close(self._lock)  # releases the flock
                self._lock = None
        if isinstance(error, OSError) and self._is_ours(error):
            raise SdfitError(self._sentence(error)) from None

    # -- chunks ---------------------------------------------------------------------------
    def begin(self, fingerprint: dict[str, str], chunk_size: int, n_chunks: int,
              resume: bool) -> set[int]:
        """Start a run of ``n_chunks`` chunks, or resume the one recorded (same sdfit
        version and fingerprint, else a SpecError sentence).  Returns the chunks already
        done and verified; any other chunk file is fitted again, with a warning."""
        return self.checkpoint.begin(fingerprint, chunk_size, n_chunks, resume)

    def save_chunk(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Save one chunk atomically, with its checksum."""
        try:
            self.checkpoint.save(index, arrays)
        except OSError as error:
            if error.errno not in WRITE_ERRORS:
                raise
            raise SdfitError(self._sentence(error)) from None

    def load_chunk(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of a chunk saved by this run or verified on resume."""
        return self.checkpoint.load(index)

    def chunk_size(self) -> int | None:
        """The chunk size of the interrupted run recorded here, if any (for a resume)."""
        return self.checkpoint.chunk_size()

    # -- results --------------------------------------------------------------------------
    @property
    def staging(self) -> Path:
        """The folder the new results are written into before :meth:`commit`."""
        staging = self.partial / "staging"
        if not staging.is_dir():
            staging.mkdir()
            self._made_staging = True
            write_marker(staging, None)
        return staging

    def commit(self) -> list[Path]:
        """Put the staged results in place of ``out`` in one step; then delete the previous
        results sdfit wrote and the chunks, and move everything else of the old folder
        into the new one.  Returns the files written, under ``out``.

        Raises
        ------
        SpecError
            Something of the user's in ``out`` has the name of a new result file (nothing
            is changed; the chunks stay for ``--resume``).
        """
        staging = self.staging
        written = seal(staging)
        if not self.out.exists():
            self.out.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, self.out)
            self._swapped = True
        else:
            self._refuse_clashes(staging)
            if _exchange(staging, self.out):
                old = staging
            else:  # no atomic exchange here: `out` is absent between the two renames
                old = self.partial / "retired"
                os.rename(self.out, old)
                os.rename(staging, self.out)
            self._swapped = True
            self._retire(old)
        fsync(self.out.parent)
        for left in self.checkpoint.remove():
            warn_user(f"Left '{left}' in place: sdfit cannot show that it wrote it.",
                      ResultsFolderWarning)
        return [self.out / name for name in written]

    def record(self, path: str | Path) -> None:
        """Add a file written into ``out`` after :meth:`commit` (e.g. a report) to the
        files sdfit wrote, so that the next run replaces it instead of keeping it."""
        relative = Path(path).resolve().relative_to(self.out).as_posix()
        files = read_marker(self.out) or {}
        files[relative] = sha256(self.out / relative)
        write_marker(self.out, files)

    # -- helpers --------------------------------------------------------------------------
    def _refuse_clashes(self, staging: Path) -> None:
        ours = read_marker(self.out)
        if ours is None and any(self.out.iterdir()):
            raise SpecError(_not_ours(self.name, self.out))
        for entry in user_entries(self.out, verified(self.out, ours or {})):
            if os.path.lexists(staging / entry) or any(
                    os.path.lexists(staging / p) and not (staging / p).is_dir()
                    for p in Path(entry).parents[:-1]):
                raise SpecError(
                    f"'{self.out / entry}' was not written by sdfit (or was changed since) "
                    f"and the new results need its name; move it away and run again with "
                    "--resume.")

    def _retire(self, old: Path) -> None:
        """Empty ``old`` (previous results, or a staging left by a crash): delete the files
        sdfit wrote, move everything else into ``out``."""
        files = read_marker(old)
        if files is not None and not is_complete(old):
            shutil.rmtree(old)  # an unfinished staging: all sdfit's
            return
        ours = verified(old, files or {})
        for entry in user_entries(old, ours):
            target = self.out / entry
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _move_without_replacing(old / entry, target)
            except OSError:
                continue  # kept in `old`, said below
        for name in ours:
            (old / name).unlink()
        (old / MARKER).unlink(missing_ok=True)
        for folder, _, _ in os.walk(old, topdown=False):
            if not os.listdir(folder):
                os.rmdir(folder)
        if old.exists():
            warn_user(f"Kept '{old}': it holds files sdfit did not write and could not "
                          f"move into '{self.name}'.", ResultsFolderWarning)

    def _recover(self) -> None:
        """Finish what a killed commit left: the previous results restored if `out` went
        missing between two renames, leftover folders emptied as :meth:`commit` does."""
        retired = self.partial / "retired"
        if retired.exists() and not self.out.exists():
            os.rename(retired, self.out)
        for left in (self.partial / "staging", retired):
            if left.exists():
                self._retire(left)

    def _is_ours(self, error: OSError) -> bool:
        """Whether ``error`` is one of writing into this folder the user can fix."""
        if error.errno not in WRITE_ERRORS:
            return False
        where = error.filename
        return where is None or any(Path(os.fsdecode(where)).resolve().is_relative_to(p)
                                    for p in (self.out, self.partial))

    def _sentence(self, error: OSError) -> str:
        where = f" ('{os.fsdecode(error.filename)}')" if error.filename else ""
        saved = " and the chunks saved are kept: run again with --resume once fixed" \
            if self.checkpoint.folder.is_dir() else ""
        return (f"Could not write the results of '{self.name}': {WRITE_ERRORS[error.errno]}"
                f"{where}. The previous results in '{self.name}' are untouched{saved}.")


# -- the folder's path ---------------------------------------------------------------------
def _checked(name: str) -> Path:
    """``name`` as an absolute path (symlinks resolved: their target is replaced), or a
    SpecError sentence saying why sdfit cannot use it as a results folder."""
    if not name.strip():
        raise SpecError("The results folder (--out) is empty; give a folder such as 'results'.")
    path = Path(name).expanduser()
    if path.name in ("", ".", ".."):
        raise SpecError(f"Results folder '{name}' names no folder of its own; give one such "
                        "as 'results' (sdfit replaces its results folder as a whole).")
    path = path.resolve()
    if Path.cwd().resolve().is_relative_to(path):
        raise SpecError(f"Results folder '{name}' is the current folder or holds it; give a "
                        "folder of its own such as 'results' (sdfit replaces it as a whole).")
    existing = next(p for p in [path, *path.parents] if os.path.lexists(p))
    if existing != path and not existing.is_dir():
        raise SpecError(f"Results folder '{name}' cannot be made: '{existing}' is a file, "
                        "not a folder.")
    if existing == path and not path.is_dir():
        raise SpecError(f"Results folder '{name}' exists and is not a folder.")
    if existing == path and os.path.ismount(path):
        raise SpecError(f"Results folder '{name}' is a mount point, which sdfit cannot "
                        "replace; give a folder inside it.")
    # the new results are prepared beside `out` and swapped in: both need write permission
    for folder in [existing] if existing != path else [path.parent, path]:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SpecError(f"Cannot write results folder '{name}': no permission to write "
                            f"in '{folder}'.")
    if existing == path and read_marker(path) is None and any(path.iterdir()):
        raise SpecError(_not_ours(name, path))
    return path


def _not_ours(name: str, path: Path) -> str:
    example = sorted(p.name for p in path.iterdir())[0]
    return (f"Results folder '{name}' holds files sdfit did not write (such as '{example}') "
            "and no record of its own; give a new or empty folder, so that nothing of yours "
            "is replaced.")


# -- the lock ------------------------------------------------------------------------------
def _lock(path: Path, name: str) -> int:
    """A descriptor of ``path`` holding an exclusive flock, or a SpecError naming who
    holds it.  The file is removed when a run ends, so a lock taken on a file that is no
    longer at ``path`` is no lock: then try again."""
    if fcntl is None:  # the folder cannot be locked here: README, Safety, says so
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for _ in range(10):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed by a run that just ended
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = parse_json(os.pread(fd, 4096, 0))
            os.close(fd)
            raise SpecError(f"Results folder '{name}' is in use by another sdfit run "
                            f"({_describe(holder)}).") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
            return fd
        os.close(fd)
    raise SpecError(f"Results folder '{name}' is in use by other sdfit runs starting and "
                    "ending; try again.")


def _describe(holder) -> str:
    if not isinstance(holder, dict):
        return "which one is not recorded"
    host = holder.get("host")
    where = f" on host {host}" if host and host != socket.gethostname() else ""
    return f"pid {holder.get('pid')}{where}, started {holder.get('started')}"


# -- file system primitives ----------------------------------------------------------------
AT_FDCWD, RENAME_NOREPLACE, RENAME_EXCHANGE = -100, 1, 2


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """Linux's renameat2; False where the C library, kernel or file system lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    call = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if call is None:
        return False
    if call(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(target))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step; False where that cannot be done."""
    return _renameat2(a, b, RENAME_EXCHANGE)


def _move_without_replacing(source: Path, target: Path) -> None:
    if not _renameat2(source, target, RENAME_NOREPLACE):
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(target))
        os.rename(source, target)
