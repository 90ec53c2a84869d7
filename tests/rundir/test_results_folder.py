"""The results folder: refused when it cannot be used, locked while a run lasts, replaced
as a whole, and never a place where sdfit deletes what it did not write."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sdfit
from sdfit import SdfitError, SpecError
from sdfit.files import sha256
from sdfit.rundir import MARKER, ResultsFolder, partial_folder

PRINTS = {"model": "m", "data": "d", "problem": "p", "chunking": "c"}
SRC = str(Path(sdfit.__file__).parents[1])


def run(out, files: dict[str, str], chunks=(0,)) -> list[Path]:
    """One run into ``out`` writing ``files`` (relative path -> text) as its results."""
    with ResultsFolder(out) as folder:
        folder.begin(PRINTS, 2, 4, resume=False)
        for index in chunks:
            folder.save_chunk(index, {"x": np.arange(2.0) + index})
        for name, text in files.items():
            (folder.staging / name).parent.mkdir(parents=True, exist_ok=True)
            (folder.staging / name).write_text(text)
        return folder.commit()


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the marker) with its text."""
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MARKER}


FIRST = {"params.csv": "a,b\n1,2\n", "targets.csv": "t\n1\n", "figures/histogram.png": "png",
         "report.html": "<html>1</html>"}
MINE = {"notes.txt": "mine", "figures/mine.png": "my figure", "chunks/notes.txt": "also mine",
        "deep/er/x.txt": "x"}


def add(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


# -- a run's results replace the previous run's, and only them ----------------------------
def test_a_first_run_makes_the_folder_with_a_record_of_what_sdfit_wrote(tmp_path):
    out = tmp_path / "nested" / "results"
    written = run(out, FIRST)
    assert written == [out / name for name in sorted(FIRST)]
    assert tree(out) == FIRST
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] and marker["sdfit"] == sdfit.__version__
    assert marker["files"] == {name: sha256(out / name) for name in FIRST}
    assert not partial_folder(out).exists()  # lock, chunks and staging all gone


@pytest.fixture(params=["exchange", "two renames"])
def swap(request, monkeypatch):
    """Both ways of putting the new folder in place: Linux's atomic exchange (required to
    be there on this machine), and the two renames used where it is not."""
    from sdfit import rundir

    calls = []

    def exchange(a, b):
        calls.append((a, b))
        return real(a, b) if request.param == "exchange" else False

    real = rundir._exchange
    monkeypatch.setattr(rundir, "_exchange", exchange)
    yield request.param
    assert calls, "the commit did not swap folders"


def test_a_rerun_replaces_what_sdfit_wrote_and_keeps_everything_else(tmp_path, swap):
    out = tmp_path / "results"
    run(out, FIRST)
    add(out, MINE)
    inode = (out / "notes.txt").stat().st_ino
    second = {"params.csv": "a,b\n3,4\n", "targets.csv": "t\n2\n"}  # --no-figures, no report
    run(out, second)
    # the old figure and report are gone, not left beside the new tables; the user's files
    # are all there, moved (not copied)
    assert tree(out) == {**second, **MINE}
    assert (out / "notes.txt").stat().st_ino == inode
    assert set(json.loads((out / MARKER).read_text())["files"]) == set(second)
    assert not partial_folder(out).exists()


def test_a_result_file_the_user_changed_is_theirs(tmp_path):
    out = tmp_path / "results"
    run(out, FIRST)
    (out / "report.html").write_text("<html>annotated by hand</html>")
    run(out, {"params.csv": "a,b\n3,4\n"})
    assert tree(out) == {"params.csv": "a,b\n3,4\n",
                         "report.html": "<html>annotated by hand</html>"}
    # a new run that needs the name: refused before anything changes; chunks kept
    before = tree(out)
    with pytest.raises(SpecError) as refused:
        run(out, {"params.csv": "a,b\n5,6\n", "report.html": "new"}, chunks=(0, 1))
    assert str(refused.value) == (
        f"'{out / 'report.html'}' was not written by sdfit (or was changed since) and the new "
        "results need its name; move it away and run again with --resume.")
    assert tree(out) == before
    with ResultsFolder(out) as folder:
        assert folder.begin(PRINTS, 2, 4, resume=True) == {0, 1}


