"""Public models through PySD and through sdfit's batched engine: which runs, whether they
agree, whether each agrees with the reference output shipped with the model, and how fast.

    python benchmarks/public_models.py [--only FILE ...] [--batch 1000]

Every file of ``tests/models/public/MANIFEST.toml`` is run by PySD (``read_vensim`` or
``read_xmile``, then ``run()``) and by sdfit (``load_model``, then ``run``) in fresh
interpreters (PySD's translator keeps state between files).  Columns of the table:

* ``PySD``, ``sdfit``: ``ok`` or the first words of the error;
* ``=PySD``: ``equal`` when every column both give is equal (differences under 1e-12
  aside), else the largest relative difference; for a file that asks for RK4 (which sdfit
  uses and PySD ignores), also how sdfit's Euler run compares;
* ``ref``: the largest relative difference to the output of Vensim or Stella shipped
  with the model, for each engine that runs (``sdfit/PySD``), over the columns and
  times both have (Vensim writes constants once: they are spread over the times;
  differences under 1e-6, Vensim's single precision, do not count);
* ``PySD ms``, ``sdfit us``: one PySD run, and sdfit's run of a batch of ``--batch``
  units (fewer, ``B``, where recording every variable would take over 2 GB), every
  constant given one value per unit as when fitting, divided by the batch (both the
  best of three), and their ratio.

The summary counts the files tried, run by each engine, equal, run by sdfit only, and
where the engines differ, why: the manifest's ``differs`` is ``"pysd-wrong"`` (its
``note`` names PySD's bug, which ``tests/model/test_beyond_pysd.py`` shows on a
two-line model) or ``"random"`` (each engine draws its own random numbers).
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PUBLIC = Path(__file__).resolve().parents[1] / "tests" / "models" / "public"
#: Differences to PySD count from 1e-12 up; to Vensim's single-precision outputs from 1e-6.
ATOL, REFERENCE_ATOL = 1e-12, 1e-6
TIMEOUT = 600
#: sdfit's batch records at most this many bytes (a long run of a big model gets fewer units).
MEMORY = 2e9


def _best(run, repeats: int = 3) -> tuple[float, object]:
    """The best time of ``repeats`` runs (one when it takes over 2 s) and the result."""
    best, result = np.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
        if best > 2:
            break
    return best, result


def _worker(engine: str, path: Path, out: Path, batch: int) -> None:
    """Run one file with one engine; pickle (frame, seconds per unit-run) or the error."""
    import warnings

    warnings.simplefilter("ignore")
    euler = None
    try:
        if engine == "pysd":
            import shutil

            import pysd

            with tempfile.TemporaryDirectory() as tmp:  # PySD writes beside the model
                copy = Path(tmp) / path.parent.name
                shutil.copytree(path.parent, copy)
                reader = pysd.read_vensim if path.suffix.lower() == ".mdl" else pysd.read_xmile
                model = reader(str(copy / path.name))
                seconds, frame = _best(lambda: (model.run(), model.reload())[0])
        else:
            import sdfit

            model = sdfit.load_model(path)
            frame = model.run(1).to_frame(0)
            # what a run records (every variable at every saved time) within MEMORY bytes
            batch = max(1, min(batch, int(MEMORY // (8 * frame.size))))
            params = {}  # every constant one value per unit, as when fitting
            for name in model.constants:
                if not model.shape(name):
                    params[name] = np.full(batch, model.constant_value(name))
            seconds, _ = _best(lambda: model.run(batch, params=params))
            seconds /= batch
            if model.method != "euler":  # PySD's method too, to compare the engines
                euler = model.run(1, method="euler").to_frame(0)
        result = {"frame": frame, "seconds": seconds, "method": getattr(model, "method", ""),
                  "euler": euler, "batch": batch}
    except Exception as error:  # the table reports it
        result = {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"}
    out.write_bytes(pickle.dumps(result))


def _run(engine: str, path: Path, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.pkl"
        try:
            subprocess.run([sys.executable, __file__, "--worker", engine, str(path), str(out),
                            "--batch", str(batch)], timeout=TIMEOUT, check=False,
                           capture_output=True)
        except subprocess.TimeoutExpired:
            return {"error": f"TimeoutExpired: more than {TIMEOUT} s"}
        if not out.exists():
            return {"error": "the worker died"}
        return pickle.loads(out.read_bytes())


# -- comparisons ---------------------------------------------------------------------------------
def _key(name: str) -> str:
    import re

    name = str(name).strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return re.sub(r"[\s_]+", " ", name).lower().replace(", ", ",")


def _numeric(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    columns = {}
    for name in frame.columns:
        try:
            columns[_key(name)] = frame[name].to_numpy(dtype=float)
        except (TypeError, ValueError):
            continue
    return columns


def difference(a: pd.DataFrame, b: pd.DataFrame, atol: float = ATOL
               ) -> tuple[float, str, int]:
    """Largest relative difference over the common columns at common times (differences
    under ``atol`` do not count), its column, and how many columns were compared."""
    times = np.intersect1d(np.round(a.index.to_numpy(float), 9),
                           np.round(b.index.to_numpy(float), 9))
    a = a.set_axis(np.round(a.index.to_numpy(float), 9)).loc[times]
    b = b.set_axis(np.round(b.index.to_numpy(float), 9)).loc[times]
    x, y = _numeric(a), _numeric(b)
    worst, where, count = 0.0, "", 0
    for name in sorted(set(x) & set(y)):
        u, v = x[name], y[name]
        if len(u) != len(v):
            continue
        count += 1
        both = np.isnan(u) | np.isnan(v) | (u == v)  # NaN: a value the other lacks
        scale = np.maximum(np.abs(u), np.abs(v))
        rel = np.where(both, 0.0, np.abs(u - v) / np.where(scale > 0, scale, 1.0))
        rel = np.where(np.abs(u - v) <= atol, 0.0, rel)
        rel = np.where(np.isnan(rel), np.inf, rel)
        if rel.size and rel.max() > worst:
            worst, where = float(rel.max()), name
    return worst, where, count


def reference(path: Path) -> pd.DataFrame:
    """The Vensim or Stella output shipped with a model (.tab, .csv or Vensim's .dat), its
    constants spread over every time."""
    from sdfit.conformance import _spread_constants, read_output

    return _spread_constants(read_output(path))


# -- the table ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=(), help="files of the manifest")
    parser.add_argument("--batch", type=int, default=1000, help="units of sdfit's batch")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, path, out = args.worker
        _worker(engine, Path(path), Path(out), args.batch)
        return
    manifest = tomllib.loads((PUBLIC / "MANIFEST.toml").read_text())["model"]
    if args.only:
        manifest = [m for m in manifest if m["file"] in args.only]
    header = (f"{'file':<58} {'PySD':<18} {'sdfit':<18} {'=PySD':<17} {'ref sdfit/PySD':<17} "
              f"{'PySD ms':>8} {'sdfit us':>9} {'ratio':>8} {'B':>5}")
    print(header)
    counts = dict(tried=0, pysd=0, sdfit=0, equal=0, only_sdfit=0, pysd_wrong=0, random=0,
                  differ=[])
    for entry in manifest:
        path = PUBLIC / entry["file"]
        pysd_result, ours = _run("pysd", path, args.batch), _run("sdfit", path, args.batch)
        counts["tried"] += 1
        counts["pysd"] += "frame" in pysd_result
        counts["sdfit"] += "frame" in ours
        equal, speed, ref = "", "", ""
        if "frame" in pysd_result and "frame" in ours:
            worst, column, _ = difference(pysd_result["frame"], ours["frame"])
            equal = "equal" if worst == 0 else f"{worst:.1e}"
            if ours.get("euler") is not None:  # the file asks for RK4; PySD runs Euler
                euler = difference(pysd_result["frame"], ours["euler"])[0]
                equal = f"{ours['method']}; Euler " + ("equal" if euler == 0 else f"{euler:.0e}")
            counts["equal"] += worst == 0
            if worst:
                why = entry.get("differs", "")
                counts["pysd_wrong"] += why == "pysd-wrong"
                counts["random"] += why == "random"
                counts["differ"].append((entry["file"], column, worst, why,
                                         entry.get("note", "")))
            ratio = pysd_result["seconds"] / ours["seconds"]
            speed = (f"{1e3 * pysd_result['seconds']:>8.2f} {1e6 * ours['seconds']:>9.2f} "
                     f"{ratio:>8,.0f} {ours['batch']:>5}")
        elif "frame" in ours:
            counts["only_sdfit"] += 1
            speed = f"{'':>8} {1e6 * ours['seconds']:>9.2f} {'':>8} {ours['batch']:>5}"
        if entry.get("reference"):
            try:
                expected = reference(PUBLIC / entry["reference"])
                ref = "/".join(f"{difference(r['frame'], expected, REFERENCE_ATOL)[0]:.0e}"
                               if "frame" in r else "-" for r in (ours, pysd_result))
            except Exception as error:
                ref = f"unreadable ({type(error).__name__})"
        status = [("ok" if "frame" in r else r["error"])[:17] for r in (pysd_result, ours)]
        print(f"{entry['file'][:58]:<58} {status[0]:<18} {status[1]:<18} {equal:<17} {ref:<17} "
              f"{speed}", flush=True)
    print()
    print(f"files tried {counts['tried']}, PySD runs {counts['pysd']}, sdfit runs "
          f"{counts['sdfit']}, sdfit = PySD {counts['equal']}, sdfit right where PySD is "
          f"wrong {counts['pysd_wrong']}, different random draws {counts['random']}, "
          f"sdfit runs that PySD cannot {counts['only_sdfit']}")
    for file, column, worst, why, note in counts["differ"]:
        print(f"  {file}: '{column}' differs by {worst:.2g} ({why or 'NOT EXPLAINED'}): {note}")
    print(json.dumps({k: v for k, v in counts.items() if k != "differ"}))


if __name__ == "__main__":
    main()
