"""The report's own charts as inline SVG: the SSE distribution, identifiability per
parameter, and the best, median and worst units as sparklines.

Drawn as text, not with matplotlib: importing and driving matplotlib for these three
small charts took about half of ``sdfit report`` (the figures ``sdfit fit`` already drew
are embedded as they are, see :mod:`sdfit.figures.record`).  Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..figures.units import identifiable, pick_best_median_worst, unit_noun
from ..results import FitResult
from ..stories import UnitStory, drawn_variables
from .html import escape

BLUE, GREEN, RED, GREY = "#4c72b0", "#55a868", "#d62728", "#555"
FONT = "font-family='DejaVu Sans, system-ui, sans-serif'"


def sse_chart(result: FitResult) -> str:
    """Units per bracket (60 of them) of log10 SSE.  Exact fits (SSE 0) are counted in the
    title, not drawn: at log10 of the smallest float they stretched the axis over 300
    decades and squeezed every other unit into one bar."""
    sse = result.table["sse"].to_numpy(float)
    finite = sse[np.isfinite(sse)]
    positive = finite[finite > 0]
    counts, edges = np.histogram(np.log10(positive), 60) if len(positive) else (
        np.zeros(1, int), np.array([-1.0, 1.0]))
    noun = unit_noun(result)
    plot = _Plot(720, 288, left=64, right=16, top=34, bottom=50,
                 x=_margin(edges[0], edges[-1], 0.05), y=(0, max(counts.max(initial=0), 1) * 1.05))
    bars = "".join(plot.rect(a, 0, b, c, BLUE) for a, b, c in zip(edges[:-1], edges[1:], counts,
                                                                strict=True) if c)
    apart = [f"{n:,} {what}" for n, what in ((len(finite) - len(positive), "with SSE 0"),
                                             (len(sse) - len(finite), "without a finite SSE"))
             if n]
    title = f"SSE of {len(finite):,} {noun}" + (f" ({'; '.join(apart)}: not drawn)" if apart
                                                 else "")
    return plot.svg(bars + plot.axes("log10 SSE (weighted sum of squared target residuals)",
                                     noun, title))


def identifiability_chart(result: FitResult) -> str:
    """Share of the assessed units in which each parameter is identifiable."""
    assessed = result.table["rank"].to_numpy() >= 0
    names = result.parameters
    plot = _Plot(720, 96 + 32 * len(names), left=136, right=16, top=50, bottom=46,
                 x=(0, 100), y=(len(names) - 0.5, -0.5))
    body = ""
    for i, name in enumerate(names):
        flags = identifiable(result, name)[assessed]
        share = flags.mean() * 100 if assessed.any() else np.nan
        if np.isfinite(share):
            body += plot.rect(0, i - 0.4, share, i + 0.4, GREEN)
            body += plot.rect(share, i - 0.4, 100, i + 0.4, RED) if share < 100 else ""
        if (~flags).any():  # said in words too: one unit in thousands is no visible sliver
            x, y = plot.at(100, i)
            body += _text(x - 6, y + 4, f"not identifiable in {int((~flags).sum()):,}",
                          size=11, anchor="end", colour="white")
        x, y = plot.at(0, i)
        body += _text(x - 6, y + 4, name, size=12, anchor="end")
    legend = (_legend_mark(plot.width - 250, 16, "patch", GREEN) + _text(plot.width - 234, 20,
              "identifiable", size=11) + _legend_mark(plot.width - 130, 16, "patch", RED)
              + _text(plot.width - 114, 20, "not identifiable", size=11))
    return plot.svg(body + legend + plot.axes(
        f"% of {int(assessed.sum()):,} assessed {unit_noun(result)}", None,
        "Is each fitted parameter pinned down by the targets?", y_ticks=False, left_title=True))


def story_grid(stories: Mapping[str, UnitStory]) -> str:
    """The best, median and worst-fitting of ``stories`` (by SSE; no finite SSE counts as
    worst), one row each, a sparkline per variable: the trajectory, the observations
    (filled: in the SSE; hollow: not), and each axis's range written at its ends."""
    chosen = pick_best_median_worst({k: s.sse for k, s in stories.items()})
    variables = list(dict.fromkeys(v for k in chosen.values()
                                   for v in drawn_variables(stories[k])))
    pitch, row_height = 152, 138
    width = max(40 + pitch * len(variables), 620)
    out = [_legend(width)]
    for row, (rank, key) in enumerate(chosen.items()):
        story, top = stories[key], 40 + row * row_height
        names = story.parameters.index[~story.parameters["identifiable"].astype(bool)]
        out.append(_text(8, top + 12, f"{rank}: {story.label}, SSE {story.sse:.3g}"
                         + (f"; not identifiable: {', '.join(map(str, names))}" if len(names)
                            else ""), size=12, bold=True))
        for column, variable in enumerate(variables):
            out.append(_sparkline(story, variable, 44 + column * pitch, top + 36))
    return _svg(width, 40 + row_height * len(chosen), "".join(out))


