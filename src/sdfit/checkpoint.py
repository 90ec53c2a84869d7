"""Checkpoints: every finished chunk of a fit saved as soon as it is done, so that an
interrupted run resumes where it stopped, trusting no chunk it cannot verify.

A checkpoint is a folder sdfit owns (see :mod:`sdfit.rundir`) holding
``chunk-000007.npz`` files (the arrays of chunk 7, written with ``np.savez``)
and ``manifest.json``, in JSON lines: the first line says which run the chunks
belong to (format, sdfit version, fingerprint, chunk size), each further line
records one saved chunk's sha256.  A record is appended before its chunk file
is renamed into place, so a crash leaves at worst a record without its file
(the chunk is simply fitted again).  On resume a chunk counts as done only if
its bytes have the recorded checksum: a damaged, truncated, copied-over or
unknown chunk file is fitted again with a :class:`ResultsFolderWarning`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .data import Panel
from .exceptions import ResultsFolderWarning, SdfitError, SpecError, warn_user
from .files import atomic_write, parse_json, sha256
from .resolved import Resolved

MANIFEST = "manifest.json"
FORMAT = 2
CHUNK = re.compile(r"chunk-(\d{6})\.npz")
#: temporary files of atomic writes (see files.atomic_write), left behind by a kill
TEMPORARY = re.compile(r"\.(chunk-\d{6}\.npz|manifest\.json)\..+\.tmp")

#: what a fingerprint covers, in the words used when a resumed run differs
PARTS = {"model": "model file", "data": "data", "problem": "problem or solver settings",
         "chunking": "chunking"}


def run_fingerprint(resolved: Resolved, panel: Panel, solver: object, drop_invalid: bool,
                    chunk_size: int, n_units: int) -> dict[str, str]:
    """Hashes of everything that decides a chunk's result, one per part of :data:`PARTS`."""
    problem = {"resolved": resolved.fingerprint(), "solver": repr(solver),
               "drop_invalid": drop_invalid}
    return {
        "model": sha256(resolved.model.path) or f"no file '{resolved.model.path}'",
        "data": panel.content_hash(),
        "problem": _sha256(json.dumps(problem, sort_keys=True).encode()),
        "chunking": f"{n_units} units in chunks of {chunk_size}",
    }


class ManifestError(SdfitError):
    """A manifest sdfit cannot read: its chunks cannot be trusted."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a checkpoint's manifest says: the run, and each saved chunk's sha256."""

    version: str
    fingerprint: dict[str, str]
    chunk_size: int
    chunks: dict[int, str]


