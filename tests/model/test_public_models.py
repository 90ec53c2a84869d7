"""Public models as modellers write them (tests/models/public, see its MANIFEST.toml): every
file marked to keep working compiles and runs a batch, and agrees with the output of
Vensim or Stella shipped with it.  ``benchmarks/public_models.py`` also runs them through
PySD and prints the table of the README."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import sdfit
from sdfit.conformance import _spread_constants, read_output
from sdfit.model.runtime.variables import key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PUBLIC = Path(__file__).parents[1] / "models" / "public"
MANIFEST = tomllib.loads((PUBLIC / "MANIFEST.toml").read_text())["model"]


def _cases():
    for entry in MANIFEST:
        if entry.get("test") in ("fast", "slow"):
            marks = [pytest.mark.slow] if entry["test"] == "slow" else []
            yield pytest.param(entry, marks=marks, id=entry["file"])


def test_the_manifest_names_every_file_and_its_licence():
    files = {str(p.relative_to(PUBLIC)) for p in PUBLIC.rglob("*")
             if p.suffix.lower() in (".mdl", ".xmile", ".stmx")}
    assert files == {m["file"] for m in MANIFEST}
    assert len(MANIFEST) >= 30
    for entry in MANIFEST:
        assert entry["licence"] in ("MIT", "Apache-2.0", "CC-BY-3.0"), entry["file"]
        assert len(entry["commit"]) == 40 and entry["source"] and entry["path"]
        if entry.get("differs"):
            assert entry["differs"] in ("pysd-wrong", "random") and entry["note"]


@pytest.mark.parametrize("entry", _cases())
def test_public_model_runs_and_agrees_with_its_reference(entry):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data readers and RK2 substitutions warn
        model = sdfit.load_model(PUBLIC / entry["file"])
        sim = model.run(2, seed=1)
    frame = sim.to_frame(1)
    assert np.isfinite(frame.to_numpy(float)).any()
    if not entry.get("reference") or not entry.get("compare", True):
        return
    expected = _spread_constants(read_output(PUBLIC / entry["reference"]))
    ours = {key(c): frame[c].to_numpy(float) for c in frame.columns}
    times = np.round(frame.index.to_numpy(float), 6)
    rows = np.isin(times, np.round(expected.index.to_numpy(float), 6))
    compared = 0
    for column in expected.columns:
        if key(column) not in ours:
            continue
        want = expected[column].to_numpy(float)[np.isin(
            np.round(expected.index.to_numpy(float), 6), times)]
        got = ours[key(column)][rows]
        keep = ~np.isnan(want)
        np.testing.assert_allclose(got[keep], want[keep], rtol=entry.get("rtol", 1e-4),
                                   atol=entry.get("atol", 1e-5), err_msg=column)
        compared += 1
    assert compared >= 1
