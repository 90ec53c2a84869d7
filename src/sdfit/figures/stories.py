"""Drawing units' stories (:class:`sdfit.stories.UnitStory`): every variable's simulated
trajectory over the whole run with the unit's observations, and its parameters with
their intervals; and a grid of the best, median and worst-fitting units."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from ..results import FitResult
from ..stories import UnitStory
from . import canvas
from .units import unit_keys

CURVE = "#4c72b0"


def drawn_variables(story: UnitStory) -> list[str]:
    """The variables a story draws: those with a curve, then those only observed."""
    return list(dict.fromkeys([*story.curves, *story.observations["variable"]]))


def unit_figure(story: UnitStory, *, columns: int = 3) -> Figure:
    """One panel per variable (trajectory, observations: filled if in the SSE, hollow if
    not) and a table of the parameters with their intervals."""
    variables = drawn_variables(story)
    columns = max(1, min(columns, len(variables)))
    rows = max(1, -(-len(variables) // columns))
    table_width = 4.6
    fig = canvas.new_figure(2.9 * columns + table_width, 2.3 * rows + 0.9)
    width, height = fig.get_size_inches()
    grid = fig.add_gridspec(rows, columns, left=0.55 / width,
                            right=1 - (table_width + 0.1) / width, top=1 - 0.75 / height,
                            bottom=0.45 / height, wspace=0.3, hspace=0.5)
    for i, variable in enumerate(variables):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        _panel(ax, story, variable)
    table = fig.add_axes((1 - table_width / width, 0.45 / height, (table_width - 0.15) / width,
                          1 - 1.2 / height))
    _parameter_table(table, story.parameters)
    fig.suptitle(f"{story.label}: SSE {story.sse:.3g}", x=0.01, ha="left", fontsize=11)
    fig.legend(handles=_legend_handles(), loc="upper left", bbox_to_anchor=(0.01, 1 - 0.3
                                                                            / height),
               ncol=3, frameon=False, fontsize=8)
    return fig


def story_grid(stories: Mapping[str, UnitStory]) -> Figure:
    """The best, median and worst-fitting of ``stories`` (by SSE; no finite SSE counts
    as worst), one row each, one panel per variable."""
    chosen = pick_best_median_worst({k: s.sse for k, s in stories.items()})
    variables = list(dict.fromkeys(v for k in chosen.values()
                                   for v in drawn_variables(stories[k])))
    columns = max(1, len(variables))
    fig = canvas.new_figure(max(2.0 * columns, 8.0), 2.1 * len(chosen) + 0.5)
    width, height = fig.get_size_inches()
    grid = fig.add_gridspec(len(chosen), columns, left=0.5 / width, right=1 - 0.1 / width,
                            top=1 - 0.8 / height, bottom=0.3 / height, wspace=0.3,
                            hspace=0.9)
    for row, (rank, key) in enumerate(chosen.items()):
        story = stories[key]
        for column, variable in enumerate(variables):
            ax = fig.add_subplot(grid[row, column])
            _panel(ax, story, variable, small=True)
        top = grid[row, 0].get_position(fig).y1
        fig.text(0.5 / width, top + 0.3 / height, f"{rank}: {story.label}, SSE {story.sse:.3g}"
                 + _not_identifiable(story), fontsize=9, fontweight="bold", va="bottom")
    fig.legend(handles=_legend_handles(), loc="upper right", ncol=3, frameon=False,
               fontsize=8)
    return fig


def units_overview(stories: Mapping[str, UnitStory], variable: str | None = None, *,
                   columns: int = 4) -> Figure:
    """Small multiples of many units: one panel per unit, one variable (default the first
    each story draws), its trajectory over its observations."""
    keys = list(stories)
    columns = max(1, min(columns, len(keys)))
    rows = -(-len(keys) // columns)
    fig = canvas.new_figure(2.6 * columns + 0.4, 2.0 * rows + 0.8)
    width, height = fig.get_size_inches()
    grid = fig.add_gridspec(rows, columns, left=0.45 / width, right=1 - 0.1 / width,
                            top=1 - 0.65 / height, bottom=0.3 / height, wspace=0.25,
                            hspace=0.55)
    for i, key in enumerate(keys):
        story = stories[key]
        shown = variable or drawn_variables(story)[0]
        ax = fig.add_subplot(grid[i // columns, i % columns])
        _panel(ax, story, shown)
        ax.texts[-1].set_text(f"{story.label} ({shown})")
    fig.legend(handles=_legend_handles(), loc="upper left", ncol=3, frameon=False,
               fontsize=8)
    return fig


def pick_best_median_worst(sse: Mapping[str, float]) -> dict[str, str]:
    """``{"best": key, "median": key, "worst": key}`` by SSE (NaN last); fewer entries
    when there are fewer than three keys."""
    keys = sorted(sse, key=lambda k: (not np.isfinite(sse[k]), sse[k]))
    picks = {"best": 0, "median": (len(keys) - 1) // 2, "worst": len(keys) - 1}
    chosen: dict[str, str] = {}
    for rank, at in picks.items():
        if keys and keys[at] not in chosen.values():
            chosen[rank] = keys[at]
    return chosen


def grid_units(result: FitResult) -> dict[str, str]:
    """Keys (see :func:`.units.unit_keys`) of the best, median and worst-fitting units of
    ``result``: the units whose stories the report's grid shows."""
    keys = unit_keys(result.table, result.unit_columns)
    return pick_best_median_worst(dict(zip(keys, result.table["sse"].to_numpy(float),
                                           strict=True)))


