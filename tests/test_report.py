"""sdfit report: every section present in one self-contained HTML page, figures embedded."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest

from sdfit.cli import main
from sdfit.report import SECTIONS


class _Page(HTMLParser):
    """Sections by id, with their text and embedded images; links to other files."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current = None
        self.external = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = self.sections.setdefault(attrs["id"], {"text": "", "images": []})
        elif tag == "img":
            src = attrs["src"]
            if not src.startswith("data:image/png;base64,"):
                self.external.append(src)
            elif self.current is not None:
                self.current["images"].append(base64.b64decode(src.split(",", 1)[1]))
        elif tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.external.append(attrs.get("href") or attrs.get("src"))

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current is not None:
            self.current["text"] += data + " "


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


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
    for key in ("sse", "parameters", "fit", "map", "identifiability"):
        images = page.sections[key]["images"]
        assert images and all(i.startswith(b"\x89PNG") and len(i) > 5000 for i in images), key
    run = json.loads((out / "run.json").read_text())
    text = {k: " ".join(v["text"].split()) for k, v in page.sections.items()}
    for name, digest in run["fingerprints"].items():
        assert len(digest) == 64 and digest in text["run"], name
    assert "40 of 40 units succeeded, 0 failed" in text["outcome"]
    identifiability = text["identifiability"]
    if formulation == "us-counties-recipe":
        assert "dec 1 loss rate is not identifiable from the 2010 targets in 40 of 40" \
            in identifiability
    else:
        assert "dec 1 loss rate fixed at 0.05 not fitted" in identifiability
        assert "Identifiability: 40 of 40 units have full rank" in identifiability


def test_report_of_a_folder_without_results_is_one_sentence(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no params.csv" in err and err.count("\n") == 1
