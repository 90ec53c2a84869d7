"""sdfit report: every section present in one self-contained HTML page, figures embedded
(the PNGs `sdfit fit` drew from the same results as they are, else drawn again)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdfit.cli import main
from sdfit.figures import grid_units, record, unit_keys, unit_labels
from sdfit.report import SECTIONS, render, sections, write_report
from sdfit.report.lookup import lookup
from sdfit.results import FitResult


class _Page(HTMLParser):
    """Sections by id, with their text and embedded images; links to other files; the
    text of each script element."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current = None
        self.external = []
        self.scripts: dict[str, str] = {}
        self.script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = self.sections.setdefault(attrs["id"], {"text": "", "images": [],
                                                                  "charts": 0})
        elif tag == "svg" and self.current is not None and attrs.get("class") == "chart":
            self.current["charts"] += 1
        elif tag == "img":
            src = attrs["src"]
            if not src.startswith("data:image/png;base64,"):
                self.external.append(src)
            elif self.current is not None:
                self.current["images"].append(base64.b64decode(src.split(",", 1)[1]))
        elif tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.external.append(attrs.get("href") or attrs.get("src"))
        if tag == "script":
            self.script = attrs.get("id") or f"script {len(self.scripts)}"
            self.scripts[self.script] = ""

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None
        elif tag == "script":
            self.script = None

    def handle_data(self, data):
        if self.script is not None:
            self.scripts[self.script] += data
        elif self.current is not None:
            self.current["text"] += data + " "


def _parse(path) -> _Page:
    return _parse_text(path.read_text(encoding="utf-8"))


