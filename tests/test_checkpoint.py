"""Checkpoints: chunks saved as they finish, resumed after a crash, never mixed across runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import wait_for_chunks
from sdfit.backends.local import SerialBackend
from sdfit.calibrate import fit
from sdfit.checkpoint import ChunkStore, run_fingerprint
from sdfit.data import from_wide
from sdfit.datasets import aging_chain_path
from sdfit.files import read_csv
from sdfit.model import load_model
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.solvers import LevenbergMarquardt

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])


@pytest.fixture(scope="module")
def subset(census):
    return census.head(60)


class CountingBackend(SerialBackend):
    """In process; records the chunks it runs and can crash after some of them."""

    def __init__(self, crash_after: int | None = None):
        super().__init__()
        self.crash_after, self.ran = crash_after, []

    def map_unordered(self, func, shared, items):
        for key, item in items:
            if len(self.ran) == self.crash_after:
                raise RuntimeError("simulated crash")
            self.ran.append(key)
            yield key, func(shared, item)


def test_a_fit_with_an_out_folder_equals_one_in_memory(aging_chain, subset, tmp_path):
    in_memory = fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=8, progress=False)
    streamed = fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=8, progress=False,
                   out=tmp_path)
    pd.testing.assert_frame_equal(streamed.table, in_memory.table)
    pd.testing.assert_frame_equal(streamed.targets, in_memory.targets)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "params.csv"), in_memory.table)
    assert not (tmp_path / "chunks").exists()  # removed once the results are written


def test_resume_runs_only_the_chunks_not_saved(aging_chain, subset, tmp_path):
    crashing = CountingBackend(crash_after=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(aging_chain, subset, RECIPE, backend=crashing, chunk_size=8, progress=False,
            out=tmp_path)
    assert sorted(p.name for p in (tmp_path / "chunks").glob("chunk-*")) == [
        "chunk-000000.npz", "chunk-000001.npz", "chunk-000002.npz"]
    assert not (tmp_path / "params.csv").exists()
    counting = CountingBackend()
    # without chunk_size: the interrupted run's chunking is kept
    resumed = fit(aging_chain, subset, RECIPE, backend=counting, progress=False, out=tmp_path,
                  resume=True)
    assert counting.ran == [3, 4, 5, 6, 7] and resumed.run.resumed_chunks == 3
    whole = fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=8, progress=False)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "params.csv"), whole.table)


def test_resume_refuses_chunks_of_another_run(aging_chain, subset, tmp_path):
    with pytest.raises(RuntimeError):
        fit(aging_chain, subset, RECIPE, backend=CountingBackend(crash_after=2), chunk_size=8,
            progress=False, out=tmp_path)
    other = Problem([Parameter("dec * loss rate", x0=0.06)], target_times=[2010],
                    initial_time=2000, exclude=["dec 1"])
    with pytest.raises(Exception, match="holds an interrupted run with another problem"):
        fit(aging_chain, subset, other, backend="serial", progress=False, out=tmp_path,
            resume=True)
    with pytest.raises(Exception, match="with another chunking"):
        fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=9, progress=False,
            out=tmp_path, resume=True)
    assert len(list((tmp_path / "chunks").glob("chunk-*"))) == 2  # left as they were


def test_fingerprint_covers_model_data_problem_and_chunking(aging_chain, subset, tmp_path):
    task, _ = resolve(RECIPE, aging_chain, subset)
    solver = LevenbergMarquardt()
    base = run_fingerprint(task, subset, solver, False, 8, 60)
    assert run_fingerprint(task, subset, solver, False, 8, 60) == base

    copy = tmp_path / "aging_chain.mdl"
    copy.write_text(aging_chain_path().read_text().replace("0.125", "0.0625"))
    frame = subset.frame.copy()
    frame.iloc[4, 4] += 1
    other_model, _ = resolve(RECIPE, load_model(copy), subset)
    changed = {
        "model": run_fingerprint(other_model, subset, solver, False, 8, 60),
        "data": run_fingerprint(task, from_wide(frame, subset.source), solver, False, 8, 60),
        "problem": run_fingerprint(task, subset, LevenbergMarquardt(ftol=1e-9), False, 8, 60),
        "chunking": run_fingerprint(task, subset, solver, False, 16, 60),
    }
    for part, prints in changed.items():
        assert [k for k in base if prints[k] != base[k]] == [part]


def test_chunk_files_round_trip_floats_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)) * 10.0 ** rng.integers(-300, 300, (5, 3))
    x[0, :] = [-0.0, 5e-324, np.nan]
    arrays = {"x": x, "residuals": rng.standard_normal((5, 4)) / 3,
              "jacobian": rng.standard_normal((5, 4, 3)), "sse": rng.random(5),
              "status": np.array([1, 2, 3, 0, -1]), "nfev": np.arange(5)}
    store = ChunkStore(tmp_path)
    store.open({"model": "m", "data": "d", "problem": "p", "chunking": "c"}, 5, resume=False)
    store.save(0, arrays)
    again = store.load(0, 5)
    for name, value in arrays.items():
        assert again[name].tobytes() == value.tobytes(), name
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_midway_then_resume_gives_the_uninterrupted_params(census, tmp_path):
    """SIGKILL a running `sdfit fit` (and its pool workers) midway, resume it, and get
    the very params.csv of a run that was never interrupted."""
    data = tmp_path / "counties.csv"
    census.to_csv(data)

    def command(out, *extra):
        return [sys.executable, "-m", "sdfit.cli", "fit", "us-counties", "--data", str(data),
                "--backend", "processes", "--workers", "2", "--out", str(out), "--quiet",
                "--no-figures", *extra]

    out = tmp_path / "interrupted"
    run = subprocess.Popen(command(out, "--chunk-size", "16"), start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_chunks(out, 20, run)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL
    saved = len(list((out / "chunks").glob("chunk-*.npz")))
    assert 0 < saved < 197 and not (out / "params.csv").exists(), saved

    # a folder of another problem is refused, not mixed, and left as it was
    refused = subprocess.run(command(out, "--resume", "--param", "dec * loss rate=0.06"),
                             capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "holds an interrupted run with another problem" in refused.stderr
    assert len(list((out / "chunks").glob("chunk-*.npz"))) == saved

    resumed = subprocess.run(command(out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    print(f"SIGKILLed after {saved} of 197 chunks were saved; the resumed fit said:\n"
          f"{resumed.stdout}")
    assert f"Resumed an interrupted run: {saved} of 197 chunks were already done." \
        in resumed.stdout

    whole = tmp_path / "uninterrupted"
    subprocess.run(command(whole, "--chunk-size", "16"), check=True, capture_output=True)
    params = read_csv(out / "params.csv")
    assert len(params) == 3137 and not params.duplicated(["state", "county"]).any()
    assert (out / "params.csv").read_bytes() == (whole / "params.csv").read_bytes()
    assert (out / "targets.csv").read_bytes() == (whole / "targets.csv").read_bytes()
    assert not (out / "chunks").exists()
