"""Shared fixtures.  Data from ../shared/data is read where SDFIT_DATA points; outside CI
the tests that need it skip with a message, in CI (CI=true) they fail instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sdfit
from sdfit.data import read_panel
from sdfit.datasets import aging_chain_path

CENSUS = "census/Males by decade and county.csv"


def _shared_data() -> Path:
    root = os.environ.get("SDFIT_DATA")
    if root and (Path(root) / CENSUS).is_file():
        return Path(root)
    message = ("set SDFIT_DATA to the shared data folder (e.g. SDFIT_DATA=../shared/data) "
               "to run the tests that use the census data, original model and test-models")
    if os.environ.get("CI"):
        pytest.fail(f"SDFIT_DATA is required in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_data()


@pytest.fixture(scope="session")
def census_path(shared_data) -> Path:
    return shared_data / CENSUS


@pytest.fixture(scope="session")
def census(census_path):
    return read_panel(census_path)


@pytest.fixture(scope="session")
def original_model_path(shared_data) -> Path:
    return shared_data / "models" / "Aging_Chain.mdl"


@pytest.fixture(scope="session")
def aging_chain():
    return sdfit.load_model(aging_chain_path())
