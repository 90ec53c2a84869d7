"""Figures of a fit, drawn without pyplot (importing sdfit never touches matplotlib's
global state): parameter histograms and county maps as small multiples, observed vs
fitted, and each unit's story.

Every function returns a :class:`matplotlib.figure.Figure` (shown as is in Jupyter);
:func:`write_figures` and :func:`write_unit_figures` write PNG files.

Names are imported lazily (PEP 562): the report names units and reuses the figures
``sdfit fit`` wrote without importing matplotlib (a fifth of a second).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..exceptions import FigureWarning, warn_user
from ..files import atomic_write
from ..lazy import attributes
from ..results import FitResult

#: public name -> the module (relative to this package) that defines it
_LAZY = {
    "DPI_FILE": ".canvas", "png_bytes": ".canvas", "save_png": ".canvas",
    "MapLayer": ".maps", "county_map": ".maps", "map_layers": ".maps",
    "unmapped_units": ".maps", "observed_vs_fitted": ".overview",
    "parameter_histograms": ".overview", "CountyShapes": ".shapes",
    "load_county_shapes": ".shapes", "drawn_variables": "..stories",
    "unit_figure": ".stories", "units_overview": ".stories",
    "write_unit_figures": ".stories", "grid_units": ".units", "is_counties": ".units",
    "pick_best_median_worst": ".units", "unit_keys": ".units", "unit_labels": ".units",
}

__all__ = [
    "CountyShapes", "MapLayer", "county_map", "drawn_variables", "grid_units",
    "is_counties", "load_county_shapes", "map_layers", "observed_vs_fitted",
    "parameter_histograms", "pick_best_median_worst", "plot_units", "png_bytes",
    "save_png", "unit_figure", "unit_keys", "unit_labels", "units_overview",
    "unmapped_units", "write_figures", "write_unit_figures",
]


__getattr__ = attributes(globals(), _LAZY)


def write_figures(result: FitResult, out: str | Path, *, map_parameter: str | None = None,
                  shapefile: str | Path | None = None) -> list[Path]:
    """Write into ``out``: ``histogram.png`` (one panel per fitted parameter),
    ``observed_vs_fitted.png`` and, when the units are US counties, ``map.png`` (one
    map per parameter, as in the report; only ``map_parameter``, larger, when given).

    ``shapefile`` is the county shapefile; for counties without it, the map is not drawn
    and a :class:`FigureWarning` says so.  Returns the paths written.
    """
    from .canvas import DPI_FILE, png_bytes
    from .fork import run_split
    from .maps import county_map
    from .overview import observed_vs_fitted, parameter_histograms
    from .shapes import load_county_shapes
    from .units import is_counties

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    draw = {"histogram.png": lambda: parameter_histograms(result),
            "observed_vs_fitted.png": lambda: observed_vs_fitted(result)}
    if is_counties(result):
        if shapefile is None:
            warn_user("No map.png: the county shapefile was not found (set SDFIT_DATA to the "
                      "folder holding census/US_County_2000_2004.shp).", FigureWarning)
        else:
            shapes = load_county_shapes(shapefile)
            draw["map.png"] = lambda: county_map(result, shapes,
                                                 [map_parameter] if map_parameter else None)
    # the histograms drawn here, the others each by a forked copy meanwhile
    pngs = run_split([lambda make=make: png_bytes(make(), DPI_FILE) for make in draw.values()],
                     child=range(1, len(draw)))
    return [atomic_write(out / name, lambda p, data=data: Path(p).write_bytes(data))
            for name, data in zip(draw, pngs, strict=True)]


def plot_units(result: FitResult, units: Sequence, out: str | Path,
               shapefile: str | Path | None = None, together: bool = False) -> list[Path]:
    """What ``sdfit plot DIR --unit ID...`` does: simulate ``units`` of ``result`` again
    (ids as in its table, e.g. ``(6, 37)``, or row numbers; see
    :func:`sdfit.stories.unit_stories`) and write ``unit-<key>.png`` for each into ``out``,
    titled with the county name when ``shapefile`` has it.  Returns the paths written."""
    from ..stories import unit_stories
    from .canvas import save_png
    from .shapes import load_county_shapes
    from .stories import units_overview, write_unit_figures
    from .units import is_counties, unit_keys, unit_labels

    stories = unit_stories(result, units)
    names = load_county_shapes(shapefile).names() if shapefile and is_counties(result) \
        else None
    labels = dict(zip(unit_keys(result.table, result.unit_columns),
                      unit_labels(result, names), strict=True))
    stories = {k: dataclasses.replace(s, label=labels.get(k, s.label))
               for k, s in stories.items()}
    if together:  # one figure of small multiples, a panel per unit
        Path(out).mkdir(parents=True, exist_ok=True)
        return [save_png(units_overview(stories), Path(out) / "units.png")]
    return write_unit_figures(stories, out)
