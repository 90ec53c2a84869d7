"""Drawing units' stories (:class:`sdfit.stories.UnitStory`): every variable's simulated
trajectory over the whole run with the unit's observations, and its parameters with
their intervals; and small multiples of many units."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from ..stories import UnitStory, drawn_variables
from . import canvas

CURVE = "#4c72b0"


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
def _panel(ax, story: UnitStory, variable: str) -> None:
    """One variable of a story."""
    font = 8
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
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(4))
    if scale >= 1e4:  # 720k, not 720000 or an offset
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    else:
        ax.ticklabel_format(axis="y", useOffset=False)
    ax.tick_params(labelsize=font - 1)


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
