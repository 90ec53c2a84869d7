"""Which results the PNGs of a results folder were drawn from: ``figures/figures.json``,
written by ``sdfit fit`` beside them, lets ``sdfit report`` embed them as they are
instead of drawing them again (most of its drawing), but only those it proves were drawn
by this sdfit from this very folder's results, as the report draws them: every result
file and every PNG still has the sha256 recorded, and the map shows every parameter
over the same county outlines.  Anything else is drawn again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..files import atomic_write, sha256

RECORD = "figures.json"


def results_fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every result file in ``folder`` (tables and run.json)."""
    from ..results import RESULT_FILES

    return {name: sha256(folder / name) for name in RESULT_FILES if (folder / name).is_file()}


def write_record(folder: str | Path, pngs: Sequence[Path], map_parameters: Sequence[str],
                 shapes: str | None) -> Path:
    """Record ``pngs`` (in ``folder/figures``) as drawn from the results in ``folder``;
    ``map_parameters``: those map.png shows; ``shapes``: the digest of the county
    outlines it was drawn over."""
    folder = Path(folder)
    record = {"sdfit": __version__, "results": results_fingerprint(folder),
              "figures": {p.name: sha256(p) for p in pngs},
              "map": {"parameters": list(map_parameters), "shapes": shapes}}
    text = json.dumps(record, indent=1)
    return atomic_write(folder / "figures" / RECORD, lambda p: Path(p).write_text(text))


def reusable(folder: str | Path, parameters: Sequence[str],
             shapes: str | None) -> dict[str, bytes]:
    """The PNGs of ``folder/figures`` proven drawn from the results in ``folder`` (see the
    module's docstring), by name: map.png only if it maps ``parameters`` over the outlines
    of digest ``shapes``."""
    folder = Path(folder)
    try:
        record = json.loads((folder / "figures" / RECORD).read_text(encoding="utf-8"))
        if record["sdfit"] != __version__ or record["results"] != results_fingerprint(folder):
            return {}
        pngs = dict(record["figures"])
        drawn_map = record["map"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no record, or not one this sdfit wrote: draw
    if drawn_map != {"parameters": list(parameters), "shapes": shapes}:
        pngs.pop("map.png", None)
    found = {}
    for name, digest in pngs.items():
        if not isinstance(name, str) or Path(name).name != name:  # a file of figures/ only
            continue
        try:
            data = (folder / "figures" / name).read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == digest:
            found[name] = data
    return found
