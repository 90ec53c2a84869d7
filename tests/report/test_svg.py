"""The report's own charts (SVG): each shows the numbers it says it shows."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from helpers import story_without_a_curve
from sdfit.figures import grid_units
from sdfit.report import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _tree(text: str) -> ET.Element:
    return ET.fromstring(text)  # well-formed XML, or this raises


def _texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iterfind(".//s:text", NS)]


def test_the_grid_shows_the_best_median_and_worst_units(county_fit, county_stories):
    result, _ = county_fit
    picks = grid_units(result)
    sse = result.table["sse"].to_numpy()
    keys = list(county_stories)
    assert picks["best"] == keys[np.argmin(sse)] and picks["worst"] == keys[np.argmax(sse)]
    assert picks["median"] == keys[np.argsort(sse)[(len(sse) - 1) // 2]]
    text = svg.story_grid({k: county_stories[k] for k in picks.values()})
    root = _tree(text)
    rows = [t for t in _texts(root) if t.split(":")[0] in ("best", "median", "worst")]
    assert [r.split(":")[0] for r in rows] == ["best", "median", "worst"]
    assert rows[2].startswith(f"worst: {picks['worst']}, SSE ")
    assert "not identifiable: dec 2 loss rate" in rows[2]  # Kalawao
    lines = root.findall(".//s:polyline", NS)
    assert len(lines) == 3 * 9
    # the worst unit's dec 9: the curve as drawn, read back through the range written
    story = county_stories[picks["worst"]]
    curve = story.curves["dec 9"]
    x, y = np.array([p.split(",") for p in lines[-1].get("points").split()], float).T
    texts = _texts(root)
    at = len(texts) - 4  # its title, then the range: top, bottom, times
    assert texts[at:] == ["dec 9", texts[at + 1], texts[at + 2], "2000 to 2010"]
    high, low = float(texts[at + 1]), float(texts[at + 2])
    frame = root.findall(".//s:rect[@width='100']", NS)[-1]  # the panel, 80 pixels high
    values = high - (y - float(frame.get("y"))) / 80 * (high - low)
    assert len(x) == len(curve) and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(values, curve, atol=(high - low) * 0.01)
    # given every story, the grid picks the same three
    assert [t for t in _texts(_tree(svg.story_grid(county_stories)))
            if t.split(":")[0] in ("best", "median", "worst")] == rows


def test_a_long_curve_is_thinned_but_keeps_its_spikes():
    times = np.linspace(0, 100, 20001)
    curve = np.sin(times)
    curve[12345] = 50.0  # one step high
    curve[3000:3010] = np.nan  # a gap
    runs = svg._thin(times, curve, 200)
    assert len(runs) == 2 and sum(len(r) for r in runs) < 2000
    kept = np.concatenate(runs)
    assert kept[:, 1].max() == 50.0 and kept[:, 1].min() == curve[np.isfinite(curve)].min()
    assert kept[0, 0] == 0 and kept[-1, 0] == 100


def test_a_story_without_curves_shows_the_model_at_the_observations():
    story = story_without_a_curve(b_used=False)
    root = _tree(svg.story_grid({"unit=1": story}))
    assert len(root.findall(".//s:polyline", NS)) == 1  # a's curve; b has none
    circles = root.findall(".//s:circle", NS)
    # two legend dots, a's observation (filled), b's (hollow: not in the SSE)
    assert [c.get("fill") for c in circles] == ["black", "white", "black", "white"]
    assert len([p for p in root.iterfind(".//s:path", NS) if "l6 6" in p.get("d")]) == 1


def test_the_sse_chart_counts_every_unit(county_fit):
    """Positive SSEs as bars; exact fits counted in the title, not drawn at log10(tiny)
    (which squeezed every other unit into one bar)."""
    result, _ = county_fit
    result = dataclasses.replace(result, table=result.table.copy())
    result.table.loc[result.table.index[:2], "sse"] = 0.0
    sse = result.table["sse"].to_numpy()
    root = _tree(svg.sse_chart(result))
    bars = root.findall(".//s:rect[@fill='#4c72b0']", NS)
    heights = np.array([float(b.get("height")) for b in bars])
    counts, _ = np.histogram(np.log10(sse[sse > 0]), 60)
    np.testing.assert_allclose(heights / heights.max(), counts[counts > 0] / counts.max(),
                               atol=0.002)
    assert (f"SSE of {len(sse)} counties (2 with SSE 0: not drawn)" in _texts(root))
    assert "log10 SSE (weighted sum of squared target residuals)" in _texts(root)


def test_the_identifiability_chart_splits_each_parameter(county_fit):
    result, _ = county_fit
    root = _tree(svg.identifiability_chart(result))
    texts = _texts(root)
    assert [t for t in texts if t in result.parameters] == result.parameters
    green = [float(r.get("width")) for r in root.findall(".//s:rect[@fill='#55a868']", NS)]
    red = [float(r.get("width")) for r in root.findall(".//s:rect[@fill='#d62728']", NS)]
    green, red = green[:-1], red[:-1]  # the legend's patches last
    not_identified = ~result.table[[f"{p}_identifiable" for p in result.parameters]].to_numpy(
        bool)
    share = not_identified.mean(axis=0)
    assert len(red) == np.count_nonzero(share)  # a red part where some unit is not
    np.testing.assert_allclose(np.array(green) / max(green), 1 - share, atol=0.01)
    # and in words, however thin the red part
    counts = not_identified.sum(axis=0)
    assert [t for t in texts if t.startswith("not identifiable in ")] == [
        f"not identifiable in {n:,}" for n in counts if n]


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (0, 100, ["0", "20", "40", "60", "80", "100"]),
    (-323, 0, ["\u2212300", "\u2212200", "\u2212100", "0"]),
    (0.1, 0.35, ["0.10", "0.15", "0.20", "0.25", "0.30", "0.35"]),
    (0, 1.05, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
    (0, 26, ["0", "5", "10", "15", "20", "25"])])
def test_ticks_are_round(low, high, ticks):
    assert [label for _, label in svg._ticks(low, high)] == ticks


def test_short_numbers():
    assert [svg._short(v) for v in (54600, 5460, 3.14159, -0.851, 2.5e6)] == \
        ["54.6k", "5460", "3.14", "-0.851", "2.5M"]
