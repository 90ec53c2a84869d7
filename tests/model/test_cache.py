"""Compiled models in the user cache: a hit skips translation, any change of the model or
its data files misses, and an entry is never trusted under another key."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import sdfit
from sdfit.datasets import aging_chain_path
from sdfit.model.compiler import cache


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "chain.mdl"
    path.write_bytes(aging_chain_path().read_bytes())
    return path


def _translations(monkeypatch) -> list:
    """Record every call of PySD's translators."""
    calls = []
    from sdfit.model import translate as translate_module

    original = translate_module.translate
    monkeypatch.setattr(translate_module, "translate",
                        lambda path: calls.append(path) or original(path))
    return calls


def test_a_second_load_comes_from_the_cache_without_translating(model_file, monkeypatch):
    calls = _translations(monkeypatch)
    first = sdfit.load_model(model_file)
    assert not cache.last_load.cached and len(calls) == 1
    second = sdfit.load_model(model_file)
    assert cache.last_load.cached and len(calls) == 1
    assert second.path == str(model_file)
    assert second.assignments == first.assignments and second.states == first.states
    run = {"batch_size": 2, "params": {"dec 3 loss rate": [0.01, 0.02]},
           "return_columns": ["dec 9"]}
    np.testing.assert_array_equal(second.run(**run).values["dec 9"],
                                  first.run(**run).values["dec 9"])


def test_a_changed_model_file_is_compiled_again(model_file, monkeypatch):
    calls = _translations(monkeypatch)
    sdfit.load_model(model_file)
    model_file.write_text(model_file.read_text().replace("0.125", "0.25"))
    model = sdfit.load_model(model_file)
    assert not cache.last_load.cached and len(calls) == 2
    assert model.time_step == 0.25


def test_an_entry_under_another_key_or_damaged_is_never_used(model_file, monkeypatch):
    calls = _translations(monkeypatch)
    sdfit.load_model(model_file)
    key = cache.cache_key(model_file, [])
    entry = cache.cache_dir() / f"{key}.pickle"
    other = sdfit.load_model(sdfit.datasets.EXAMPLES / "aging_chain_subscripted.mdl")
    entry.write_bytes(pickle.dumps(("another key", other)))
    model = sdfit.load_model(model_file)
    assert not cache.last_load.cached and len(calls) == 3
    assert "dec 9" in model.names()  # the chain itself, not the planted entry
    entry.write_bytes(b"not a pickle")
    assert "dec 9" in sdfit.load_model(model_file).names()
    assert not cache.last_load.cached and len(calls) == 4
    sdfit.load_model(model_file)  # the damaged entry was replaced
    assert cache.last_load.cached


def test_the_same_content_under_an_unknown_suffix_is_refused_not_served(model_file):
    sdfit.load_model(model_file)
    renamed = model_file.with_suffix(".txt")
    renamed.write_bytes(model_file.read_bytes())
    with pytest.raises(sdfit.ModelError, match="has suffix '.txt'"):
        sdfit.load_model(renamed)


def test_models_reading_external_files_are_not_cached(tmp_path):
    path = tmp_path / "external.mdl"
    path.write_text('{UTF-8}\nrate = GET XLS CONSTANTS("data.xlsx", "Sheet1", "A1")\n'
                    "\t~\t~\t|\n")
    assert cache.cache_key(path, []) is None
    assert cache.cache_key(aging_chain_path(), []) is not None
    assert cache.cache_key(aging_chain_path(), [path]) != cache.cache_key(aging_chain_path(), [])
