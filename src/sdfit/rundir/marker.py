"""The marker of a results folder, ``.sdfit.json``: which files sdfit wrote there, with their
sha256, so that "sdfit deletes only what it provably created" can be checked file by file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._version import __version__
from ..files import atomic_write, parse_json, sha256

MARKER = ".sdfit.json"


def read_marker(folder: Path) -> dict[str, str] | None:
    """``{relative path: sha256}`` of the files sdfit wrote in ``folder``, or None when
    the folder has no marker of sdfit's."""
    marker = read_json(folder / MARKER)
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        return None
    return {name: digest for name, digest in marker["files"].items()
            if isinstance(digest, str) and _is_plain(name)}


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished results folder (not a staging under way)."""
    return bool((read_json(folder / MARKER) or {}).get("complete"))


def write_marker(folder: Path, files: dict[str, str] | None) -> None:
    """Mark ``folder`` as sdfit's: complete with ``files``, or (None) a staging under way."""
    marker = {"sdfit": __version__, "complete": files is not None, "files": files or {}}
    atomic_write(folder / MARKER, lambda p: Path(p).write_text(
        json.dumps(marker, indent=1, sort_keys=True) + "\n"))


def seal(staging: Path) -> list[str]:
    """Flush every file of ``staging`` to disk and list them in its marker; return them."""
    files = {}
    for folder, _, names in os.walk(staging):
        for name in names:
            path = Path(folder) / name
            if path != staging / MARKER:
                fsync(path)
                files[path.relative_to(staging).as_posix()] = sha256(path)
    write_marker(staging, files)
    fsync(staging)
    return sorted(files)


def verified(folder: Path, files: dict[str, str]) -> set[str]:
    """The files sdfit wrote that are still as it wrote them: the ones it may delete."""
    return {name for name, digest in files.items()
            if _is_real_file(folder, name) and sha256(folder / name) == digest}


def _is_real_file(folder: Path, name: str) -> bool:
    """A regular file reached from ``folder`` through no symbolic link (a link is the
    user's, and what it leads to is not sdfit's to delete)."""
    path = folder / name
    within = [path, *path.parents[:len(Path(name).parts) - 1]]
    return path.is_file() and not any(p.is_symlink() for p in within)


def user_entries(folder: Path, ours: set[str]) -> list[str]:
    """The topmost entries of ``folder`` holding nothing of sdfit's (relative paths)."""
    holding = {parent.as_posix() for name in ours for parent in Path(name).parents}
    entries = []
    for root, dirs, names in os.walk(folder):
        prefix = Path(root).relative_to(folder)
        keep = []
        for name in sorted(dirs) + sorted(names):
            relative = (prefix / name).as_posix()
            if relative in ours or relative == MARKER:
                continue
            if relative in holding and name in dirs and not (Path(root) / name).is_symlink():
                keep.append(name)
            else:
                entries.append(relative)
        dirs[:] = keep  # os.walk descends only into folders holding sdfit's files
    return entries


def _is_plain(name: str) -> bool:
    """A relative path inside the folder (a marker is data, not a way out of it)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path):
    """The JSON value in a file, or None if it is missing or not JSON."""
    try:
        return parse_json(path.read_bytes())
    except OSError:
        return None
