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


def wait_for_chunks(out: Path, count: int, run: subprocess.Popen, timeout: float = 120) -> int:
    """Wait until ``count`` chunk files are saved in ``out``; return how many there are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        done = len(list((out / "chunks").glob("chunk-*.npz")))
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
        abstract = sdfit.model.translate(path)
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


def aging_chain_stories(result: sdfit.FitResult, panel: sdfit.Panel,
                        model: sdfit.BatchModel) -> dict:
    """UnitStory of every unit of a fit of the bundled aging chain, by unit key, from a
    real simulation of the model: each unit started from its data at the initial time
    with its fitted (and the problem's fixed) parameters, every stock recorded over the
    whole run.  Observations: every data value of a stock; ``used`` where it is a
    target of the fit (the other times and variables are initial values or excluded)."""
    import pandas as pd

    from sdfit.figures import UnitStory, unit_keys

    problem = result.info["problem"]
    stocks, t0 = problem["stocks"], problem["initial_time"]
    targets = {(float(t), v) for t, v in problem["targets"]}
    rows = panel.units.get_indexer(pd.MultiIndex.from_frame(result.table[result.unit_columns]))
    frame = panel.frame.iloc[rows]
    params = {p: result.table[p].to_numpy(float) for p in result.parameters}
    params.update(problem["fixed"])
    initial = {s: frame[(t0, panel.variable(s))].to_numpy(float) for s in stocks}
    sim = model.run(len(frame), params=params, initial=initial, return_columns=stocks)
    times = np.asarray(sim.times, dtype=float)
    stories = {}
    for u, key in enumerate(unit_keys(result.table, result.unit_columns)):
        row = result.table.iloc[u]
        observations = pd.DataFrame(
            [(t, s, frame[(t, panel.variable(s))].iloc[u],
              float(np.interp(t, times, sim.values[s][u])), (t, s) in targets)
             for s in stocks for t in panel.times],
            columns=["time", "variable", "observed", "fitted", "used"])
        parameters = pd.DataFrame(
            {"value": [row[p] for p in result.parameters],
             "ci_low": [row.get(f"{p}_ci_low", np.nan) for p in result.parameters],
             "ci_high": [row.get(f"{p}_ci_high", np.nan) for p in result.parameters],
             "identifiable": [bool(row.get(f"{p}_identifiable", True))
                              for p in result.parameters]},
            index=result.parameters)
        stories[key] = UnitStory(key, times, {s: sim.values[s][u] for s in stocks},
                                 observations, parameters, float(row["sse"]))
    return stories
