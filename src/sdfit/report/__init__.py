"""``sdfit report``: one self-contained HTML page about a fit.

The page is made from a FitResult alone (with ``sdfit report DIR``, the one
``sdfit fit --out DIR`` wrote) and embeds its figures (base64 PNG: those ``sdfit fit``
drew from the same results, else drawn again; its own charts as SVG) and its unit data
as JSON, so it can be mailed or archived alone.  Sections: run (spec and sha256
fingerprints), outcome, SSE distribution, parameters, observed vs fitted, county maps
(US counties only), identifiability, units (best, median, worst, slowest), and a unit
lookup searched in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .._version import __version__
from ..exceptions import SdfitError
from ..figures.fork import run_split
from ..figures.record import reusable
from ..figures.shapes import load_county_shapes
from ..figures.units import grid_units, is_counties, unit_keys, unit_labels
from ..files import atomic_write
from ..results import FitResult
from ..stories import UnitStory, unit_stories
from . import sections
from .html import CSS, escape
from .lookup import lookup

SECTIONS = ("run", "outcome", "sse", "parameters", "fit", "map", "identifiability", "units",
            "lookup")
_MISSING_SHAPES = ("the county shapefile was not found (set SDFIT_DATA to the folder "
                   "holding census/US_County_2000_2004.shp).")


def load_results(folder: str | Path) -> FitResult:
    """The FitResult written into ``folder`` (see :meth:`FitResult.read`): the one place the
    report reads a results folder."""
    return FitResult.read(folder)


def write_report(folder: str | Path, out: str | Path | None = None,
                 shapefile: str | Path | None = None,
                 stories: Mapping[str, UnitStory] | None = None) -> Path:
    """Render the report of the results in ``folder`` into ``out`` (default
    ``folder/report.html``).  ``shapefile`` draws the county maps and names the
    counties; by default the census shapes when available.  The figures ``sdfit fit``
    wrote into ``folder/figures`` are embedded when they are proven drawn from these
    results (see :mod:`sdfit.figures.record`), else drawn again."""
    result = load_results(folder)
    if shapefile is None and is_counties(result):
        from ..datasets import county_shapes

        shapefile = county_shapes()
    shapes = load_county_shapes(shapefile) if shapefile and is_counties(result) else None
    drawn = reusable(folder, result.parameters, shapes.digest if shapes else None)
    page = render(result, shapefile, stories, drawn)
    out = Path(out) if out is not None else Path(folder) / "report.html"
    return atomic_write(out, lambda p: Path(p).write_text(page, encoding="utf-8"))


def render(result: FitResult, shapefile: str | Path | None = None,
           stories: Mapping[str, UnitStory] | None = None,
           drawn: Mapping[str, bytes] | None = None) -> str:
    """The report page as a string.

    Parameters
    ----------
    result
        The fit.
    shapefile
        County shapefile: county maps and names (units that are US counties only).
    stories
        Unit stories by unit key (``"state=6, county=37"``, as
        :func:`sdfit.stories.unit_stories` labels them): the best, median and worst units'
        trajectories (keys from :func:`sdfit.figures.grid_units`), and trajectories in the
        lookup.  Default: those three, simulated again by :func:`sdfit.stories.unit_stories`
        (the page says why when they cannot be).
    drawn
        PNGs of this result already drawn, by the name :func:`sdfit.figures.write_figures`
        gives them (``histogram.png``, ``observed_vs_fitted.png``, ``map.png``): embedded
        instead of drawn again.
    """
    drawn = drawn or {}
    shapes = load_county_shapes(shapefile) if shapefile and is_counties(result) else None
    keys = unit_keys(result.table, result.unit_columns)
    missing = None
    if stories is None:
        stories, missing = _grid_stories(result, keys)
    units = sections.Units(result.unit_columns, keys,
                           unit_labels(result, shapes.names() if shapes else None),
                           dict(stories), missing)
    run = result.run
    title = (f"sdfit report: {Path(str(run.model if run else 'model')).stem} on "
             f"{len(result.table):,} units")
    parts = [lambda: sections.run(result), lambda: sections.outcome(result, units),
             lambda: sections.sse(result),
             lambda: sections.parameters(result, drawn.get("histogram.png")),
             lambda: sections.fit(result, drawn.get("observed_vs_fitted.png")),
             lambda: sections.county_map(result, shapes, _MISSING_SHAPES,
                                         drawn.get("map.png")),
             lambda: sections.identifiability(result, units),
             lambda: sections.unit_section(result, units), lambda: lookup(result, units)]
    # the figures to draw with matplotlib each by a forked copy, while this process
    # writes the rest of the page
    to_draw = [key for key, name in (("map", "map.png"), ("parameters", "histogram.png"),
                                     ("fit", "observed_vs_fitted.png"))
               if name not in drawn and (key != "map" or shapes is not None)]
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class='meta'>sdfit {__version__} &middot; spec "
            f"{escape((run.spec if run else None) or '-')}</p>",
            "<nav>" + "".join(f"<a href='#{key}'>{key}</a>" for key in SECTIONS) + "</nav>",
            *run_split(parts, child=[SECTIONS.index(key) for key in to_draw])]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _grid_stories(result: FitResult, keys: list[str]) -> tuple[dict, str | None]:
    """The stories of the best, median and worst units, or why there are none."""
    if result.run is None and result.context is None:
        return {}, "this result has no record of the fit to simulate its units again."
    rows = {k: i for i, k in enumerate(keys)}
    ids = result.table[result.unit_columns]
    units = [tuple(ids.iloc[rows[k]]) for k in grid_units(result).values()]
    try:
        return unit_stories(result, units), None
    except SdfitError as error:
        return {}, str(error)