def test_a_user_file_where_the_new_results_need_a_folder_is_refused(tmp_path):
    out = tmp_path / "results"
    run(out, {"params.csv": "1"})
    (out / "figures").write_text("a file of mine named figures")
    with pytest.raises(SpecError, match="figures' was not written by sdfit"):
        run(out, {"params.csv": "2", "figures/histogram.png": "png"})
    assert tree(out) == {"params.csv": "1", "figures": "a file of mine named figures"}


def test_a_report_recorded_after_the_commit_is_replaced_by_the_next_run(tmp_path):
    out = tmp_path / "results"
    run(out, {"params.csv": "1"})
    with ResultsFolder(out) as folder:
        (out / "report.html").write_text("report of run 1")
        folder.record(out / "report.html")
    run(out, {"params.csv": "2"})
    assert tree(out) == {"params.csv": "2"}


def test_the_marker_never_leads_sdfit_out_of_the_folder(tmp_path):
    out = tmp_path / "results"
    run(out, {"params.csv": "1"})
    outside = tmp_path / "elsewhere"
    add(outside, {"histogram.png": "png", "secret.txt": "s"})
    (out / "figures").symlink_to(outside, target_is_directory=True)
    marker = json.loads((out / MARKER).read_text())
    digest = sha256(outside / "histogram.png")
    marker["files"].update({"figures/histogram.png": digest, "../elsewhere/secret.txt":
                            sha256(outside / "secret.txt"), "/etc/hostname": digest})
    (out / MARKER).write_text(json.dumps(marker))
    run(out, {"params.csv": "2"})
    assert tree(outside) == {"histogram.png": "png", "secret.txt": "s"}
    assert (out / "figures").is_symlink()  # the user's link, moved into the new folder


def test_a_symlink_to_the_results_folder_stays_a_symlink(tmp_path):
    real = tmp_path / "real"
    run(real, {"params.csv": "1"})
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    run(link, {"params.csv": "2"})
    assert link.is_symlink() and tree(real) == {"params.csv": "2"}


# -- a commit interrupted at any point leaves the folder whole ----------------------------
def test_a_crash_after_the_swap_is_finished_by_the_next_run(tmp_path, monkeypatch):
    out = tmp_path / "results"
    run(out, FIRST)
    add(out, MINE)

    def crash(self, old):
        raise KeyboardInterrupt  # killed right after the swap

    monkeypatch.setattr(ResultsFolder, "_retire", crash)
    with pytest.raises(KeyboardInterrupt):
        run(out, {"params.csv": "2"})
    assert tree(out) == {"params.csv": "2"}  # the new results, whole
    monkeypatch.undo()
    with ResultsFolder(out):
        pass  # the old folder is emptied as the commit would have
    assert tree(out) == {"params.csv": "2", **MINE}
    assert [p.name for p in partial_folder(out).iterdir()] == ["chunks"]  # until a next run


def test_a_crash_between_two_renames_restores_the_previous_results(tmp_path, monkeypatch):
    from sdfit import rundir

    out = tmp_path / "results"
    run(out, FIRST)
    add(out, MINE)
    monkeypatch.setattr(rundir, "_exchange", lambda a, b: False)
    renames = []

    def rename(source, target):
        renames.append(source)
        if len(renames) == 2:
            raise KeyboardInterrupt  # killed between the two renames
        real(source, target)

    real = os.rename
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        run(out, {"params.csv": "2"})
    monkeypatch.undo()
    assert not out.exists()  # the one moment `out` is absent (never a mixture)
    with ResultsFolder(out):
        pass
    assert tree(out) == {**FIRST, **MINE}


