"""County maps: what each map colours, how, and what the legend and scale say."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import Normalize, to_rgba

from sdfit.exceptions import FigureWarning
from sdfit.figures import county_map, load_county_shapes, map_layers, unmapped_units, write_figures
from sdfit.figures.maps import CLIP, DROPPED, FAILED, NO_DATA, NOT_IDENTIFIABLE, VALUE
from sdfit.figures.raster import CountyImage


@pytest.fixture(scope="module")
def shapes(county_shapefile):
    return load_county_shapes(county_shapefile)


@pytest.fixture(scope="module")
def damaged(county_fit):
    """The fit with Los Angeles failed and one Alabama county dropped for invalid data."""
    result, _ = county_fit
    table = result.table.copy()
    la = (table["state"] == 6) & (table["county"] == 37)
    table.loc[la, ["success", "status"]] = False, -1
    table.loc[la, "dec 3 loss rate"] = np.nan
    dropped = table.iloc[[0]][["state", "county"]].assign(line=4, reason="negative count")
    table = table.iloc[1:]
    return dataclasses.replace(result, table=table.reset_index(drop=True), dropped=dropped)


def test_each_county_is_coloured_by_its_own_value(county_fit, shapes):
    result, _ = county_fit
    layers = map_layers(result, shapes)
    assert [layer.parameter for layer in layers] == result.parameters
    table = result.table.set_index(["state", "county"])
    record = {k: i for i, k in enumerate(zip(shapes.state, shapes.county, strict=True))}
    for layer in layers:
        values = table[layer.parameter]
        shown = [record[k] for k in values.index if k in record
                 and layer.category[record[k]] == VALUE]
        np.testing.assert_array_equal(layer.values[shown],
                                      [values[(shapes.state[r], shapes.county[r])]
                                       for r in shown])
        expected = matplotlib.colormaps["viridis"](
            Normalize(layer.low, layer.high)(layer.values[shown]))
        np.testing.assert_array_equal(layer.colours()[shown], expected)
        lo, hi = np.quantile(layer.values[shown], CLIP)
        assert (layer.low, layer.high) == (lo, hi)
        assert layer.below == (layer.values[shown] < lo).sum() > 0
    # every county the fit does not cover is "no data", drawn light grey
    no_data = layers[0].category == NO_DATA
    assert no_data.sum() == len(shapes.state) - 32  # 33 units, one without a shape
    assert (layers[0].colours()[no_data] == to_rgba("#e4e4e4")).all()


def test_kalawao_is_not_identifiable_where_the_diagnostics_say_so(county_fit, shapes):
    result, _ = county_fit
    kalawao = shapes.locate([15], [5])[0]
    flags = result.table.set_index(["state", "county"]).loc[(15, 5)]
    for layer in map_layers(result, shapes):
        expected = VALUE if flags[f"{layer.parameter}_identifiable"] else NOT_IDENTIFIABLE
        assert layer.category[kalawao] == expected, layer.parameter
    assert not flags["dec 2 loss rate_identifiable"]


def test_failed_and_dropped_units_are_named_apart_from_no_data(damaged, shapes):
    layers = map_layers(damaged, shapes)
    la, dropped = shapes.locate([6, 1], [37, 1])
    for layer in layers:
        assert layer.category[la] == FAILED and layer.category[dropped] == DROPPED
        assert layer.count(FAILED) == 1 and layer.count(DROPPED) == 1
    assert tuple(layers[1].colours()[la]) == to_rgba("#d62728")


def test_the_figure_draws_the_layers_and_says_what_it_clips(damaged, shapes):
    figure = county_map(damaged, shapes)
    maps = [ax for ax in figure.axes if any(isinstance(i, CountyImage) for i in ax.images)]
    assert len(maps) == len(damaged.parameters)
    figure.canvas.draw()
    la = shapes.locate([6], [37])[0]
    for ax, layer in zip(maps, map_layers(damaged, shapes), strict=True):
        drawn = next(i for i in ax.images if isinstance(i, CountyImage))
        assert drawn.get_label() == layer.parameter
        np.testing.assert_array_equal(drawn.colours, layer.colours())
        # the pixels drawn: each county in its layer's colour, borders whitened over it
        pixels = drawn.raster.paint(drawn.colours)
        inside = (drawn.raster.index == la + 1) & (drawn.raster.border == 0)
        assert inside.sum() > 20  # Los Angeles County covers pixels, in its own colour
        expected = np.round(np.array(layer.colours()[la]) * 255)
        assert (pixels[inside] == expected).all()
        assert drawn.raster.border.max() == 255
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    # 33 units: one without a shape, one failed, one dropped
    assert legend[:3] == [f"no data in the panel: {len(shapes.state) - 32:,} counties",
                          "fit failed: 1 county", "dropped for invalid data: 1 county"]
    assert legend[3] == "not identifiable (counted in each title)"
    labels = [t.get_text() for t in maps[0].texts if t.get_text().startswith("colours")]
    layer = map_layers(damaged, shapes)[0]
    assert layer.below == 1  # 2 % of 31 counties
    assert labels == [f"colours clipped to the 2%\u201398% quantiles: 1 county below, "
                      f"{layer.above} above"]
    # the colour scale: the colours of the layer's limits, a triangle at each clipped end
    gradient = next(i for i in maps[0].images if not isinstance(i, CountyImage))
    assert (gradient.norm.vmin, gradient.norm.vmax) == (0, 1)
    assert len([p for p in maps[0].patches if p.get_fill()]) == 2  # below and above
    titles = [t.get_text() for ax in figure.axes for t in ax.texts + [ax.title]]
    assert "dec 2 loss rate (not identifiable in 1 county)" in titles
    caption = figure.texts[-1].get_text()
    assert "1 fitted units have no shape: state=2, county=68" in caption


def test_a_parameter_identifiable_nowhere_is_greyed_and_labelled(county_fit, shapes):
    result, _ = county_fit
    table = result.table.assign(**{"dec 3 loss rate_identifiable": False})
    layers = map_layers(dataclasses.replace(result, table=table), shapes)
    assert layers[1].count(VALUE) == 0 and layers[1].count(NOT_IDENTIFIABLE) == 32
    figure = county_map(dataclasses.replace(result, table=table), shapes,
                        ["dec 3 loss rate"])
    assert figure.axes[0].get_title() == "dec 3 loss rate: NOT identifiable in any county"
    assert len(figure.axes) == 1  # no colour scale for values nobody can read


def test_unmapped_units(county_fit, shapes):
    assert unmapped_units(county_fit[0], shapes) == ["state=2, county=68"]


@pytest.mark.slow
def test_write_figures_maps_what_the_report_maps(county_fit, county_shapefile, tmp_path):
    result, _ = county_fit
    written = write_figures(result, tmp_path, shapefile=county_shapefile)
    assert [p.name for p in written] == ["histogram.png", "observed_vs_fitted.png", "map.png"]
    one = write_figures(result, tmp_path / "one", map_parameter="dec 5 loss rate",
                        shapefile=county_shapefile)
    assert one[-1].read_bytes()[:4] == b"\x89PNG"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_figures(result, tmp_path / "none", shapefile=None)
    assert [p.name for p in written] == ["histogram.png", "observed_vs_fitted.png"]
    assert [str(w.message) for w in caught if w.category is FigureWarning] == [
        "No map.png: the county shapefile was not found (set SDFIT_DATA to the folder "
        "holding census/US_County_2000_2004.shp)."]


def test_units_that_are_not_counties_get_no_map(county_fit, tmp_path):
    result, _ = county_fit
    table = result.table.rename(columns={"county": "hospital"})
    other = dataclasses.replace(result, table=table,
                                targets=result.targets.rename(columns={"county": "hospital"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = write_figures(other, tmp_path, shapefile=None)
    assert "map.png" not in [p.name for p in written]


@pytest.mark.parametrize("low, high", [(-0.0891, -0.0132), (0.0123, 0.271), (1.2e-6, 3.4e-6),
                                       (1000.51, 1000.93), (-3.0, 250.0)])
def test_the_colour_scale_is_ticked_as_a_colour_bar_would_be(low, high):
    """The map's scale is drawn without an Axes: its ticks, labels and offset text are
    what matplotlib's own colour bar of the same size shows."""
    from matplotlib.cm import ScalarMappable

    from sdfit.figures.canvas import new_figure
    from sdfit.figures.scale import _ticks

    figure = new_figure(5.2, 1.0)
    bar = figure.colorbar(ScalarMappable(Normalize(low, high), "viridis"),
                          cax=figure.add_axes((0.1, 0.5, 0.8, 0.12)), orientation="horizontal")
    bar.ax.tick_params(labelsize=7)
    figure.canvas.draw()
    shown = [(t.get_position()[0], t.get_text()) for t in bar.ax.get_xticklabels()
             if low <= t.get_position()[0] <= high]
    ticks, labels, offset = _ticks(low, high, 0.8 * 5.2 * 72, 7)
    np.testing.assert_allclose(ticks, [x for x, _ in shown])
    assert labels == [text for _, text in shown]
    assert offset == bar.ax.xaxis.get_offset_text().get_text()