# -- drawing -------------------------------------------------------------------------------
class _Plot:
    """A chart's frame: data (``x``, ``y`` limits) to pixels inside the margins."""

    def __init__(self, width, height, *, left, right, top, bottom, x, y):
        self.width, self.height = width, height
        self.box = (left, top, width - right, height - bottom)
        self.x, self.y = x, y

    def at(self, x, y) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + (x - self.x[0]) / (self.x[1] - self.x[0]) * (x1 - x0),
                y1 - (y - self.y[0]) / (self.y[1] - self.y[0]) * (y1 - y0))

    def rect(self, xa, ya, xb, yb, colour) -> str:
        (px, py), (qx, qy) = self.at(xa, ya), self.at(xb, yb)
        return (f"<rect x='{min(px, qx):.1f}' y='{min(py, qy):.1f}' width='{abs(qx - px):.1f}' "
                f"height='{abs(qy - py):.1f}' fill='{colour}'/>")

    def axes(self, xlabel, ylabel, title, y_ticks=True, left_title=False) -> str:
        x0, y0, x1, y1 = self.box
        out = [f"<rect x='{x0}' y='{y0}' width='{x1 - x0}' height='{y1 - y0}' fill='none' "
               "stroke='black' stroke-width='0.8'/>"]
        for tick, label in _ticks(*self.x):
            x = self.at(tick, self.y[0])[0]
            out.append(f"<path d='M{x:.1f} {y1}v4' stroke='black' stroke-width='0.8'/>"
                       + _text(x, y1 + 17, label, size=11, anchor="middle"))
        for tick, label in _ticks(*sorted(self.y)) if y_ticks else ():
            y = self.at(self.x[0], tick)[1]
            out.append(f"<path d='M{x0} {y:.1f}h-4' stroke='black' stroke-width='0.8'/>"
                       + _text(x0 - 7, y + 4, label, size=11, anchor="end"))
        out.append(_text((x0 + x1) / 2, self.height - 8, xlabel, size=12, anchor="middle"))
        if ylabel:
            out.append(f"<text x='16' y='{(y0 + y1) / 2:.1f}' font-size='12' text-anchor="
                       f"'middle' transform='rotate(-90 16 {(y0 + y1) / 2:.1f})'>"
                       f"{escape(ylabel)}</text>")
        out.append(_text(x0, y0 - 8, title, size=14) if left_title
                   else _text((x0 + x1) / 2, y0 - 8, title, size=14, anchor="middle"))
        return "".join(out)

    def svg(self, body: str) -> str:
        return _svg(self.width, self.height, body)


def _svg(width: float, height: float, body: str) -> str:
    # the viewBox lets the page scale a chart wider than itself
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} class='chart' role='img'>{body}</svg>")


def _sparkline(story: UnitStory, variable: str, left: float, top: float) -> str:
    """One panel of the grid, 100 x 80 pixels with its upper left corner at (left, top)."""
    width, height = 100, 80
    curve = story.curves.get(variable)
    seen = story.observations[story.observations["variable"] == variable]
    values = np.concatenate([curve if curve is not None else [], seen["observed"]])
    values = values[np.isfinite(values)]
    scale = np.abs(values).max(initial=0)
    if not values.size:
        low, high = 0.0, 1.0
    elif np.ptp(values) <= 1e-9 * max(scale, 1):  # constant but for rounding
        pad = 0.05 * max(scale, 1)
        low, high = values.mean() - pad, values.mean() + pad
    else:
        low, high = _margin(values.min(), values.max(), 0.12)
    t0, t1 = _margin(float(story.times[0]), float(story.times[-1]), 0.04)

    def xy(t, v):
        return (left + (t - t0) / (t1 - t0) * width, top + (high - v) / (high - low) * height)

    out = [_text(left + width / 2, top - 5, variable, size=11, anchor="middle"),
           f"<rect x='{left}' y='{top}' width='{width}' height='{height}' fill='none' "
           "stroke='black' stroke-width='0.8'/>"]
    if curve is not None:
        for part in _thin(np.asarray(story.times, float), np.asarray(curve, float), width * 2):
            out.append(f"<polyline fill='none' stroke='{BLUE}' stroke-width='1.4' points='"
                       + " ".join("{:.1f},{:.1f}".format(*xy(t, v)) for t, v in part) + "'/>")
    for t, v, used in zip(seen["time"], seen["observed"], seen["used"].to_numpy(bool),
                          strict=True):
        if np.isfinite(v):
            out.append(_dot(*xy(t, v), used))
    if curve is None:  # the model only at the observations
        out += [_cross(*xy(t, v)) for t, v in zip(seen["time"], seen["fitted"], strict=True)
                if np.isfinite(v)]
    out += [_text(left - 3, top + 7, _short(high), size=9, anchor="end", colour="#444"),
            _text(left - 3, top + height, _short(low), size=9, anchor="end", colour="#444"),
            _text(left + width, top + height + 11, f"{_short(story.times[0])} to "
                  f"{_short(story.times[-1])}", size=9, anchor="end", colour="#444")]
    return "".join(out)


