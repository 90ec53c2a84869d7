"""README is a tested artefact: every Python block runs as written, every TOML block is a
valid spec whose files exist (paths relative to the bundled examples).  A block preceded by
``<!-- not run: why -->`` is skipped (a cluster address, a placeholder file)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from sdfit.spec import EXAMPLES, spec_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\s*)?```(python|toml)\n(.*?)```", re.S)


def blocks(language: str) -> list:
    found = []
    for match in BLOCK.finditer(README.read_text(encoding="utf-8")):
        skipped, lang, code = match.groups()
        if lang == language and not skipped:
            line = README.read_text(encoding="utf-8")[:match.start()].count("\n") + 1
            found.append(pytest.param(code, id=f"README line {line}"))
    return found


@pytest.mark.parametrize("code", blocks("python"))
def test_python_block_runs_as_written(code, tmp_path, monkeypatch, shared_data):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDFIT_DATA", str(shared_data))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README


@pytest.mark.parametrize("code", blocks("toml"))
def test_toml_block_is_a_valid_spec(code):
    raw = tomllib.loads(code)
    spec = spec_from_dict(raw, base=EXAMPLES, source="README")
    if spec.model is not None:
        assert spec.model.is_file(), f"README names a model that sdfit does not ship: {spec.model}"
    assert spec.problem.parameters


def test_readme_has_blocks_of_both_kinds():
    assert blocks("python") and blocks("toml")
    assert os.environ.get("CI") != "true" or len(blocks("python")) >= 3