def write_unit_figures(stories: Mapping[str, UnitStory], out: str | Path) -> list[Path]:
    """``unit-<key>.png`` per story into ``out`` (what ``sdfit plot DIR --unit ...``
    writes); the key's characters other than letters and digits become dashes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [canvas.save_png(unit_figure(story), out / f"unit-{slug(key)}.png")
            for key, story in stories.items()]


def slug(key: str) -> str:
    """A file name made of a unit key: ``state=6, county=37`` -> ``state-6-county-37``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-") or "unit"


# -- drawing -------------------------------------------------------------------------------
def _panel(ax, story: UnitStory, variable: str, small: bool = False) -> None:
    """One variable of a story; ``small`` (the grid): no ticks, which cost more than the
    curves, but the range of each axis written at its ends, as a sparkline does."""
    font = 7 if small else 8
    curve = story.curves.get(variable)
    if curve is not None:
        ax.plot(story.times, curve, color=CURVE, lw=1.4)
    seen = story.observations[story.observations["variable"] == variable]
    used = seen["used"].to_numpy(bool)
    ax.plot(seen["time"][used], seen["observed"][used], "o", color="black", ms=4.5)
    ax.plot(seen["time"][~used], seen["observed"][~used], "o", mfc="none", mec="#555",
            ms=4.5)
    if curve is None:  # the model only at the observations
        ax.plot(seen["time"], seen["fitted"], "x", color=CURVE, ms=5)
    # a text, not a title: matplotlib places titles by measuring every tick label
    ax.text(0.5, 1.03, variable, transform=ax.transAxes, ha="center", fontsize=font + 1)
    ax.margins(x=0.04, y=0.12)
    values = np.concatenate([curve if curve is not None else [], seen["observed"]])
    values = values[np.isfinite(values)]
    scale = np.abs(values).max(initial=0)
    if values.size and np.ptp(values) <= 1e-9 * max(scale, 1):  # constant but for rounding
        pad = 0.05 * max(scale, 1)
        ax.set_ylim(values.mean() - pad, values.mean() + pad)
    if small:
        y0, y1 = ax.get_ylim()
        ax.set_xticks([])
        ax.set_yticks([])
        for y, at in ((y1, 1), (y0, 0)):  # left of the frame, at its top and bottom
            ax.text(-0.03, at, _short(y), transform=ax.transAxes, ha="right",
                    va="top" if at else "bottom", fontsize=font - 1, color="#444")
        ax.text(1, -0.04, f"{_short(story.times[0])} to {_short(story.times[-1])}",
                transform=ax.transAxes, ha="right", va="top", fontsize=font - 1, color="#444")
        return
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(4))
    if scale >= 1e4:  # 720k, not 720000 or an offset
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    else:
        ax.ticklabel_format(axis="y", useOffset=False)
    ax.tick_params(labelsize=font - 1)


def _short(value: float) -> str:
    """A number in a few characters: 54.6k, 5460, 3.14."""
    if abs(value) >= 1e4:
        return EngFormatter(places=None, sep="")(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _legend_handles() -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=CURVE, lw=1.4, label="simulated"),
            Line2D([], [], ls="", marker="o", color="black", ms=4.5,
                   label="observed, fitted (in the SSE)"),
            Line2D([], [], ls="", marker="o", mfc="none", mec="#555", ms=4.5,
                   label="observed, not fitted")]


def _parameter_table(ax, parameters: pd.DataFrame) -> None:
    ax.set_axis_off()
    rows = [[str(name), f"{row.value:.4g}", _interval(row.ci_low, row.ci_high),
             "yes" if row.identifiable else "NO"] for name, row in parameters.iterrows()]
    if not rows:
        return
    table = ax.table(cellText=rows, colLabels=["parameter", "value", "interval",
                                               "identifiable"],
                     loc="upper center", cellLoc="left", colLoc="left",
                     colWidths=[0.36, 0.2, 0.26, 0.18])
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if r > 0 and c == 3 and rows[r - 1][3] == "NO":
            cell.get_text().set_color(canvas.FAILED)


def _interval(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "unavailable"
    return f"[{low:.3g}, {high:.3g}]"


def _not_identifiable(story: UnitStory) -> str:
    names = story.parameters.index[~story.parameters["identifiable"].astype(bool)]
    return f"; not identifiable: {', '.join(map(str, names))}" if len(names) else ""
