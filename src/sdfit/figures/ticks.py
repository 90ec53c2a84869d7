"""Axis ticks drawn as a few plain artists: per axis one line of tick marks (markers) and
a text per label, where the axis's own locators put them and as its own formatters label
them, and the axis label where matplotlib would put it.

Matplotlib's Tick objects (five artists each, made again, updated and measured at every
draw) were a quarter of the time of the parameter histograms (eight panels, about 130
Ticks), the figure ``sdfit fit``'s drawer draws while its copies draw the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import cbook, markers
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import text_to_path
from matplotlib.transforms import ScaledTranslation

# matplotlib's defaults, in points: tick length, tick width, tick to label
MAJOR, MINOR = (3.5, 0.8, 3.5), (2.0, 0.6, 3.4)
LABEL_PAD = 4.0  # tick labels to the axis label


def plain_ticks(axes: Sequence, fontsize: float) -> None:
    """Draw the ticks of ``axes`` as plain artists (labels of ``fontsize`` points), their
    limits fixed as they are now.  Axes that share an axis go in one call: every tick is
    read before any axis changes (shared axes share their locators)."""
    for ax in axes:  # fixed: an artist added later must not move the ticks
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())
    plans = [(ax, name, _ticks(getattr(ax, f"{name}axis"))) for ax in axes for name in "xy"]
    for ax, name, _ in plans:
        getattr(ax, f"set_{name}ticks")([])
        getattr(ax, f"set_{name}ticks")([], minor=True)
    for ax, name, (ticks, offset) in plans:
        _draw(ax, name, ticks, offset, fontsize)


def _ticks(axis) -> tuple[list, str]:
    """[(locations, labels, (length, width, pad)) of the major, then minor ticks], and the
    major formatter's offset text: what the axis would draw."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-10 * (high - low)
    out, major = [], np.array([])
    for ticker, size in ((axis.major, MAJOR), (axis.minor, MINOR)):
        at = np.asarray(ticker.locator(), float)
        at = at[(at >= low - slack) & (at <= high + slack)]
        if size is MINOR:  # as matplotlib does: no minor tick where a major one is
            at = at[~np.isclose(at[:, None], major[None, :], rtol=1e-5, atol=slack).any(1)]
        else:
            major = at
        out.append((at, ticker.formatter.format_ticks(at) if len(at) else [], size))
    return out, axis.major.formatter.get_offset()


def _draw(ax, name: str, ticks: list, offset: str, fontsize: float) -> None:
    fig = ax.figure
    x = name == "x"
    along = ax.get_xaxis_transform() if x else ax.get_yaxis_transform()
    font = FontProperties(size=fontsize)
    # a label's height as matplotlib measures it: that of "lp", ascender to descender
    line = text_to_path.get_text_width_height_descent("lp", font, ismath=False)[1]
    extent = 0.0  # points the tick labels reach from the axis
    for at, labels, (length, width, pad) in ticks:
        zeros = np.zeros(len(at))
        ax.add_artist(Line2D(at if x else zeros, zeros if x else at, transform=along,
                             linestyle="", marker=markers.TICKDOWN if x else markers.TICKLEFT,
                             markersize=length, markeredgewidth=width, color="black",
                             clip_on=False))
        away = ScaledTranslation(0, -(length + pad) / 72, fig.dpi_scale_trans) if x else \
            ScaledTranslation(-(length + pad) / 72, 0, fig.dpi_scale_trans)
        for value, label in zip(at, labels, strict=True):
            if label:
                ax.text(value if x else 0, 0 if x else value, label, transform=along + away,
                        ha="center" if x else "right", va="top" if x else "center_baseline",
                        fontsize=fontsize, gid=f"{name}tick")
                wide = 0.0 if x else text_to_path.get_text_width_height_descent(
                    label, font, ismath=cbook.is_math_text(label))[0]
                extent = max(extent, length + pad + (line if x else wide))
    axis = ax.xaxis if x else ax.yaxis
    if x:
        axis.set_label_coords(0.5, 0, ax.transAxes + ScaledTranslation(
            0, -(extent + LABEL_PAD) / 72, fig.dpi_scale_trans))
    else:
        axis.set_label_coords(0, 0.5, ax.transAxes + ScaledTranslation(
            -(extent + LABEL_PAD) / 72, 0, fig.dpi_scale_trans))
    if offset:  # "1e-5" or "+1.234": at the axis's far end, as matplotlib puts it
        where = (1, 0, ScaledTranslation(0, -extent / 72, fig.dpi_scale_trans), "right", "top") \
            if x else (0, 1, ScaledTranslation(0, 2 / 72, fig.dpi_scale_trans), "left", "bottom")
        ax.text(where[0], where[1], offset, transform=ax.transAxes + where[2], ha=where[3],
                va=where[4], fontsize=fontsize, gid=f"{name}offset")