def _thin(x: np.ndarray, y: np.ndarray, buckets: int) -> list[np.ndarray]:
    """The finite runs of a curve as (t, v) rows; a long one kept as the first, lowest,
    highest and last point of each of ``buckets`` equal stretches of time, so that a
    spike still shows at the panel's resolution."""
    runs = []
    finite = np.isfinite(y)
    if not len(y):
        return runs
    for run in np.split(np.arange(len(y)), np.flatnonzero(np.diff(finite)) + 1):
        if not finite[run[0]]:
            continue
        if len(run) > 4 * buckets:
            where = np.minimum(((x[run] - x[run[0]]) / (np.ptp(x[run]) or 1) * buckets)
                               .astype(int), buckets - 1)
            keep = [run[0], run[-1]]
            for part in np.split(run, np.flatnonzero(np.diff(where)) + 1):
                keep += [part[0], part[np.argmin(y[part])], part[np.argmax(y[part])],
                         part[-1]]
            run = np.unique(keep)
        runs.append(np.column_stack([x[run], y[run]]))
    return runs


def _legend(width: float) -> str:
    x = width - 560
    return (_legend_mark(x, 12, "line", BLUE) + _text(x + 24, 16, "simulated", size=11)
            + _dot(x + 110, 12, True) + _text(x + 120, 16, "observed, fitted (in the SSE)",
                                              size=11)
            + _dot(x + 330, 12, False) + _text(x + 340, 16, "observed, not fitted", size=11))


def _legend_mark(x, y, kind, colour) -> str:
    if kind == "line":
        return f"<path d='M{x} {y}h18' stroke='{colour}' stroke-width='1.4'/>"
    return f"<rect x='{x}' y='{y - 5}' width='12' height='9' fill='{colour}'/>"


def _dot(x, y, filled: bool) -> str:
    fill = "black" if filled else "white"
    return (f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.6' fill='{fill}' stroke="
            f"'{'black' if filled else GREY}' stroke-width='0.8'/>")


def _cross(x, y) -> str:
    return (f"<path d='M{x - 3:.1f} {y - 3:.1f}l6 6m0 -6l-6 6' stroke='{BLUE}' "
            "stroke-width='1.2'/>")


def _text(x, y, text, *, size=10, anchor="start", bold=False, colour=None) -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}'"
            + (f" text-anchor='{anchor}'" if anchor != "start" else "")
            + (" font-weight='bold'" if bold else "")
            + (f" fill='{colour}'" if colour else "") + f">{escape(text)}</text>")


def _margin(low: float, high: float, share: float) -> tuple[float, float]:
    """``low`` to ``high`` widened by ``share`` of their span on each side (one unit
    around a single value)."""
    span = high - low
    if not span:
        return low - 1, high + 1
    return low - share * span, high + share * span


def _ticks(low: float, high: float, most: int = 7) -> list[tuple[float, str]]:
    """Round ticks between ``low`` and ``high`` (steps of 1, 2, 2.5 or 5 times a power of
    ten, at most ``most``), labelled with the decimals their step needs."""
    raw = (high - low) / (most - 1)
    exponent = math.floor(math.log10(raw))
    mantissa = next(m for m in (1, 2, 2.5, 5, 10) if m * 10.0 ** exponent >= raw * 0.999)
    step = mantissa * 10.0 ** exponent
    decimals = max(0, -exponent + (mantissa == 2.5) - (mantissa == 10))
    first = math.ceil(low / step - 1e-9)
    ticks = [(k * step) for k in range(first, math.floor(high / step + 1e-9) + 1)]
    return [(t, f"{t:.{decimals}f}".replace("-", "\u2212")) for t in ticks]


def _short(value: float) -> str:
    """A number in a few characters: 54.6k, 5460, 3.14."""
    value = float(value)
    if abs(value) >= 1e4:
        power = min(int(math.log10(abs(value)) // 3), 6)
        return f"{value / 10.0 ** (3 * power):g}" + "kMGTPE"[power - 1]
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
