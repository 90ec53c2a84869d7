"""The test-models conformance suite run once per pytest session (the ``test_models``
fixture of conftest.py): every folder translated, compiled and simulated by the batched
engine once, and by PySD once (in a pool of two processes, PySD being the slow side).
The tests that compare against the canonical outputs, against PySD and between the two
executors read from it."""

from __future__ import annotations

import concurrent.futures as cf
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sdfit import conformance
from sdfit.exceptions import UnsupportedFeatureError


@dataclass
class Folder:
    """One folder of the suite and what each engine made of it."""

    name: str
    path: Path  # the model file
    scalar: bool  # uses no subscripts
    canonical: pd.DataFrame | None = None
    model: object = None  # the compiled BatchModel
    frames: list[pd.DataFrame] = field(default_factory=list)  # the batched engine's units
    pysd: pd.DataFrame | None = None  # PySD's own run
    error: str = ""  # why the batched engine did not run it
    construct: str = ""  # an unsupported construct
    pysd_error: str = ""


def run_suite(root: Path) -> dict[str, Folder]:
    from sdfit.model import compile_model
    from sdfit.model.translate import translate

    folders: dict[str, Folder] = {}
    with cf.ProcessPoolExecutor(2) as pool:
        pending = {}
        for directory in conformance.suite_folders(root):
            path = conformance.pick_model(directory)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PySD's own deprecation and data warnings
                canonical = conformance.read_canonical(directory)
                columns = list(canonical.columns)
                pending[pool.submit(_pysd, directory, path, columns)] = directory.name
                abstract = translate(path)
                folder = Folder(directory.name, path, not conformance.uses_subscripts(abstract),
                                canonical)
                try:
                    folder.model = compile_model(abstract, path, directory.glob("data.tab"))
                    folder.frames = conformance.simulate_batched(folder.model, columns, 2)
                except UnsupportedFeatureError as error:
                    folder.construct = error.construct
                except Exception as error:  # a failure of this folder, reported by the tests
                    folder.error = f"{type(error).__name__}: {error}"
            folders[directory.name] = folder
        for future in cf.as_completed(pending):
            folder = folders[pending[future]]
            folder.pysd, folder.pysd_error = future.result()
    return folders


def _pysd(directory: Path, path: Path, columns: list[str]):
    """PySD's own run of a folder (in a worker process), or why it failed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return conformance.simulate_pysd(directory, path, columns), ""
    except Exception as error:  # PySD fails two folders of the suite
        return None, f"{type(error).__name__}: {error}"