class Checkpoint:
    """The chunks of one run in ``folder``, which sdfit owns.

    Parameters
    ----------
    folder
        Where the chunks are kept.
    name
        The results folder they belong to, as the user named it (for messages).
    """

    def __init__(self, folder: str | Path, name: str):
        self.folder, self.name = Path(folder), name
        self.manifest_path = self.folder / MANIFEST
        self._sums: dict[int, str] = {}  # sha256 of the chunks known good in this run

    def chunk_size(self) -> int | None:
        """The chunk size of the run recorded here, if it can be read (a resume keeps it)."""
        try:
            manifest = self.read()
        except ManifestError:
            return None
        return manifest.chunk_size if manifest else None

    def begin(self, prints: dict[str, str], chunk_size: int, n_chunks: int,
              resume: bool) -> set[int]:
        """Start a run, or resume the one recorded here; return the chunks done and verified.

        Raises
        ------
        SpecError
            ``resume`` is asked for but the recorded run is of another sdfit version
            or has another fingerprint (its chunks are left as they are).
        """
        manifest = None
        if resume:
            try:
                manifest = self.read()
            except ManifestError as error:
                warn_user(f"{error}; every chunk is fitted again.", ResultsFolderWarning)
        self._sums = {}
        if manifest is None:
            self._start_over()
            header = {"format": FORMAT, "sdfit": __version__, "fingerprint": prints,
                      "chunk_size": chunk_size}
            atomic_write(self.manifest_path, lambda p: Path(p).write_text(
                json.dumps(header) + "\n"))
            return set()
        self._refuse_another_run(manifest, prints)
        with open(self.manifest_path, "rb+") as handle:  # end a record torn by a kill
            size = handle.seek(0, io.SEEK_END)
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        self._sums = {i: manifest.chunks[i] for i in self._verified(manifest.chunks, n_chunks)}
        return set(self._sums)

    def save(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write one chunk's arrays atomically (floats exactly) and record their sha256."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        digest = _sha256(data)
        with open(self.manifest_path, "a") as handle:  # recorded before the file appears
            handle.write(json.dumps({"chunk": index, "sha256": digest}) + "\n")
        atomic_write(self.path(index), lambda p: Path(p).write_bytes(data))
        self._sums[index] = digest

    def load(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of chunk ``index`` (verified on resume, or saved by this run), checked
        again against their sha256.

        Raises
        ------
        SdfitError
            The chunk file changed since it was verified, or cannot be read.
        """
        path = self.path(index)
        data = path.read_bytes()
        if _sha256(data) != self._sums[index]:
            raise SdfitError(f"Chunk file '{path}' changed while this run was using it; run "
                             "again with --resume to fit its units again.")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                return {name: saved[name] for name in saved.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise SdfitError(f"Chunk file '{path}' cannot be read ({error}); run without "
                             "--resume to start over.") from None

    def remove(self) -> list[Path]:
        """Delete what this folder's manifest proves sdfit wrote — each chunk (or a kill's
        complete temporary copy of it) whose bytes have the sha256 recorded for its index,
        then the manifest itself (and a kill's temporary copy of its header) — and the
        folder if nothing else is left; return what is left."""
        if not self.folder.is_dir():
            return []
        try:
            manifest = self.read()
        except ManifestError:  # not a manifest this sdfit wrote: nothing here is provably ours
            manifest = None
        recorded = manifest.chunks if manifest is not None else {}
        left = []
        for path in self.folder.iterdir():
            if path.is_file() and path.name != MANIFEST and self._ours(path, recorded):
                path.unlink()
            elif path.name != MANIFEST or manifest is None:
                left.append(path)
        if manifest is not None:
            self.manifest_path.unlink()
        if not left:
            self.folder.rmdir()
        return left

    def _start_over(self) -> None:
        """Remove the last run's chunks; a file left under a name this run will write (a
        chunk or the manifest that sdfit cannot show it wrote) is renamed aside, never
        overwritten, with a warning."""
        for left in self.remove():
            if CHUNK.fullmatch(left.name) or left.name == MANIFEST:
                aside = left.with_name(left.name + ".unverified")
                left.rename(aside)
                left = aside
            warn_user(f"Left '{left}' in place: sdfit cannot show that it wrote it.",
                      ResultsFolderWarning)
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _ours(path: Path, recorded: dict[int, str]) -> bool:
        """A chunk, or an atomic write's temporary copy of one, with its recorded sha256;
        or a temporary copy of a manifest header."""
        chunk, temporary = CHUNK.fullmatch(path.name), TEMPORARY.fullmatch(path.name)
        if temporary and temporary[1] == MANIFEST:
            lines = path.read_bytes().decode(errors="replace").splitlines()
            return bool(lines) and _header_problem(parse_json(lines[0])) is None
        match = chunk or (CHUNK.fullmatch(temporary[1]) if temporary else None)
        return match is not None and recorded.get(int(match[1])) == sha256(path)

    def path(self, index: int) -> Path:
        """The file of chunk ``index``."""
        return self.folder / f"chunk-{index:06d}.npz"

    def read(self) -> Manifest | None:
        """The manifest, or None when there is none.

        Raises
        ------
        ManifestError
            The manifest exists but is not one this sdfit can read.
        """
        try:
            lines = self.manifest_path.read_bytes().decode().splitlines()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise ManifestError(f"Checkpoint manifest '{self.manifest_path}' cannot be read "
                                f"({error})") from None
        header = parse_json(lines[0]) if lines else None
        problem = _header_problem(header)
        if problem:
            raise ManifestError(f"Checkpoint manifest '{self.manifest_path}' {problem}")
        chunks = {}
        for line in lines[1:]:  # a record torn by a kill is ignored: its chunk is re-fitted
            record = parse_json(line)
            if (isinstance(record, dict) and _is_count(record.get("chunk"))
                    and isinstance(record.get("sha256"), str)):
                chunks[record["chunk"]] = record["sha256"]
        return Manifest(header["sdfit"], header["fingerprint"], header["chunk_size"], chunks)

    def _refuse_another_run(self, manifest: Manifest, prints: dict[str, str]) -> None:
        if manifest.version != __version__:
            raise SpecError(
                f"Results folder '{self.name}' holds an interrupted run of sdfit "
                f"{manifest.version}, not of this sdfit {__version__}; resume it with sdfit "
                f"{manifest.version}, or run without --resume to start over.")
        differs = [PARTS.get(k, k) for k in sorted(set(prints) | set(manifest.fingerprint))
                   if manifest.fingerprint.get(k) != prints.get(k)]
        if differs:
            raise SpecError(
                f"Results folder '{self.name}' holds an interrupted run with another "
                f"{' and '.join(differs)}; resume it with the same inputs, or run without "
                "--resume to start over.")

    def _verified(self, recorded: dict[int, str], n_chunks: int) -> set[int]:
        """The chunks whose file has the recorded checksum; a warning for every other file."""
        done = set()
        for path in sorted(self.folder.iterdir()):
            if path.name == MANIFEST or TEMPORARY.fullmatch(path.name):
                continue
            match = CHUNK.fullmatch(path.name)
            index = int(match[1]) if match else None
            if index is None or not path.is_file():
                why = "is not a chunk file sdfit writes; it is ignored"
            elif index >= n_chunks:
                why = f"is beyond the {n_chunks} chunks of this run; it is ignored"
            elif index not in recorded:
                why = "is not recorded in the manifest; its units are fitted again"
            elif sha256(path) != recorded[index]:
                why = "is damaged (its checksum differs from the manifest's); its units are " \
                      "fitted again"
            else:
                done.add(index)
                continue
            warn_user(f"'{path}' {why}.", ResultsFolderWarning)
        return done


def _header_problem(header) -> str | None:
    """What is wrong with a manifest's first line, or None."""
    if not isinstance(header, dict):
        return "is not a checkpoint manifest"
    if header.get("format") != FORMAT:
        return f"is in format {header.get('format')!r}, not {FORMAT}"
    for key, kind in [("sdfit", str), ("fingerprint", dict), ("chunk_size", int)]:
        if not isinstance(header.get(key), kind):
            return f"has no valid '{key}'"
    if not all(isinstance(v, str) for v in header["fingerprint"].values()):
        return "has no valid 'fingerprint'"
    if not _is_count(header["chunk_size"]) or header["chunk_size"] < 1:
        return f"says chunk_size = {header['chunk_size']!r}, not a positive whole number"
    return None




def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