def test_an_error_before_the_commit_leaves_the_previous_results_and_the_chunks(tmp_path):
    out = tmp_path / "results"
    run(out, FIRST)
    with pytest.raises(RuntimeError), ResultsFolder(out) as folder:
        folder.begin(PRINTS, 2, 4, resume=False)
        folder.save_chunk(3, {"x": np.ones(2)})
        (folder.staging / "params.csv").write_text("half")
        raise RuntimeError("the fit failed")
    assert tree(out) == FIRST
    assert sorted(p.name for p in partial_folder(out).rglob("*")) == [
        "chunk-000003.npz", "chunks", "manifest.json"]  # no staging, no lock



def test_a_failed_run_deletes_only_a_staging_it_made(tmp_path):
    """A staging folder this run did not create (kept by an earlier run because it held
    files sdfit did not write) is left as it is when the run fails."""
    out = tmp_path / "results"
    run(out, FIRST)
    with pytest.raises(RuntimeError), ResultsFolder(out) as folder:
        kept = folder.partial / "staging"
        kept.mkdir()
        (kept / "notes.txt").write_text("mine")
        assert folder.staging == kept  # used, not made
        raise RuntimeError("the fit failed")
    assert (kept / "notes.txt").read_text() == "mine"
    assert tree(out) == FIRST

# -- the lock -------------------------------------------------------------------------------
def test_a_second_run_into_the_same_folder_is_refused_while_the_first_lasts(tmp_path):
    out = tmp_path / "results"
    with ResultsFolder(out) as first:
        first.begin(PRINTS, 2, 4, resume=False)
        first.save_chunk(0, {"x": np.ones(2)})
        (first.staging / "params.csv").write_text("the first run's")
        with pytest.raises(SpecError) as refused, ResultsFolder(out):
            pass
        assert str(refused.value).startswith(
            f"Results folder '{out}' is in use by another sdfit run (pid {os.getpid()}, "
            "started 20")
        assert first.begin(PRINTS, 2, 4, resume=True) == {0}  # its chunks untouched
        first.commit()
    assert tree(out) == {"params.csv": "the first run's"}  # and its staging
    with ResultsFolder(out):
        pass  # free again


HOLD = """
import sys
from sdfit.rundir import ResultsFolder
with ResultsFolder(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_the_lock_is_held_by_another_process_and_freed_when_it_is_killed(tmp_path):
    out = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(SpecError, match=rf"in use by another sdfit run \(pid {holder.pid},"):
            ResultsFolder(out).__enter__()
    finally:
        holder.kill()
        holder.wait()
    with ResultsFolder(out):  # the kernel dropped the dead holder's lock
        pass
    assert not partial_folder(out).exists()


# -- folders sdfit refuses, in one sentence ------------------------------------------------
@pytest.mark.parametrize("out, says", [
    ("", r"The results folder \(--out\) is empty"),
    ("  ", r"The results folder \(--out\) is empty"),
    (".", "Results folder '.' names no folder of its own"),
    ("..", "Results folder '..' names no folder of its own"),
    ("a/..", "Results folder 'a/..' names no folder of its own"),
    ("/", "Results folder '/' names no folder of its own"),
])
def test_an_out_that_names_no_folder_is_refused(out, says):
    with pytest.raises(SpecError, match=f"^{says}"):
        ResultsFolder(out)


def test_the_current_folder_and_those_holding_it_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (tmp_path, tmp_path.parent, Path("../" + tmp_path.name)):
        with pytest.raises(SpecError, match="is the current folder or holds it"):
            ResultsFolder(out)


def test_a_file_is_no_results_folder_nor_a_place_for_one(tmp_path):
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(SpecError, match=f"^Results folder '{tmp_path}/data.csv' exists and "):
        ResultsFolder(tmp_path / "data.csv")
    with pytest.raises(SpecError) as refused:
        ResultsFolder(tmp_path / "data.csv" / "a" / "results")
    assert str(refused.value) == (f"Results folder '{tmp_path}/data.csv/a/results' cannot be "
                                  f"made: '{tmp_path / 'data.csv'}' is a file, not a folder.")


def test_a_folder_of_the_users_is_never_replaced(tmp_path):
    add(tmp_path / "mine", {"thesis.tex": "x", "b.txt": "y"})
    with pytest.raises(SpecError) as refused:
        ResultsFolder(tmp_path / "mine")
    assert str(refused.value) == (
        f"Results folder '{tmp_path / 'mine'}' holds files sdfit did not write (such as "
        "'b.txt') and no record of its own; give a new or empty folder, so that nothing of "
        "yours is replaced.")
    (tmp_path / "empty").mkdir()
    run(tmp_path / "empty", {"params.csv": "1"})  # an empty folder is fine
    assert tree(tmp_path / "empty") == {"params.csv": "1"}


@pytest.mark.skipif(not os.path.ismount("/proc"), reason="needs /proc mounted")
def test_a_mount_point_is_refused():
    with pytest.raises(SpecError, match="'/proc' is a mount point, which sdfit cannot replace"):
        ResultsFolder("/proc")


NO_PERMISSION = """
import json, os, sys
from pathlib import Path
import numpy as np
from sdfit import SdfitError
from sdfit.rundir import ResultsFolder, partial_folder

