"""Streaming assembly (issue 15): chunks written into the tables as they arrive, in any
order, give the tables of the in-order assembly and of a fit through an out folder."""

import numpy as np
import pandas as pd

import sdfit
from sdfit.assemble import Assembler, assemble
from sdfit.calibrate import plan_chunks
from sdfit.datasets import aging_chain, synthetic_panel
from sdfit.demo import DEMO_PROBLEM, PLANTED
from sdfit.fitting import Payload, fit_chunk
from sdfit.resolution import resolve_panel
from sdfit.results import FitResult, RunRecord
from sdfit.solvers import Status, default_solver


def _panel(n=23):
    panel, _ = synthetic_panel(aging_chain(), n, PLANTED | {"dec 1 loss rate": (0.05, 0.05)},
                               {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)}, [2010],
                               seed=5)
    return panel


def test_chunks_in_any_order_give_the_in_order_tables():
    resolved, data, panel, dropped = resolve_panel(DEMO_PROBLEM, aging_chain(), _panel())
    payload = Payload(resolved, default_solver("batched"))
    chunks = [(int(rows[0]), fit_chunk(payload, data.take(rows)))
              for rows in plan_chunks(len(data), 5, 1)]
    run = RunRecord(model="", data="", problem=resolved.describe())
    ordered = assemble(resolved, panel, data, [c for _, c in chunks], dropped, run)
    assembler = Assembler(resolved, panel, data)
    for first, chunk in reversed(chunks):
        assembler.add(first, chunk)
    shuffled = assembler.result(dropped, run)
    pd.testing.assert_frame_equal(shuffled.table, ordered.table)
    pd.testing.assert_frame_equal(shuffled.targets, ordered.targets)
    assert shuffled.run.identifiability == ordered.run.identifiability
    assert list(shuffled.table["message"]) == [Status(s).message
                                               for s in shuffled.table["status"]]


def test_in_memory_fit_equals_the_fit_through_an_out_folder(tmp_path):
    panel = _panel()
    options = dict(backend="serial", chunk_size=4, progress=False)
    memory = sdfit.fit(aging_chain(), panel, DEMO_PROBLEM, **options)
    folder = sdfit.fit(aging_chain(), panel, DEMO_PROBLEM, out=tmp_path / "out", **options)
    pd.testing.assert_frame_equal(memory.table, folder.table)
    pd.testing.assert_frame_equal(memory.targets, folder.targets)
    written = FitResult.read(tmp_path / "out")
    np.testing.assert_array_equal(written.table[memory.parameters].to_numpy(),
                                  memory.table[memory.parameters].to_numpy())


def test_targets_are_compact():
    """The message of each unit and the variable of each target row are categoricals (a
    million units would otherwise hold tens of millions of strings), and the targets of a
    dense panel share the unit data's arrays."""
    result = sdfit.fit(aging_chain(), _panel(), DEMO_PROBLEM, backend="serial", progress=False)
    message, variable = result.table["message"], result.targets["variable"]
    assert list(message.cat.categories) == [s.message for s in sorted(Status)]
    assert list(variable.cat.categories) == result.run.problem["targets"]
    assert message.cat.codes.dtype == variable.cat.codes.dtype == np.int8
    assert (result.targets.groupby("variable", observed=True).size() == len(_panel())).all()
    # every unit has every target: the observations are the unit data's, not a copy
    data = result.context[1]
    assert np.shares_memory(result.targets["observed"].to_numpy(), data.obs_value)
    assert np.shares_memory(result.targets["time"].to_numpy(), data.obs_time)


def test_unit_data_take_of_consecutive_rows_is_a_view_of_the_same_values():
    _, data, _, _ = resolve_panel(DEMO_PROBLEM, aging_chain(), _panel())
    for rows in (np.arange(3, 9), np.array([3, 5, 8]), np.arange(23) % 2 == 0,
                 np.array([-2, -1]), np.arange(0)):
        part = data.take(rows)
        for name in ("initial", "obs_value", "obs_mask", "streams"):
            np.testing.assert_array_equal(getattr(part, name), getattr(data, name)[rows])
    assert np.shares_memory(data.take(np.arange(3, 9)).obs_value, data.obs_value)
    assert not np.shares_memory(data.take(np.array([3, 5, 8])).obs_value, data.obs_value)