def _parse_text(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _text(page: _Page, key: str) -> str:
    return " ".join(page.sections[key]["text"].split())


@pytest.fixture(scope="module")
def counties(census, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "counties.csv"
    census.head(40).to_csv(path)
    return path


@pytest.mark.parametrize("formulation", ["us-counties-recipe", "us-counties"])
def test_fit_report_has_every_section(counties, tmp_path, formulation, shared_data):
    out = tmp_path / "out"
    assert main(["fit", formulation, "--data", str(counties), "--out", str(out), "--quiet",
                 "--backend", "serial", "--no-figures", "--report"]) == 0
    page = _parse(out / "report.html")
    assert list(page.sections) == list(SECTIONS) and not page.external
    for key in ("parameters", "fit", "map"):  # no figures/: drawn for the page
        images = page.sections[key]["images"]
        assert images and all(i.startswith(b"\x89PNG") and len(i) > 5000 for i in images), key
    for key in ("sse", "identifiability"):
        assert page.sections[key]["charts"] == 1, key
    assert "units-data" in page.scripts
    assert page.sections["units"]["charts"] == 1  # the grid, its units simulated again
    run = json.loads((out / "run.json").read_text())
    text = {k: " ".join(v["text"].split()) for k, v in page.sections.items()}
    for name, digest in run["fingerprints"].items():
        assert len(digest) == 64 and digest in text["run"], name
    assert "40 of 40 units succeeded, 0 failed" in text["outcome"]
    assert "backend serial (1 worker, 1 chunk)" in text["run"]
    identifiability = text["identifiability"]
    if formulation == "us-counties-recipe":
        assert "dec 1 loss rate is not identifiable from the 2010 targets in 40 of 40" \
            in identifiability
    else:
        assert "dec 1 loss rate fixed at 0.05 not fitted" in identifiability
        assert "Identifiability: 40 of 40 units have full rank" in identifiability
        assert "Rank of the column-scaled Jacobian: 8 in 40 units." in identifiability


def test_report_of_a_folder_without_results_is_one_sentence(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no params.csv" in err and err.count("\n") == 1


# -- pages rendered from a fit of 33 counties (tests/conftest.py: county_fit) -------------
@pytest.fixture(scope="module")
def page(county_fit, county_shapefile, county_stories):
    result, _ = county_fit
    picks = grid_units(result)
    stories = {k: county_stories[k] for k in [*picks.values(), "state=6, county=37"]}
    return _parse_text(render(result, county_shapefile, stories))


def test_units_are_named_after_their_county(page):
    assert "Kalawao County, Hawaii (state=15, county=5)): it moves along" \
        in _text(page, "identifiability")  # the diagnostics' summary, named
    units = _text(page, "units")
    assert "worst Kalawao County, Hawaii (state=15, county=5)" in units
    assert "Los Angeles County, California (state=6, county=37)" in units  # largest SSE
    assert "state=2, county=68" in units  # no shape, so no name: its ids alone


def test_the_map_section_maps_every_parameter(page, county_fit):
    images = page.sections["map"]["images"]
    assert len(images) == 1 and images[0][:4] == b"\x89PNG"
    assert "One map per fitted parameter (the same as figures/map.png)" in _text(page, "map")


@pytest.mark.slow
def test_the_grid_of_stories_by_default_or_why_not(page, county_fit, tmp_path):
    assert page.sections["units"]["charts"] == 1
    result, _ = county_fit
    fresh = _parse_text(render(result))  # the three units simulated again by default
    assert fresh.sections["units"]["charts"] == 1
    assert "No map: the county shapefile was not found" in _text(fresh, "map")
    none = _parse_text(render(result, stories={}))
    assert not none.sections["units"]["charts"]
    assert "Their trajectories are not drawn: no stories were given." in _text(none, "units")
    result.write(tmp_path)
    again = FitResult.read(tmp_path)
    gone = dataclasses.replace(again, run=dataclasses.replace(
        again.run, data=str(tmp_path / "moved.csv")))
    text = _text(_parse_text(render(gone)), "units")
    assert "Their trajectories are not drawn: Drawing units needs the data the fit read" \
        in text and "moved.csv" in text


def test_the_lookup_embeds_every_unit(page, county_fit, county_stories):
    result, _ = county_fit
    data = json.loads(page.scripts["units-data"])
    table = result.table
    la = int(np.flatnonzero((table["state"] == 6) & (table["county"] == 37))[0])
    assert data["labels"][la] == "Los Angeles County, California (state=6, county=37)"
    assert len(data["labels"]) == len(table) == 33
    for j, name in enumerate(result.parameters):
        np.testing.assert_allclose(data["values"][j], table[name], rtol=1e-5)
        assert data["identifiable"][j] == "".join(
            "1" if f else "0" for f in table[f"{name}_identifiable"])
    np.testing.assert_allclose(data["sse"], table["sse"], rtol=1e-5)
    targets = data["targets"]
    rows = slice(targets["start"][la], targets["start"][la + 1])
    mine = result.targets[(result.targets["state"] == 6) & (result.targets["county"] == 37)]
    assert [targets["variables"][v] for v in targets["variable"][rows]] == \
        mine["variable"].tolist()
    assert targets["observed"][rows] == mine["observed"].astype(int).tolist()  # exact
    np.testing.assert_allclose(targets["residual"][rows], mine["fitted"] - mine["observed"],
                               rtol=5e-3, atol=1e-300)  # 3 digits
    story = county_stories["state=6, county=37"]
    assert sorted(data["stories"]) == sorted(
        str(i) for i, k in enumerate(unit_keys(table, result.unit_columns))
        if k in [*grid_units(result).values(), "state=6, county=37"])
    np.testing.assert_allclose(data["stories"][str(la)]["curves"]["dec 9"][-1],
                               story.curves["dec 9"][-1], rtol=1e-5)
    assert "getElementById('lookup-query')" in page.scripts["script 1"]


def test_text_from_the_data_cannot_break_out_of_the_page(county_fit):
    """A county name holding markup stays text: escaped in tables, inert in the JSON."""
    result, _ = county_fit
    evil = "</script><script>alert(1)</script><b>x</b>"
    names = pd.Series([evil], pd.MultiIndex.from_tuples([(6, 37)], names=["state", "county"]))
    units = sections.Units(result.unit_columns, unit_keys(result.table, result.unit_columns),
                           unit_labels(result, names), {})
    text = sections.unit_section(result, units) + lookup(result, units)
    assert "<b>x</b>" not in text and text.count("</script>") == 2  # the page's own two
    page = _parse_text(text)
    assert f"{evil} (state=6, county=37)" in json.loads(page.scripts["units-data"])["labels"]
    assert f"{evil} (state=6, county=37)" in _text(page, "units")


# -- the figures `sdfit fit` drew, embedded only when proven drawn from the same results ----
FIGURES = {"parameters": "histogram.png", "fit": "observed_vs_fitted.png", "map": "map.png"}


@pytest.fixture(scope="module")
def fitted(counties, shared_data, tmp_path_factory):
    """40 counties fitted by `sdfit fit` with its figures and the report."""
    out = tmp_path_factory.mktemp("fitted") / "out"
    assert main(["fit", "us-counties", "--data", str(counties), "--out", str(out), "--quiet",
                 "--backend", "serial", "--report"]) == 0
    return out


def _images(page: _Page) -> dict[str, bytes]:
    return {key: page.sections[key]["images"][0] for key in FIGURES}


def _report_images(folder, tmp_path) -> dict[str, bytes]:
    return _images(_parse(write_report(folder, tmp_path / "report.html")))


def _copy(folder, tmp_path):
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_the_report_embeds_the_figures_fit_drew_from_these_results(fitted, tmp_path):
    files = {key: (fitted / "figures" / name).read_bytes() for key, name in FIGURES.items()}
    assert _images(_parse(fitted / "report.html")) == files  # `sdfit fit --report`
    assert _report_images(fitted, tmp_path) == files  # `sdfit report DIR`


def test_figures_are_drawn_again_for_results_they_were_not_drawn_from(fitted, tmp_path):
    folder = _copy(fitted, tmp_path)
    table = pd.read_csv(folder / "params.csv")
    table.loc[0, "dec 2 loss rate"] += 0.01  # another result than the one drawn
    table.to_csv(folder / "params.csv", index=False)
    images = _report_images(folder, tmp_path)
    for key, name in FIGURES.items():
        assert images[key][:4] == b"\x89PNG"
        assert images[key] != (folder / "figures" / name).read_bytes(), key


def test_an_edited_figure_is_drawn_again_and_the_others_embedded(fitted, tmp_path):
    folder = _copy(fitted, tmp_path)
    edited = folder / "figures" / "histogram.png"
    edited.write_bytes(edited.read_bytes() + b"\0")
    images = _report_images(folder, tmp_path)
    assert images["parameters"] != edited.read_bytes()
    for key in ("fit", "map"):
        assert images[key] == (folder / "figures" / FIGURES[key]).read_bytes(), key


def test_a_map_of_one_parameter_is_not_the_reports_map(counties, shared_data, tmp_path):
    out = tmp_path / "out"
    assert main(["fit", "us-counties", "--data", str(counties), "--out", str(out), "--quiet",
                 "--backend", "serial", "--map-parameter", "dec 3 loss rate"]) == 0
    images = _report_images(out, tmp_path)
    assert images["map"] != (out / "figures" / "map.png").read_bytes()
    assert images["fit"] == (out / "figures" / "observed_vs_fitted.png").read_bytes()


def test_figures_of_another_sdfit_version_are_drawn_again(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(record, "__version__", "0.0.0")
    images = _report_images(fitted, tmp_path)
    for key, name in FIGURES.items():
        assert images[key] != (fitted / "figures" / name).read_bytes(), key


def test_the_record_names_files_of_figures_only(fitted, tmp_path):
    folder = _copy(fitted, tmp_path)
    path = folder / "figures" / record.RECORD
    data = json.loads(path.read_text())
    data["figures"]["../params.csv"] = hashlib.sha256(
        (folder / "params.csv").read_bytes()).hexdigest()
    path.write_text(json.dumps(data))
    found = record.reusable(folder, data["map"]["parameters"], data["map"]["shapes"])
    assert sorted(found) == sorted(FIGURES.values())  # not the table outside figures/
    data["figures"] = [[1, "not a name"], *data["figures"].items()]
    path.write_text(json.dumps(data))
    found = record.reusable(folder, data["map"]["parameters"], data["map"]["shapes"])
    assert sorted(found) == sorted(FIGURES.values())
    path.write_text("{not json")
    assert record.reusable(folder, data["map"]["parameters"], data["map"]["shapes"]) == {}
