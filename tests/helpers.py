"""Helpers shared by several test modules (imported as ``helpers``; pytest puts this
folder on the path)."""

from __future__ import annotations

import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

import sdfit
from sdfit import conformance
from sdfit.model.translate import translate
from sdfit.rundir import partial_folder


def wait_for_chunks(out: Path, count: int, run: subprocess.Popen, timeout: float = 120) -> int:
    """Wait until ``count`` chunk files are saved in ``out``; return how many there are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        done = len(list((partial_folder(out) / "chunks").glob("chunk-*.npz")))
        if done >= count:
            return done
        time.sleep(0.002)
    raise AssertionError(f"no {count} chunks saved in time:\n{run.communicate()[1]}")


def compare_suite_with_pysd(suite: Path, subscripted: bool, skip: tuple[str, ...] = ()) -> int:
    """Run every folder of the test-models suite that uses subscripts (or none) through
    the batched engine and through PySD itself, and require the same numbers variable by
    variable (not only within Vensim's 5 %).  Returns the number of folders compared."""
    checked = 0
    for folder in conformance.suite_folders(suite):
        path = conformance.pick_model(folder)
        abstract = translate(path)
        if conformance.uses_subscripts(abstract) != subscripted or folder.name in skip:
            continue
        columns = list(conformance.read_canonical(folder).columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PySD's own deprecation and data warnings
            model = sdfit.model.compile_model(abstract, path, folder.glob("data.tab"))
            ours = conformance.simulate_batched(model, columns, batch_size=2)[0]
            expected = conformance.simulate_pysd(folder, path, columns)
        assert list(ours.index) == list(expected.index), folder.name
        np.testing.assert_allclose(ours.to_numpy(float), expected[ours.columns].to_numpy(float),
                                   rtol=1e-12, atol=0, err_msg=folder.name)
        checked += 1
    return checked
