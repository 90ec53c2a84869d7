"""Unit stories: the fixture's simulation agrees with the fit, and each figure shows
the trajectories, observations and parameters of the units it says it shows."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import story_without_a_curve
from sdfit.figures import (
    drawn_variables,
    pick_best_median_worst,
    plot_units,
    unit_figure,
    write_unit_figures,
)


def test_the_curves_drawn_run_through_the_fit(county_fit, county_stories):
    """What the figures draw: each story's trajectory starts from the unit's 2000 counts
    and ends on the fit's own fitted 2010 targets."""
    result, _ = county_fit
    assert len(county_stories) == len(result.table)
    targets = result.targets
    for key, story in county_stories.items():
        state, county = (int(part.split("=")[1]) for part in key.split(", "))
        mine = targets[(targets["state"] == state) & (targets["county"] == county)]
        assert story.times[0] == 2000 and story.times[-1] == 2010
        for variable, fitted in zip(mine["variable"], mine["fitted"], strict=True):
            assert story.curves[variable][-1] == pytest.approx(fitted, rel=1e-9, abs=1e-9)
        start = story.observations[story.observations["time"] == 2000]
        for variable, observed in zip(start["variable"], start["observed"], strict=True):
            assert story.curves[variable][0] == observed


def test_unit_figure_shows_every_variable_and_the_parameter_table(county_stories):
    story = county_stories["state=15, county=5"]  # Kalawao: parameters not identifiable
    figure = unit_figure(story)
    panels = [ax for ax in figure.axes if ax.lines]
    assert [ax.texts[0].get_text() for ax in panels] == drawn_variables(story)
    assert drawn_variables(story) == [f"dec {k}" for k in range(1, 10)]
    for ax, variable in zip(panels, drawn_variables(story), strict=True):
        curve, used, unused = ax.lines
        np.testing.assert_array_equal(curve.get_ydata(), story.curves[variable])
        seen = story.observations[story.observations["variable"] == variable]
        np.testing.assert_array_equal(used.get_ydata(), seen["observed"][seen["used"]])
        np.testing.assert_array_equal(unused.get_ydata(), seen["observed"][~seen["used"]])
        assert used.get_markerfacecolor() == "black" and unused.get_markerfacecolor() == "none"
    table = next(ax for ax in figure.axes if ax.tables).tables[0]
    cells = table.get_celld()
    rows = {cells[r, 0].get_text().get_text(): cells[r, 3].get_text().get_text()
            for r in range(1, len(story.parameters) + 1)}
    assert rows["dec 2 loss rate"] == "NO" and rows["dec 3 loss rate"] == "yes"
    assert cells[1, 2].get_text().get_text() == "unavailable"  # no degrees of freedom
    assert figure.texts[0].get_text() == f"{story.label}: SSE {story.sse:.3g}"


def test_intervals_and_observations_without_a_curve():
    story = story_without_a_curve(b_used=True)
    figure = unit_figure(story)
    panel_b = next(ax for ax in figure.axes if ax.texts and ax.texts[0].get_text() == "b")
    model = [line for line in panel_b.lines if line.get_marker() == "x"]
    assert model[0].get_ydata().tolist() == [4.0]  # the model at the observation
    cells = next(ax for ax in figure.axes if ax.tables).tables[0].get_celld()
    assert cells[1, 2].get_text().get_text() == "[0.4, 0.6]"


def test_pick_best_median_worst_with_few_or_missing_values():
    assert pick_best_median_worst({}) == {}
    assert pick_best_median_worst({"a": 1.0}) == {"best": "a"}
    assert pick_best_median_worst({"a": 2.0, "b": 1.0}) == {"best": "b", "worst": "a"}
    assert pick_best_median_worst({"a": np.nan, "b": 1.0, "c": 3.0, "d": 2.0}) == {
        "best": "b", "median": "d", "worst": "a"}


def test_write_unit_figures_names_files_by_unit(county_stories, tmp_path):
    chosen = {k: county_stories[k] for k in ["state=6, county=37", "state=15, county=5"]}
    written = write_unit_figures(chosen, tmp_path)
    assert [p.name for p in written] == ["unit-state-6-county-37.png",
                                         "unit-state-15-county-5.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_plot_units_names_the_county(county_fit, county_shapefile, tmp_path, monkeypatch):
    """What `sdfit plot DIR --unit 6,37` calls: the unit simulated again, titled by name."""
    import sdfit.figures.stories as drawing

    titles = []
    draw = drawing.unit_figure
    monkeypatch.setattr(drawing, "unit_figure",
                        lambda story: titles.append(story.label) or draw(story))
    written = plot_units(county_fit[0], [(6, 37)], tmp_path, shapefile=county_shapefile)
    assert [p.name for p in written] == ["unit-state-6-county-37.png"]
    assert titles == ["Los Angeles County, California (state=6, county=37)"]
