"""Maps of fitted parameters over US counties: one small equal-area map per parameter,
with state borders, a colour scale that says what it clips, and named, counted legend
entries for what is not a value (no data, fit failed, not identifiable)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from ..results import FitResult
from . import canvas
from .raster import CountyImage
from .scale import colour_scale
from .shapes import CountyShapes
from .units import county_ids, identifiable, unit_keys, unit_noun

CLIP = (0.02, 0.98)  # colour limits: these quantiles of the values drawn
VALUE, NO_DATA, DROPPED, FAILED, NOT_IDENTIFIABLE = range(5)
COLOURS = {NO_DATA: canvas.NO_DATA, DROPPED: canvas.DROPPED, FAILED: canvas.FAILED,
           NOT_IDENTIFIABLE: canvas.NOT_IDENTIFIABLE}
CMAP = "viridis"


@dataclass(frozen=True)
class MapLayer:
    """What one map shows, per record of the shapefile.

    Attributes
    ----------
    parameter : str
    values : ndarray, shape (N,)
        The fitted value of each record's unit (NaN where the record has no unit).
    category : ndarray of int, shape (N,)
        VALUE (coloured by value), NO_DATA, DROPPED, FAILED or NOT_IDENTIFIABLE.
    low, high : float
        Colour limits: the CLIP quantiles of the values coloured.
    below, above : int
        Records coloured at the ends of the scale because their values lie beyond it.
    """

    parameter: str
    values: np.ndarray
    category: np.ndarray
    low: float
    high: float
    below: int
    above: int

    def count(self, category: int) -> int:
        return int((self.category == category).sum())

    def colours(self) -> np.ndarray:
        """RGBA of every record, as drawn."""
        import matplotlib
        from matplotlib.colors import Normalize, to_rgba

        rgba = matplotlib.colormaps[CMAP](Normalize(self.low, self.high)(self.values))
        for category, colour in COLOURS.items():
            rgba[self.category == category] = to_rgba(colour)
        return rgba


def map_layers(result: FitResult, shapes: CountyShapes,
               parameters: Sequence[str] | None = None) -> list[MapLayer]:
    """One MapLayer per fitted parameter (default all, in table order)."""
    table = result.table
    record = shapes.locate(*county_ids(result))
    row = np.full(len(shapes.state), -1)
    row[record[record >= 0]] = np.flatnonzero(record >= 0)
    base = np.where(row >= 0, VALUE, NO_DATA)
    if len(result.dropped) and {"state", "county"} <= set(result.dropped.columns):
        dropped = shapes.locate(result.dropped["state"], result.dropped["county"])
        base[dropped[dropped >= 0]] = DROPPED
    success = table["success"].to_numpy(bool)
    layers = []
    for parameter in parameters or result.parameters:
        values = np.full(len(row), np.nan)
        values[row >= 0] = table[parameter].to_numpy(float)[row[row >= 0]]
        category = base.copy()
        has = row >= 0
        category[has & ~success[row]] = FAILED
        category[has & success[row] & ~np.isfinite(values)] = FAILED
        category[(category == VALUE) & ~identifiable(result, parameter)[row]] = NOT_IDENTIFIABLE
        shown = values[category == VALUE]
        low, high = np.quantile(shown, CLIP) if shown.size else (0.0, 1.0)
        if high <= low:  # one value everywhere: a scale around it
            low, high = low - 0.5 * (abs(low) or 1), high + 0.5 * (abs(high) or 1)
        layers.append(MapLayer(parameter, values, category, float(low), float(high),
                               int((shown < low).sum()), int((shown > high).sum())))
    return layers


def unmapped_units(result: FitResult, shapes: CountyShapes) -> list[str]:
    """Keys of the units the shapefile has no shape for."""
    missing = shapes.locate(*county_ids(result)) < 0
    return [k for k, m in zip(unit_keys(result.table, result.unit_columns), missing,
                              strict=True) if m]


def county_map(result: FitResult, shapes: CountyShapes,
               parameters: Sequence[str] | None = None, *, columns: int = 3) -> Figure:
    """Small multiples: one map of US counties per fitted parameter (default all); a
    single parameter gets one large map."""
    from matplotlib.patches import Patch

    layers = map_layers(result, shapes, parameters)
    columns = min(columns, len(layers))
    rows = -(-len(layers) // columns)
    (xmin, ymin), (xmax, ymax) = shapes.vertices.min(axis=0), shapes.vertices.max(axis=0)
    width = 5.2 if columns > 1 else 11.0  # inches of one map
    height = width * (ymax - ymin) / (xmax - xmin)
    title, scale, top, bottom = 0.3, 0.65, 0.4, 0.3  # inches above, below a map, the figure
    cell = title + height + scale
    fig = canvas.new_figure(width * columns + 0.2, top + rows * cell + bottom)
    size = fig.get_size_inches()
    for i, layer in enumerate(layers):
        row, column = divmod(i, columns)
        left = 0.1 + column * width
        base = size[1] - top - (row + 1) * cell + scale  # the map's lower edge
        ax = fig.add_axes((left / size[0], base / size[1], width / size[0], height / size[1]))
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        # counties and state borders, from a raster of the axes' pixels
        ax.add_image(CountyImage(ax, shapes, layer.colours(), label=layer.parameter))
        ax.set_aspect("equal")
        ax.set_axis_off()
        bar = ((left + 0.1 * width) / size[0], (base - 0.25) / size[1], 0.8 * width / size[0],
               0.12 / size[1])
        _scale(fig, ax, bar, layer, unit_noun(result, 1), unit_noun(result))
    fig.legend(handles=[Patch(color=COLOURS[c], label=label)
                        for c, label in _legend(layers).items()],
               loc="upper center", ncol=4, frameon=False, fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.text(0.5, 0.1 / size[1], _caption(result, shapes), ha="center", va="bottom",
             fontsize=8, color="#444")
    return fig


def _legend(layers: list[MapLayer]) -> dict[int, str]:
    """Legend entries: no data and fit failed always (counted), the others when present."""
    first = layers[0]  # the same counties lack data or failed on every map
    entries = {NO_DATA: f"no data in the panel: {_counties(first.count(NO_DATA))}",
               FAILED: f"fit failed: {_counties(first.count(FAILED))}"}
    if first.count(DROPPED):
        entries[DROPPED] = f"dropped for invalid data: {_counties(first.count(DROPPED))}"
    if any(layer.count(NOT_IDENTIFIABLE) for layer in layers):
        entries[NOT_IDENTIFIABLE] = "not identifiable (counted in each title)"
    return entries


def _counties(n: int) -> str:
    return f"{n:,} county" if n == 1 else f"{n:,} counties"


def _scale(fig: Figure, ax, bar: tuple, layer: MapLayer, one: str, many: str) -> None:
    """Title and colour bar (in ``bar``, figure fractions) of one map."""
    import matplotlib

    not_identifiable = layer.count(NOT_IDENTIFIABLE)
    if not layer.count(VALUE) and not_identifiable:
        canvas.title(ax, f"{layer.parameter}: NOT identifiable in any {one}", fontsize=10,
                     color=canvas.FAILED)
        ax.text(0.5, -0.02, "its fitted values say where the solver started, not what the "
                "data say", transform=ax.transAxes, ha="center", va="top", fontsize=8)
        return
    canvas.title(ax, layer.parameter + (
        f" (not identifiable in {not_identifiable:,} {one if not_identifiable == 1 else many})"
        if not_identifiable else ""), fontsize=10)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
              (True, True): "both"}[(layer.below > 0, layer.above > 0)]
    colour_scale(fig, ax, bar, matplotlib.colormaps[CMAP], layer.low, layer.high,
                 extend=extend, fontsize=7,
                 label=f"colours clipped to the {CLIP[0]:.0%}\u2013{CLIP[1]:.0%} quantiles: "
                       f"{layer.below:,} {one if layer.below == 1 else many} below, "
                       f"{layer.above:,} above")


def _caption(result: FitResult, shapes: CountyShapes) -> str:
    n = len(result.table)
    text = (f"{n:,} units fitted, {len(shapes.state):,} county shapes; equal-area "
            "Albers projection, Alaska and Hawaii in insets")
    if not len(shapes.border_starts) > 1:
        text += "; no state borders (no US_State.shp beside the county shapefile)"
    missing = unmapped_units(result, shapes)
    if missing:
        text += (f". {len(missing):,} fitted units have no shape: "
                 + "; ".join(missing[:4]) + ("; ..." if len(missing) > 4 else ""))
    return text
