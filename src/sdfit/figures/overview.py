"""Figures of all units at once: parameter histograms (one panel per parameter) and
observed against fitted targets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from ..results import FitResult
from . import canvas
from .ticks import plain_ticks
from .units import identifiable, unit_noun

COLOUR = "#4c72b0"


def parameter_histograms(result: FitResult, parameters: Sequence[str] | None = None,
                         *, columns: int = 4) -> Figure:
    """Small multiples: units per bracket of each fitted parameter (default all), one
    panel each; the units in which a parameter is not identifiable stacked in grey."""
    parameters = list(parameters or result.parameters)
    columns = min(columns, len(parameters))
    rows = -(-len(parameters) // columns)
    fig = canvas.new_figure(3.6 * columns, 2.5 * rows + 0.5)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    success = result.table["success"].to_numpy(bool)
    noun = unit_noun(result)
    for ax, name in zip(axes, parameters):  # noqa: B905 - spare axes are hidden below
        values = result.table[name].to_numpy(float)
        keep = success & np.isfinite(values)
        flags = identifiable(result, name)[keep]
        values = values[keep]
        bins, outside = _bins(values)
        shown, _ = np.histogram(values[flags], bins)
        grey, _ = np.histogram(values[~flags], bins)
        ax.stairs(shown, bins, fill=True, color=COLOUR, label="identifiable")
        ax.stairs(shown + grey, bins, baseline=shown, fill=True,
                  color=canvas.NOT_IDENTIFIABLE, label="not identifiable")
        if flags.any():
            canvas.title(ax, name, fontsize=10)
        else:
            canvas.title(ax, f"{name}: NOT identifiable", fontsize=10, color=canvas.FAILED)
        notes = [f"grey: not identifiable in {(~flags).sum():,}"] if (~flags).any() else []
        if outside:
            notes.append(f"{outside:,} beyond the axis")
        ax.text(0.98, 0.97, "\n".join(notes), transform=ax.transAxes, ha="right", va="top",
                fontsize=7, color="#444")
        if notes:  # room above the tallest bar for the notes' lines, which would cross it
            ax.set_ylim(0, max((shown + grey).max(initial=0), 1) / (0.9 - 0.1 * len(notes)))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel(f"value, brackets of {bins[1] - bins[0]:.3g}", fontsize=8)
        ax.set_ylabel(noun, fontsize=8)
    for ax in axes[len(parameters):]:
        ax.set_visible(False)
    plain_ticks(axes[:len(parameters)], fontsize=7)
    fig.suptitle(f"Fitted parameters of {int(success.sum()):,} {noun} (successful fits)",
                 fontsize=12)
    _margins(fig, left=0.55, right=0.15, top=0.6, bottom=0.45, wspace=0.3, hspace=0.55)
    return fig


def _bins(values: np.ndarray) -> tuple[np.ndarray, int]:
    """About 20-40 brackets of a round width (1, 2 or 5 times a power of ten) over the
    values, or over their 0.5-99.5 % quantiles when a few lie far out; and how many
    values fall beyond the brackets."""
    if not values.size:
        return np.linspace(0, 1, 11), 0
    lo, hi = np.quantile(values, [0.005, 0.995])
    if values.min() >= lo - (hi - lo) and values.max() <= hi + (hi - lo):
        lo, hi = values.min(), values.max()  # no far outliers: show every value
    raw = (hi - lo) / 40 or abs(lo) / 40 or 1.0
    power = 10.0 ** np.floor(np.log10(raw))
    width = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * 0.999)
    start = np.floor(lo / width) * width
    bins = start + width * np.arange(int(np.ceil((hi - start) / width)) + 2)
    return bins, int(((values < bins[0]) | (values > bins[-1])).sum())


def _margins(fig: Figure, *, left: float, right: float, top: float, bottom: float,
             wspace: float = 0.2, hspace: float = 0.2) -> None:
    """Margins in inches: a fixed layout costs nothing, tight_layout draws every text."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=wspace, hspace=hspace)


def observed_vs_fitted(result: FitResult) -> Figure:
    """Every target of every unit: fitted against observed with the 1:1 line, and the
    residual (fitted - observed) against observed, which shows how close "on the line"
    is."""
    fig = canvas.new_figure(12, 5.6)
    left, right = fig.subplots(1, 2, sharex=True)
    targets = result.targets
    observed, fitted = targets["observed"].to_numpy(float), targets["fitted"].to_numpy(float)
    residual = fitted - observed
    codes, variables = targets["variable"].factorize(sort=False)
    for i, variable in enumerate(variables):  # markers of a line: drawn as one stamp
        mine = codes == i
        style = dict(ls="", marker="o", ms=2, alpha=0.6, mew=0, color=f"C{i % 10}")
        left.plot(observed[mine], fitted[mine], label=variable, **style)
        right.plot(observed[mine], residual[mine], **style)
    both = np.concatenate([observed, fitted])
    both = both[np.isfinite(both)]
    lo, hi = (both.min(), both.max()) if both.size else (0, 1)
    left.plot([lo, hi], [lo, hi], color="black", lw=0.8, label="1:1")
    right.axhline(0, color="black", lw=0.8)
    if both.size and both.min() >= 0:  # counts over orders of magnitude: log axes, linear
        for ax in (left, right):      # near zero so that zero counts still show
            ax.set_xscale("symlog", linthresh=1)
        left.set_yscale("symlog", linthresh=1)
        # symlog's margins would reach as far below zero as above it: none is there
        left.set_xlim(-0.5, max(hi, 1) * 2)
        left.set_ylim(-0.5, max(hi, 1) * 2)
    size = np.abs(residual[np.isfinite(residual) & (residual != 0)])
    if size.size:  # residuals too span orders of magnitude
        # linear up to a power of ten: no decade tick falls inside, crowding zero's label
        linthresh = 10.0 ** np.floor(np.log10(np.quantile(size, 0.05)))
        right.set_yscale("symlog", linthresh=float(linthresh))
    for ax in (left, right):  # plain tick labels: mathtext's "10^k" costs 0.2 s to parse
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "symlog":
                axis.set_major_formatter(EngFormatter(sep=""))
    left.set(xlabel="observed", ylabel="fitted")
    right.set(xlabel="observed", ylabel="fitted - observed")
    plain_ticks([left, right], fontsize=10)
    left.legend(frameon=False, fontsize=8, ncol=2, markerscale=3)
    times = sorted(targets["time"].unique())
    when = (", ".join(f"{t:g}" for t in times) if len(times) <= 4
            else f"{len(times):,} times from {times[0]:g} to {times[-1]:g}")
    fig.suptitle(f"Targets at {when} of {len(result.table):,} {unit_noun(result)}: fitted "
                 "and residual against observed")
    _margins(fig, left=0.8, right=0.2, top=0.5, bottom=0.6, wspace=0.3)
    return fig
