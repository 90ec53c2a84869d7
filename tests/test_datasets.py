"""Synthetic panels: simulated in blocks of units, they are the panel one run gives."""

from __future__ import annotations

import numpy as np

from sdfit import datasets
from sdfit.demo import PLANTED


def test_a_panel_simulated_in_blocks_equals_one_run(aging_chain, monkeypatch):
    args = (aging_chain, 300, PLANTED, {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)},
            [2005, 2010])
    whole, planted = datasets.synthetic_panel(*args, noise=0.01, seed=3)
    monkeypatch.setattr(datasets, "SIMULATION_BLOCK", 37)  # 8 full blocks and a short one
    blocks, planted_again = datasets.synthetic_panel(*args, noise=0.01, seed=3)
    assert len(whole.value) == len(blocks.value) == 300 * 3 * 9
    np.testing.assert_array_equal(blocks.value, whole.value)
    np.testing.assert_array_equal(blocks.time, whole.time)
    np.testing.assert_array_equal(blocks.unit, whole.unit)
    assert list(blocks.variables) == list(whole.variables)
    assert planted_again.equals(planted)
