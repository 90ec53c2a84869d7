"""Checkpoints: chunks saved as they finish, resumed after a crash, never mixed across runs,
never trusted unless their checksum is the one recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdfit import SdfitError, SpecError, __version__
from sdfit.backends.local import SerialBackend
from sdfit.calibrate import fit
from sdfit.checkpoint import Checkpoint, run_fingerprint
from sdfit.data import from_wide
from sdfit.datasets import aging_chain_path
from sdfit.exceptions import ResultsFolderWarning
from sdfit.files import read_csv
from sdfit.model import load_model
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.results import FitResult
from sdfit.rundir import partial_folder
from sdfit.solvers import LevenbergMarquardt

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])


PRINTS = {"model": "m", "data": "d", "problem": "p", "chunking": "c"}


def chunks_of(out):
    return partial_folder(out) / "chunks"


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
    pd.testing.assert_frame_equal(FitResult.read(tmp_path).table, in_memory.table)
    assert not partial_folder(tmp_path).exists()  # chunks removed once the results are written


def test_resume_runs_only_the_chunks_not_saved(aging_chain, subset, tmp_path):
    crashing = CountingBackend(crash_after=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(aging_chain, subset, RECIPE, backend=crashing, chunk_size=8, progress=False,
            out=tmp_path)
    assert sorted(p.name for p in chunks_of(tmp_path).glob("chunk-*")) == [
        "chunk-000000.npz", "chunk-000001.npz", "chunk-000002.npz"]
    assert not (tmp_path / "params.csv").exists()
    counting = CountingBackend()
    # without chunk_size: the interrupted run's chunking is kept
    resumed = fit(aging_chain, subset, RECIPE, backend=counting, progress=False, out=tmp_path,
                  resume=True)
    assert counting.ran == [3, 4, 5, 6, 7] and resumed.run.resumed_chunks == 3
    whole = fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=8, progress=False)
    pd.testing.assert_frame_equal(FitResult.read(tmp_path).table, whole.table)


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
    assert len(list(chunks_of(tmp_path).glob("chunk-*"))) == 2  # left as they were


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
    store = Checkpoint(tmp_path / "chunks", "out")
    store.begin(PRINTS, 5, 1, resume=False)
    store.save(0, arrays)
    again = store.load(0)
    for name, value in arrays.items():
        assert again[name].tobytes() == value.tobytes(), name
    assert not list(tmp_path.rglob(".*.tmp"))


def test_damaged_copied_and_stray_chunks_are_fitted_again_never_trusted(aging_chain, subset,
                                                                        tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(aging_chain, subset, RECIPE, backend=CountingBackend(crash_after=4), chunk_size=8,
            progress=False, out=tmp_path)
    chunks = chunks_of(tmp_path)
    truncated = chunks / "chunk-000001.npz"
    truncated.write_bytes(truncated.read_bytes()[:300])
    shutil.copy(chunks / "chunk-000000.npz", chunks / "chunk-000002.npz")  # copied over
    shutil.copy(chunks / "chunk-000003.npz", chunks / "chunk-999999.npz")
    shutil.copy(chunks / "chunk-000003.npz", chunks / "chunk-copy.npz")
    counting = CountingBackend()
    with pytest.warns(ResultsFolderWarning) as caught:
        resumed = fit(aging_chain, subset, RECIPE, backend=counting, progress=False,
                      out=tmp_path, resume=True)
    said = "\n".join(str(w.message) for w in caught)
    assert sorted(counting.ran) == [1, 2, 4, 5, 6, 7] and resumed.run.resumed_chunks == 2
    assert f"'{truncated}' is damaged (its checksum differs" in said
    assert "chunk-000002.npz' is damaged" in said
    assert "chunk-999999.npz' is beyond the 8 chunks of this run; it is ignored" in said
    assert "chunk-copy.npz' is not a chunk file sdfit writes; it is ignored" in said
    assert "chunk-copy.npz' in place: sdfit cannot show that it wrote it" in said
    whole = fit(aging_chain, subset, RECIPE, backend="serial", chunk_size=8, progress=False)
    pd.testing.assert_frame_equal(FitResult.read(tmp_path).table, whole.table)
    # what sdfit wrote is gone; the stray files it cannot show it wrote (a copy under
    # another chunk's name included) are not
    assert sorted(p.name for p in partial_folder(tmp_path).rglob("*")) == [
        "chunk-999999.npz", "chunk-copy.npz", "chunks"]


def write_manifest(folder, header: dict | str, records=()):
    folder.mkdir(parents=True, exist_ok=True)
    text = header if isinstance(header, str) else json.dumps(header)
    (folder / "manifest.json").write_text(
        "\n".join([text, *(json.dumps(r) for r in records)]) + "\n")


GOOD = {"format": 2, "sdfit": __version__, "fingerprint": PRINTS, "chunk_size": 5}


@pytest.mark.parametrize("header, says", [
    ("{not json", "is not a checkpoint manifest"),
    ("", "is not a checkpoint manifest"),
    ({**GOOD, "format": 1}, "is in format 1, not 2"),
    ({k: v for k, v in GOOD.items() if k != "chunk_size"}, "has no valid 'chunk_size'"),
    ({**GOOD, "chunk_size": 0}, "says chunk_size = 0, not a positive whole number"),
    ({**GOOD, "chunk_size": True}, "says chunk_size = True, not a positive whole number"),
    ({**GOOD, "fingerprint": ["m"]}, "has no valid 'fingerprint'"),
    ({**GOOD, "fingerprint": {"model": 3}}, "has no valid 'fingerprint'"),
    ({k: v for k, v in GOOD.items() if k != "sdfit"}, "has no valid 'sdfit'"),
])
def test_an_unreadable_manifest_means_every_chunk_is_fitted_again(tmp_path, header, says):
    folder = tmp_path / "chunks"
    write_manifest(folder, header)
    (folder / "chunk-000000.npz").write_bytes(b"saved by a run nobody can vouch for")
    store = Checkpoint(folder, "out")
    assert store.chunk_size() is None  # a resume then plans its chunks afresh
    with pytest.warns(ResultsFolderWarning, match="every chunk is fitted again") as caught:
        assert store.begin(PRINTS, 5, 3, resume=True) == set()
    assert f"Checkpoint manifest '{folder / 'manifest.json'}' {says}" in str(caught[0].message)
    # started over; the chunk and manifest nobody can vouch for are set aside, not deleted
    # nor overwritten
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk-000000.npz.unverified", "manifest.json", "manifest.json.unverified"]
    said = "\n".join(str(w.message) for w in caught)
    assert "chunk-000000.npz.unverified' in place: sdfit cannot show that it wrote it" in said
    assert store.read().chunk_size == 5


def test_a_binary_manifest_is_a_warning_too(tmp_path):
    folder = tmp_path / "chunks"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(ResultsFolderWarning, match="cannot be read"):
        assert Checkpoint(folder, "out").begin(PRINTS, 5, 3, resume=True) == set()


def test_resume_with_another_sdfit_version_is_refused(tmp_path):
    folder = tmp_path / "chunks"
    write_manifest(folder, {**GOOD, "sdfit": "0.0.1"})
    (folder / "chunk-000000.npz").write_bytes(b"kept")
    with pytest.raises(SpecError) as refused:
        Checkpoint(folder, "results").begin(PRINTS, 5, 3, resume=True)
    assert str(refused.value) == (
        f"Results folder 'results' holds an interrupted run of sdfit 0.0.1, not of this sdfit "
        f"{__version__}; resume it with sdfit 0.0.1, or run without --resume to start over.")
    assert (folder / "chunk-000000.npz").read_bytes() == b"kept"


def test_a_record_torn_by_a_kill_costs_only_its_chunk(tmp_path):
    store = Checkpoint(tmp_path / "chunks", "out")
    store.begin(PRINTS, 5, 4, resume=False)
    for index in (0, 1):
        store.save(index, {"x": np.full(5, index)})
    with open(store.manifest_path, "a") as manifest:
        manifest.write('{"chunk": 2, "sha2')  # the kill came mid-line
    resumed = Checkpoint(tmp_path / "chunks", "out")
    assert resumed.begin(PRINTS, 5, 4, resume=True) == {0, 1}
    resumed.save(2, {"x": np.full(5, 2)})
    assert set(resumed.read().chunks) == {0, 1, 2}
    assert Checkpoint(tmp_path / "chunks", "out").begin(PRINTS, 5, 4, resume=True) == {0, 1, 2}


def test_a_chunk_changed_after_it_was_verified_is_not_loaded(tmp_path):
    store = Checkpoint(tmp_path / "chunks", "out")
    store.begin(PRINTS, 5, 2, resume=False)
    store.save(0, {"x": np.arange(5.0)})
    store.save(1, {"x": np.arange(5.0) + 1})
    shutil.copy(store.path(1), store.path(0))
    with pytest.raises(SdfitError, match=r"chunk-000000.npz' changed while this run was using"):
        store.load(0)
    assert store.load(1)["x"].tolist() == [1, 2, 3, 4, 5]


def test_remove_keeps_what_sdfit_did_not_write(tmp_path):
    store = Checkpoint(tmp_path / "chunks", "out")
    store.begin(PRINTS, 5, 2, resume=False)
    store.save(0, {"x": np.arange(5.0)})
    (store.folder / "notes.txt").write_text("mine")
    assert store.remove() == [store.folder / "notes.txt"]
    assert [p.name for p in store.folder.iterdir()] == ["notes.txt"]
    (store.folder / "notes.txt").unlink()
    store.begin(PRINTS, 5, 2, resume=False)
    assert store.remove() == [] and not store.folder.exists()


def test_remove_deletes_only_chunks_whose_bytes_the_manifest_records(tmp_path):
    """A file named like a chunk, or like a kill's temporary copy of one, is deleted only
    when its sha256 is the one recorded for that chunk: sdfit provably wrote it."""
    store = Checkpoint(tmp_path / "chunks", "out")
    store.begin(PRINTS, 5, 3, resume=False)
    store.save(0, {"x": np.arange(5.0)})
    copy = store.folder / ".chunk-000000.npz.k1ll3d.tmp"  # complete, then killed: ours
    copy.write_bytes(store.path(0).read_bytes())
    torn = store.folder / ".chunk-000000.npz.t0rn.tmp"  # half written: not provably ours
    torn.write_bytes(store.path(0).read_bytes()[:100])
    foreign = store.path(2)  # never saved by this run
    foreign.write_bytes(store.path(0).read_bytes())
    assert sorted(store.remove()) == sorted([torn, foreign])
    assert not store.path(0).exists() and not copy.exists()
    assert not store.manifest_path.exists()
    torn.unlink()
    foreign.unlink()
    assert Checkpoint(tmp_path / "chunks", "out").remove() == [] and not store.folder.exists()


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
    paused = [sys.executable, str(Path(__file__).parent / "pausing.py"),
              *command(out, "--chunk-size", "16")[3:]]
    paused[paused.index("processes")] = "pausing"
    run = subprocess.Popen(paused, start_new_session=True, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "SDFIT_PAUSE_BACKEND": "processes",
                                "SDFIT_PAUSE_AFTER": "20"})
    try:
        assert run.stdout.readline() == "paused\n", run.stderr.read()  # 20 chunks saved
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL
    saved = len(list(chunks_of(out).glob("chunk-*.npz")))
    assert saved == 20 and not (out / "params.csv").exists(), saved

    # a folder of another problem is refused, not mixed, and left as it was
    refused = subprocess.run(command(out, "--resume", "--param", "dec * loss rate=0.06"),
                             capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "holds an interrupted run with another problem" in refused.stderr
    assert len(list(chunks_of(out).glob("chunk-*.npz"))) == saved

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
    assert not partial_folder(out).exists()