base = Path(sys.argv[1])
said = {}
with ResultsFolder(base / "results") as folder:
    folder.begin({"model": "m"}, 2, 4, resume=False)
    folder.save_chunk(0, {"x": np.ones(2)})
    os.chmod(folder.checkpoint.folder, 0o555)  # permission lost in the middle of the run
    try:
        folder.save_chunk(1, {"x": np.ones(2)})
    except SdfitError as error:
        said["chunk"] = str(error)
    os.chmod(folder.checkpoint.folder, 0o755)
(base / "old").mkdir()
os.chmod(base / "old", 0o555)
os.chmod(base, 0o555)
for name in ("new", "old"):
    try:
        ResultsFolder(base / name)
    except SdfitError as error:
        said[name] = str(error)
os.chmod(base, 0o755)
print(json.dumps(said))
"""


def _without_root_powers() -> None:
    """In a child about to run a program: give up root's power to ignore file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), as a normal user has none."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if os.geteuid() == 0 and libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="drops capabilities on Linux")
def test_no_permission_is_one_sentence(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    try:
        done = subprocess.run([sys.executable, "-c", NO_PERMISSION, str(base)], text=True,
                              capture_output=True, env={**os.environ, "PYTHONPATH": SRC},
                              preexec_fn=_without_root_powers)
        assert done.returncode == 0, done.stderr
        said = json.loads(done.stdout)
    finally:
        for folder in (base, base / "old"):
            folder.chmod(0o755)
    chunk = partial_folder(base / "results") / "chunks" / "chunk-000001.npz"
    assert said["chunk"].startswith(
        f"Could not write the results of '{base / 'results'}': permission was denied ('")
    assert said["chunk"].endswith("'). The previous results in "
                                  f"'{base / 'results'}' are untouched and the chunks saved "
                                  "are kept: run again with --resume once fixed.")
    assert str(chunk.parent) in said["chunk"]
    assert said["new"] == (f"Cannot write results folder '{base / 'new'}': no permission to "
                           f"write in '{base}'.")
    assert said["old"] == (f"Cannot write results folder '{base / 'old'}': no permission to "
                           f"write in '{base}'.")


# -- a full disk ----------------------------------------------------------------------------
def test_a_full_disk_while_saving_a_chunk_is_one_sentence(tmp_path, monkeypatch):
    out = tmp_path / "results"
    run(out, FIRST)

    def full(self, data):
        with open(self, "wb") as handle:
            handle.write(data[:10])  # half written, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SdfitError) as raised, ResultsFolder(out) as folder:
        folder.begin(PRINTS, 2, 4, resume=False)
        folder.save_chunk(0, {"x": np.ones(2)})
        monkeypatch.setattr(Path, "write_bytes", full)
        folder.save_chunk(1, {"x": np.ones(2)})
    monkeypatch.undo()
    assert str(raised.value) == (
        f"Could not write the results of '{out}': no space is left on the device. The "
        f"previous results in '{out}' are untouched and the chunks saved are kept: run again "
        "with --resume once fixed.")
    assert tree(out) == FIRST
    chunks = partial_folder(out) / "chunks"
    assert sorted(p.name for p in chunks.iterdir()) == ["chunk-000000.npz", "manifest.json"]
    with ResultsFolder(out) as folder:
        assert folder.begin(PRINTS, 2, 4, resume=True) == {0}


def test_a_full_disk_while_writing_the_results_is_one_sentence(tmp_path):
    out = tmp_path / "results"
    run(out, FIRST)
    with pytest.raises(SdfitError) as raised, ResultsFolder(out) as folder:
        (folder.staging / "params.csv").write_text("half of the new tab")
        raise OSError(errno.ENOSPC, "No space left on device")  # as pandas' to_csv raises it
    assert str(raised.value) == (
        f"Could not write the results of '{out}': no space is left on the device. The "
        f"previous results in '{out}' are untouched.")
    assert tree(out) == FIRST and not partial_folder(out).exists()


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError), ResultsFolder(tmp_path / "results"):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/data.csv")


