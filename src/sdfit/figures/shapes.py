"""US county boundaries for maps: read from a shapefile once, projected to an equal-area
map, lightly simplified, and cached in the user cache under the sha256 of the files and
sdfit's version.

The census shapefiles sdfit uses (``US_County_2000_2004`` and ``US_State``) already hold
projected metres: the lower 48 states in USA Contiguous Albers (ESRI:102003, checked in
the tests against the projection of :mod:`.projection`) with Alaska and Hawaii moved
into insets.  They are used as they are.  A shapefile in longitude and latitude (the
Census Bureau's TIGER files) is projected with :func:`.projection.albers_usa`.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..exceptions import DataError
from ..files import atomic_write
from ..names import did_you_mean
from .projection import albers_usa, inset_shifts, is_geographic
from .units import fips

CACHE_VERSION = 2  # bump when what is cached changes
# a vertex grid far below one pixel of any map sdfit draws (the lower 48 span 4,600 km:
# 3 km a pixel at 1,500 pixels); neighbours snap to the same points, so no slivers open
SNAP_METRES = 500.0
STATES_FILE = "US_State.shp"  # state outlines, looked for beside the county shapefile
# field names of the census file, then of the Census Bureau's TIGER files
_FIELDS = {"state": ("StateFIPSN", "STATEFP"), "county": ("CntyFIPSN", "COUNTYFP"),
           "county name": ("CntyName", "NAMELSAD", "NAME"), "state name": ("StateName",)}


@dataclass(frozen=True)
class CountyShapes:
    """Projected county outlines, one record per (state, county) FIPS pair.

    Attributes
    ----------
    state, county : ndarray of int, shape (N,)
        FIPS numbers of each record.
    name : ndarray of str, shape (N,)
        ``"Los Angeles County, California"``.
    vertices : ndarray, shape (V, 2)
        Every ring's vertices in map metres, ring after ring.
    ring_starts : ndarray of int, shape (R + 1,)
        Where each ring starts in ``vertices`` (and where the last one ends).
    record_rings : ndarray of int, shape (N + 1,)
        Where each record's rings start in ``ring_starts``.
    border_vertices, border_starts : ndarray
        The same for the state outlines (lines; empty without a state shapefile).
    """

    state: np.ndarray
    county: np.ndarray
    name: np.ndarray
    vertices: np.ndarray
    ring_starts: np.ndarray
    record_rings: np.ndarray
    border_vertices: np.ndarray
    border_starts: np.ndarray

    @functools.cached_property
    def paths(self) -> list:
        """One compound matplotlib Path per record (holes stay holes); built once."""
        from matplotlib.path import Path as MplPath

        codes = np.full(len(self.vertices), MplPath.LINETO, dtype=MplPath.code_type)
        codes[self.ring_starts[:-1]] = MplPath.MOVETO
        codes[self.ring_starts[1:] - 1] = MplPath.CLOSEPOLY
        cuts = self.ring_starts[self.record_rings]
        return [MplPath(self.vertices[a:b], codes[a:b]) for a, b in zip(cuts[:-1], cuts[1:],
                                                                           strict=True)]

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the outlines: what a raster of them is keyed by."""
        digest = hashlib.sha256()
        for array in (self.vertices, self.ring_starts, self.record_rings,
                      self.border_vertices, self.border_starts):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def borders(self) -> list[np.ndarray]:
        starts = self.border_starts
        return [self.border_vertices[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def locate(self, state, county) -> np.ndarray:
        """The record of each (state, county) pair, -1 where the shapefile has none."""
        index = pd.MultiIndex.from_arrays([self.state, self.county])
        return index.get_indexer(pd.MultiIndex.from_arrays([fips(state), fips(county)]))

    def names(self) -> pd.Series:
        """County names indexed by (state, county)."""
        return pd.Series(self.name, pd.MultiIndex.from_arrays([self.state, self.county],
                                                              names=["state", "county"]))


def load_county_shapes(shapefile: str | Path, *, cache: bool = True) -> CountyShapes:
    """The counties of ``shapefile`` (a ``.shp`` with its ``.dbf`` beside it; the state
    outlines from ``US_State.shp`` beside it when present), from the user cache when the
    same files were read before.

    Raises
    ------
    DataError
        A file is missing, or the ``.dbf`` lacks the state or county FIPS field.
    """
    files = _files(Path(shapefile))
    return _load(files, tuple(f.stat().st_mtime_ns for f in files), cache)


@functools.lru_cache(maxsize=4)
def _load(files: tuple[Path, ...], mtimes: tuple[int, ...], cache: bool) -> CountyShapes:
    """(``mtimes`` is part of the memo key only: a changed file is read again.)"""
    # keyed by sdfit's version too: a new release never reads what an old one cached
    digest = hashlib.sha256(f"county-shapes {CACHE_VERSION} {SNAP_METRES} {__version__}"
                            .encode())
    for path in files:
        digest.update(path.read_bytes())
    names = [f.name for f in fields(CountyShapes)]

    def read() -> dict[str, np.ndarray]:
        shapes = _read(files[0], files[2] if len(files) > 2 else None)
        return {name: getattr(shapes, name) for name in names}

    arrays = cached_arrays(cache_file("county-shapes", digest.hexdigest()) if cache else None,
                           read, lambda found: set(names) <= set(found))
    return CountyShapes(**{name: arrays[name] for name in names})


def cached_arrays(cached: Path | None, make, sound) -> dict[str, np.ndarray]:
    """The arrays ``make()`` returns, read from the ``.npz`` file ``cached`` instead when a
    copy there is readable and ``sound(arrays)``, else made and saved there atomically
    (``cached`` None, or a read-only cache, costs only time)."""
    if cached is not None and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as npz:
                found = {name: npz[name] for name in npz.files}
            if sound(found):
                return found
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache file: made again and replaced
    arrays = make()
    if cached is not None:
        try:
            atomic_write(cached, lambda p: _save(arrays, p))
        except OSError:
            pass
    return arrays


def _files(shp: Path) -> tuple[Path, ...]:
    dbf = shp.with_suffix(".dbf")
    for path in (shp, dbf):
        if not path.is_file():
            raise DataError(f"County shapefile '{path}' does not exist.")
    states = shp.with_name(STATES_FILE)
    if states != shp and states.is_file() and states.with_suffix(".dbf").is_file():
        return shp, dbf, states, states.with_suffix(".dbf")
    return shp, dbf


def cache_file(kind: str, digest: str) -> Path | None:
    """``<user cache>/<kind>-<digest>.npz``; None when the cache folder cannot be made."""
    from ..datasets import cache_dir

    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / f"{kind}-{digest[:32]}.npz"


def _save(arrays: dict[str, np.ndarray], path: str) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _read(shp: Path, states: Path | None) -> CountyShapes:
    counties = _records(shp, ("state", "county", "county name", "state name"))
    borders = _records(states, ("state",)) if states else []
    rings: dict[tuple[int, int], list[np.ndarray]] = {}
    names: dict[tuple[int, int], str] = {}
    for fields_, shape_rings in counties:
        key = (int(fields_["state"]), int(fields_["county"]))
        names[key] = ", ".join(str(fields_[f]).strip() for f in ("county name", "state name")
                               if f in fields_)
        rings.setdefault(key, []).extend(shape_rings)
    keys = list(rings)
    county_rings = [r for k in keys for r in rings[k]]
    state_rings = [r for _, shape_rings in borders for r in shape_rings]
    # the insets move by the same distance in both files
    ring_state = [k[0] for k in keys for _ in rings[k]]
    shifts = inset_shifts(np.concatenate(county_rings),
                          np.repeat(ring_state, [len(r) for r in county_rings]))
    border_state = [int(f["state"]) for f, shape_rings in borders for _ in shape_rings]
    vertices, ring_starts = _snap([r + shifts.get(s, 0) for r, s in zip(
        county_rings, ring_state, strict=True)])
    border_vertices, border_starts = _snap([r + shifts.get(s, 0) for r, s in zip(
        state_rings, border_state, strict=True)])
    return CountyShapes(
        state=np.array([k[0] for k in keys], dtype=np.int64),
        county=np.array([k[1] for k in keys], dtype=np.int64),
        name=np.array([names[k] for k in keys], dtype=str),
        vertices=vertices, ring_starts=ring_starts,
        record_rings=np.concatenate([[0], np.cumsum([len(rings[k]) for k in keys])]).astype(
            np.int64),
        border_vertices=border_vertices, border_starts=border_starts)


def _records(shp: Path, roles: tuple[str, ...]) -> list[tuple[dict, list[np.ndarray]]]:
    """Every record of a shapefile: its fields by role, and its rings in map metres."""
    import shapefile

    with open(shp, "rb") as shp_file, open(shp.with_suffix(".dbf"), "rb") as dbf_file:
        reader = shapefile.Reader(shp=shp_file, dbf=dbf_file)
        geographic = is_geographic(tuple(reader.bbox))
        at = _field_positions(reader, shp, roles)
        out = []
        for shape, record in zip(reader.iterShapes(), reader.iterRecords(), strict=True):
            fields_ = {role: record[i] for role, i in at.items()}
            out.append((fields_, _rings(shape, int(fields_["state"]) if geographic else None)))
    return out


def _field_positions(reader, shp: Path, roles: tuple[str, ...]) -> dict[str, int]:
    names = [f[0] for f in reader.fields[1:]]
    at = {}
    for role in roles:
        candidates = _FIELDS[role]
        found = next((c for c in candidates if c in names), None)
        if found is not None:
            at[role] = names.index(found)
        elif role in ("state", "county"):
            hint = did_you_mean(candidates[0], names)
            raise DataError(f"Shapefile '{shp.with_suffix('.dbf')}' has no {role} FIPS "
                            f"field (looked for {', '.join(candidates)}).{hint}")
    return at


def _rings(shape, state: int | None) -> list[np.ndarray]:
    """A shape's rings; projected from degrees when ``state`` says where they are."""
    points = np.asarray(shape.points, dtype=float).reshape(-1, 2)
    parts = [*shape.parts, len(points)] if len(points) else []
    rings = [points[a:b] for a, b in zip(parts[:-1], parts[1:], strict=True)]
    if state is None:
        return rings
    return [np.column_stack(albers_usa(r[:, 0], r[:, 1], state)) for r in rings]


def _snap(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rings with their vertices moved to a grid of SNAP_METRES and repeats dropped; a ring
    that would keep fewer than four vertices keeps its own."""
    if not rings:
        return np.zeros((0, 2)), np.zeros(1, dtype=np.int64)
    lengths = np.array([len(r) for r in rings])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    points = np.concatenate(rings)
    snapped = np.round(points / SNAP_METRES) * SNAP_METRES
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = (snapped[1:] != snapped[:-1]).any(axis=1)
    keep[starts[:-1]] = keep[starts[1:] - 1] = True  # every ring keeps its ends
    ring_of = np.repeat(np.arange(len(rings)), lengths)
    kept = np.bincount(ring_of, weights=keep, minlength=len(rings))
    small = np.repeat(kept < 4, lengths)
    keep |= small
    vertices = np.where(small[:, None], points, snapped)[keep]
    counts = np.bincount(ring_of[keep], minlength=len(rings))
    return vertices, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
