"""Plain ticks: the ticks, labels and offset text matplotlib's own axis would draw, with
the axis label just beyond the tick labels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import markers
from matplotlib.ticker import EngFormatter, MaxNLocator

from sdfit.figures.canvas import new_figure
from sdfit.figures.ticks import plain_ticks


def _panel(kind: str):
    fig = new_figure(4, 3)
    ax = fig.subplots()
    if kind == "linear":
        ax.stairs(np.array([3.0, 40, 700, 20]), np.array([-0.07, -0.02, 0.03, 0.08, 0.13]))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.minorticks_on()
    elif kind == "offset":  # labels relative to an offset: "+1e5" at the axis's end
        ax.plot([100000.001, 100000.004], [1e-7, 5e-7])
    else:  # symlog, engineering labels
        ax.plot([0, 1, 10, 1e5], [-1e-9, 0, 1e-12, 1e-6])
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("symlog", linthresh=1e-12)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set(xlabel="observed", ylabel="fitted")
    return fig, ax


def _drawn(fig, ax, name):
    """(location, label) of every tick label drawn, and the offset text."""
    fig.canvas.draw()
    axis = getattr(ax, f"{name}axis")
    low, high = sorted(axis.get_view_interval())
    at = 0 if name == "x" else 1
    labels = [(t.get_position()[at], t.get_text()) for t in axis.get_ticklabels()
              if t.get_text() and low <= t.get_position()[at] <= high]
    return labels, axis.get_offset_text().get_text()


@pytest.mark.parametrize("kind", ["linear", "offset", "symlog"])
def test_the_ticks_are_those_matplotlib_draws(kind):
    reference = {name: _drawn(*_panel(kind), name) for name in "xy"}
    fig, ax = _panel(kind)
    plain_ticks([ax], fontsize=10)
    fig.canvas.draw()
    assert not ax.get_xticks().size and not ax.get_yticks().size  # no Tick objects left
    renderer = fig.canvas.get_renderer()
    for name, (labels, offset) in reference.items():
        at = 0 if name == "x" else 1
        texts = [t for t in ax.texts if t.get_gid() == f"{name}tick"]
        assert [(t.get_position()[at], t.get_text()) for t in texts] == labels, name
        assert [t.get_text() for t in ax.texts if t.get_gid() == f"{name}offset"] == \
            ([offset] if offset else [])
        # the axis label just beyond the tick labels, as matplotlib puts it
        label = getattr(ax, f"{name}axis").label.get_window_extent(renderer)
        boxes = [t.get_window_extent(renderer) for t in texts]
        gap = min(b.y0 for b in boxes) - label.y1 if name == "x" else \
            min(b.x0 for b in boxes) - label.x1
        assert 0 <= gap <= 10, (name, gap)
    if kind == "linear":  # the minor ticks' marks too, where matplotlib puts them
        ref_fig, ref = _panel(kind)
        ref_fig.canvas.draw()
        marks = [line for line in ax.get_children() if getattr(line, "get_marker", None)
                 and line.get_marker() in (markers.TICKDOWN, markers.TICKLEFT)
                 and line.get_markersize() == 2.0]
        for line, axis in zip(marks, (ref.xaxis, ref.yaxis), strict=True):
            low, high = sorted(axis.get_view_interval())
            minor = axis.get_minorticklocs()
            minor = minor[(minor >= low) & (minor <= high)]
            drawn = line.get_xdata() if axis is ref.xaxis else line.get_ydata()
            assert len(minor) and np.allclose(np.sort(drawn), np.sort(minor))