FULL_DISK = """
import json, os, sys
from pathlib import Path
import numpy as np
from sdfit import SdfitError
from sdfit.rundir import ResultsFolder, partial_folder

disk = Path(sys.argv[1])
out = disk / "results"
said = {}
with ResultsFolder(out) as folder:
    folder.begin({"model": "m"}, 2, 1000, resume=False)
    (folder.staging / "params.csv").write_text("first run")
    folder.commit()
rng = np.random.default_rng(0)
try:
    with ResultsFolder(out) as folder:
        folder.begin({"model": "m"}, 2, 1000, resume=False)
        for index in range(1000):  # 64 kB each, until the disk is full
            folder.save_chunk(index, {"x": rng.random(8192)})
except SdfitError as error:
    said["chunks"] = str(error)
with ResultsFolder(out) as folder:
    said["verified"] = len(folder.begin({"model": "m"}, 2, 1000, resume=True))
try:
    with ResultsFolder(out) as folder:
        (folder.staging / "params.csv").write_bytes(os.urandom(1 << 20))
except SdfitError as error:
    said["results"] = str(error)
said["params"] = (out / "params.csv").read_text()
said["saved"] = len(list((partial_folder(out) / "chunks").glob("chunk-*.npz")))
said["visible"] = sorted(p.relative_to(disk).as_posix() for p in disk.rglob("*")
                         if "chunks" not in p.parts)
print(json.dumps(said))
"""


def test_a_really_full_disk(tmp_path):
    """On a 256 kB tmpfs mounted in a user namespace (where the machine allows it)."""
    unshare = shutil.which("unshare")
    probe = unshare and subprocess.run([unshare, "--user", "--map-root-user", "--mount",
                                        "true"], capture_output=True)
    if not probe or probe.returncode:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" -c "$3" "$1"', "sh", str(disk),
         sys.executable, FULL_DISK], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": SRC})
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    out = disk / "results"
    assert said["chunks"] == (
        f"Could not write the results of '{out}': no space is left on the device. The "
        f"previous results in '{out}' are untouched and the chunks saved are kept: run "
        "again with --resume once fixed.")
    assert said["results"].startswith(f"Could not write the results of '{out}': no space is "
                                      "left on the device")
    assert 0 < said["verified"] == said["saved"] < 1000
    assert said["params"] == "first run"
    # the previous results and the hidden folder with its chunks: nothing half-written
    assert said["visible"] == [".results.sdfit-partial", "results", f"results/{MARKER}",
                               "results/params.csv"]
