"""Figures of all units: histograms as small multiples, observed vs fitted; and that
drawing them leaves matplotlib's global state alone."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

from sdfit.figures import observed_vs_fitted, parameter_histograms
from sdfit.figures.overview import _bins


def test_one_histogram_panel_per_parameter_counting_every_unit(county_fit):
    result, _ = county_fit
    figure = parameter_histograms(result)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == result.parameters
    for ax, name in zip(panels, result.parameters, strict=True):
        shown, stacked = (p for p in ax.patches if isinstance(p, StepPatch))
        counts, edges = shown.get_data().values, shown.get_data().edges
        grey = stacked.get_data().values - counts
        values = result.table[name].to_numpy(float)
        identifiable = result.table[f"{name}_identifiable"].to_numpy(bool)
        np.testing.assert_array_equal(counts, np.histogram(values[identifiable], edges)[0])
        assert grey.sum() == (~identifiable).sum()
        notes = " ".join(t.get_text() for t in ax.texts)
        assert ("grey: not identifiable in 1" in notes) == (not identifiable.all())


def test_the_notes_of_a_panel_sit_above_its_bars(county_fit):
    """A panel's notes ('grey: not identifiable in 1', 'N beyond the axis') are drawn in
    its top right corner: the axis leaves room for them above the tallest bar."""
    result, _ = county_fit
    table = result.table.copy()
    table.loc[table.index[:3], "dec 2 loss rate_identifiable"] = False  # two lines of notes
    figure = parameter_histograms(dataclasses.replace(result, table=table))
    renderer = figure.canvas.get_renderer()
    noted = 0
    for ax in (ax for ax in figure.axes if ax.get_visible()):
        notes = [t for t in ax.texts if "not identifiable" in t.get_text()
                 or "beyond the axis" in t.get_text()]  # not the tick labels
        if not notes:
            continue
        noted += 1
        tallest = max(p.get_window_extent(renderer).y1 for p in ax.patches
                      if isinstance(p, StepPatch))
        assert all(t.get_window_extent(renderer).y0 >= tallest for t in notes), ax.get_title()
    assert noted >= 2


def test_a_parameter_identifiable_nowhere_is_labelled(county_fit):
    result, _ = county_fit
    table = result.table.assign(**{"dec 4 loss rate_identifiable": False})
    figure = parameter_histograms(dataclasses.replace(result, table=table))
    assert figure.axes[2].get_title() == "dec 4 loss rate: NOT identifiable"


def test_bins_are_round_and_say_what_lies_beyond():
    values = np.concatenate([np.linspace(0, 1, 1000), [50.0]])
    bins, outside = _bins(values)
    assert outside == 1 and np.allclose(np.diff(bins), 0.05)
    bins, outside = _bins(np.linspace(-0.1, 0.25, 500))  # the loss rates' range
    assert outside == 0 and np.allclose(np.diff(bins), 0.01)
    assert bins[0] <= -0.1 and bins[-1] >= 0.25


def test_observed_vs_fitted_plots_every_target_and_its_residual(county_fit):
    result, _ = county_fit
    left, right = observed_vs_fitted(result).axes
    targets = result.targets
    for variable, group in targets.groupby("variable"):
        fitted = next(line for line in left.lines if line.get_label() == variable)
        np.testing.assert_array_equal(fitted.get_xdata(), group["observed"])
        np.testing.assert_array_equal(fitted.get_ydata(), group["fitted"])
    residuals = np.concatenate([line.get_ydata() for line in right.lines
                                if isinstance(line, Line2D) and line.get_marker() == "o"])
    np.testing.assert_array_equal(np.sort(residuals),
                                  np.sort(targets["fitted"] - targets["observed"]))


@pytest.mark.slow
def test_drawing_leaves_matplotlib_global_state_alone(county_fit, tmp_path):
    """A notebook's backend and rcParams survive importing sdfit and drawing with it, and
    pyplot is never imported."""
    import pickle

    result, _ = county_fit
    path = tmp_path / "result.pkl"
    path.write_bytes(pickle.dumps(result))
    script = f"""
import pickle, sys
import matplotlib
matplotlib.use("svg")
before = dict(matplotlib.rcParams)
import sdfit, sdfit.figures, sdfit.report
result = pickle.loads(open({str(path)!r}, "rb").read())
sdfit.figures.write_figures(result, {str(tmp_path / "figures")!r})
sdfit.report.render(result)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert dict(matplotlib.rcParams) == before
assert "matplotlib.pyplot" not in sys.modules
print("untouched")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=False)
    assert run.stdout.strip() == "untouched", run.stderr
