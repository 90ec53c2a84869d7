"""Checkpoints: every finished chunk of a fit saved in the results folder, so that an
interrupted run resumes where it stopped and loses nothing.

``DIR/chunks/manifest.json`` records a fingerprint of the run (model file, the
data as read, resolved problem with solver settings, chunking); ``DIR/chunks/chunk-000007.npz``
holds the solution of chunk 7, written atomically as soon as it is done.  A
resumed run must have the same fingerprint, so chunks of different runs are
never mixed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from .data import Panel
from .exceptions import SdfitError, SpecError
from .files import atomic_write, sha256
from .resolved import Resolved

FOLDER = "chunks"
MANIFEST = "manifest.json"
FORMAT = 1

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


class ChunkStore:
    """The chunks of one fit in ``out/chunks``.

    Parameters
    ----------
    out
        The results folder.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.folder = self.out / FOLDER

    def chunk_size(self) -> int | None:
        """The chunk size of the run recorded here, if any (a resumed run keeps it)."""
        manifest = self._manifest()
        return manifest["chunk_size"] if manifest else None

    def open(self, prints: dict[str, str], chunk_size: int, resume: bool) -> set[int]:
        """Start a run, or resume the one recorded here; return the chunks already done.

        Raises
        ------
        SpecError
            ``resume`` is asked for but the recorded run has another fingerprint.
        """
        manifest = self._manifest() if resume else None
        if manifest is not None:
            differs = [PARTS[k] for k in PARTS if manifest["fingerprint"].get(k) != prints[k]]
            if differs:
                raise SpecError(
                    f"Results folder '{self.out}' holds an interrupted run with another "
                    f"{' and '.join(differs)}; resume it with the same inputs, or run without "
                    "--resume to start over.")
            for stale in self.folder.glob(".*.tmp"):  # left by a write that was killed
                stale.unlink()
            return {int(p.stem.removeprefix("chunk-")) for p in self.folder.glob("chunk-*.npz")}
        self.remove()
        self.folder.mkdir(parents=True)
        text = json.dumps({"format": FORMAT, "fingerprint": prints, "chunk_size": chunk_size},
                          indent=2) + "\n"
        atomic_write(self.folder / MANIFEST, lambda p: Path(p).write_text(text))
        return set()

    def save(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write one chunk's arrays atomically (floats exactly)."""

        def write(path: str) -> None:
            with open(path, "wb") as handle:  # a handle: np.savez would append .npz to a name
                np.savez(handle, **arrays)

        atomic_write(self._path(index), write)

    def load(self, index: int, n_units: int) -> dict[str, np.ndarray]:
        """Read the arrays of chunk ``index``, which must hold ``n_units`` units."""
        with np.load(self._path(index)) as saved:
            arrays = {name: saved[name] for name in saved.files}
        if len(arrays["x"]) != n_units:
            raise SdfitError(f"Chunk file '{self._path(index)}' holds {len(arrays['x'])} units "
                             f"instead of {n_units}; run without --resume to start over.")
        return arrays

    def remove(self) -> None:
        """Delete the chunks (once the results they add up to are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.npz"

    def _manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise SpecError(f"'{path}' is not a checkpoint manifest sdfit can read; run "
                            "without --resume to start over.")
        return manifest


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
