"""A horizontal colour scale drawn as a few artists of the figure, as ``fig.colorbar``
draws it (gradient, end triangles for clipped values, outline, ticks chosen and labelled
by matplotlib's own locator and formatter, a label below) but without an Axes of its own:
a colour bar's Axes, with its two axes' tick machinery, cost more than the map above it
(eight of them were half of the map figure's time)."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Polygon
from matplotlib.ticker import MaxNLocator, ScalarFormatter

EXTEND = 0.05  # length of an end triangle, as a share of the bar (matplotlib's extendfrac)
TICK, PAD, LABEL_PAD = 3.5, 3.5, 4.0  # points: tick length, tick to label, labels to title


def colour_scale(fig: Figure, ax, bar: tuple, cmap: Colormap, low: float, high: float, *,
                 extend: str, fontsize: float, label: str) -> None:
    """Draw the scale of ``cmap`` from ``low`` to ``high`` in ``bar`` (left, bottom, width,
    height in figure fractions), its artists held by ``ax``; ``extend`` is "neither",
    "min", "max" or "both" (a triangle at each clipped end)."""
    left, bottom, width, height = bar
    lower, upper = extend in ("min", "both"), extend in ("max", "both")
    inner = width / (1 + EXTEND * (lower + upper))  # the gradient; triangles beside it
    x0, x1 = left + EXTEND * inner * lower, left + EXTEND * inner * lower + inner
    y0, y1, middle = bottom, bottom + height, bottom + height / 2
    gradient = AxesImage(ax, cmap=cmap, norm=Normalize(0, 1), interpolation="nearest",
                         extent=(x0, x1, y0, y1), transform=fig.transFigure, origin="lower")
    gradient.set_data(np.linspace(0, 1, cmap.N)[None, :])
    gradient.set_clip_on(False)
    ax.add_artist(gradient)
    outline = [(x0, y0), (x1, y0)]
    if upper:
        ax.add_artist(_triangle(fig, [(x1, y0), (x1 + EXTEND * inner, middle), (x1, y1)],
                                cmap(1.0)))
        outline.append((x1 + EXTEND * inner, middle))
    outline += [(x1, y1), (x0, y1)]
    if lower:
        ax.add_artist(_triangle(fig, [(x0, y1), (x0 - EXTEND * inner, middle), (x0, y0)],
                                cmap(0.0)))
        outline.append((x0 - EXTEND * inner, middle))
    ax.add_artist(Polygon(outline, closed=True, fill=False, edgecolor="black",
                          linewidth=0.8, transform=fig.transFigure, clip_on=False))
    ticks, texts, offset = _ticks(low, high, (x1 - x0) * fig.get_figwidth() * 72, fontsize)
    at = x0 + (ticks - low) / (high - low) * (x1 - x0)

    def down(points: float) -> float:  # figure fractions below the bar, at any dpi
        return y0 - points / 72 / fig.get_figheight()

    ax.add_artist(LineCollection([[(x, y0), (x, down(TICK))] for x in at], colors="black",
                                 linewidths=0.8, transform=fig.transFigure, clip_on=False))
    for x, text in zip(at, texts, strict=True):
        ax.text(x, down(TICK + PAD), text, transform=fig.transFigure, ha="center", va="top",
                fontsize=fontsize, clip_on=False)
    # the offset or multiplier the formatter chose ("1e-5") at the right end, as an axis
    # puts it, and the label below the tick labels
    under = down(TICK + PAD + fontsize + LABEL_PAD)  # a tick label is about fontsize high
    if offset:
        ax.text(x1, under, offset, transform=fig.transFigure, ha="right", va="top",
                fontsize=fontsize, clip_on=False)
    ax.text((x0 + x1) / 2, under, label, transform=fig.transFigure, ha="center", va="top",
            fontsize=fontsize, clip_on=False)


def _triangle(fig: Figure, corners: list, colour) -> Polygon:
    return Polygon(corners, closed=True, facecolor=colour, linewidth=0, antialiased=False,
                   transform=fig.transFigure, clip_on=False)


def _ticks(low: float, high: float, points: float, fontsize: float):
    """The ticks an axis of ``points`` length would put between ``low`` and ``high``,
    their labels and the formatter's offset text: AutoLocator's steps, as many ticks as
    labels of ``fontsize`` fit (at most 9), ScalarFormatter's labels."""
    nbins = int(np.clip(np.floor(points / (3 * fontsize)), 1, 9))
    ticks = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    span = high - low
    ticks = ticks[(ticks >= low - 1e-10 * span) & (ticks <= high + 1e-10 * span)]
    formatter = ScalarFormatter()
    formatter.create_dummy_axis()
    formatter.axis.set_view_interval(low, high)
    return ticks, formatter.format_ticks(ticks), formatter.get_offset()
