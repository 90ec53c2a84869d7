"""BatchModel.run: its arguments checked in one sentence naming the value at fault; short
reprs for notebooks; the outputs of every unit as one tidy frame."""

from __future__ import annotations

import numpy as np
import pytest

import sdfit
from sdfit import ModelError


@pytest.fixture(scope="module")
def chain():
    return sdfit.load_model(sdfit.datasets.aging_chain_path())


@pytest.mark.parametrize("call, message", [
    (lambda m: m.run(-1), "batch size of aging_chain.run must be a whole number of units "
                          ">= 1; got -1"),
    (lambda m: m.run(2.5), "got 2.5"),
    (lambda m: m.run(3, params={"dec 1 loss rate": [0.1, 0.2]}),
     r"value given for 'dec 1 loss rate' has shape \(2,\); give a number or one value per "
     r"unit \(3\)"),
    (lambda m: m.run(3, initial={"dec 1": [1, 2, 3, 4]}), r"'dec 1' has shape \(4,\)"),
    (lambda m: m.run(2, params={"dec 1 loss rate": "x"}), "is not a number"),
])
def test_bad_arguments_are_one_sentence(chain, call, message):
    with pytest.raises(ModelError, match=message):
        call(chain)


def test_short_reprs_and_a_tidy_frame_of_every_unit(chain):
    assert repr(chain) == ("BatchModel('aging_chain': 4 controls, 11 constants, 9 stocks, "
                           "17 auxiliaries; euler)")
    sim = chain.run(3, params={"dec 1 loss rate": [0.01, 0.02, 0.03]},
                    return_columns=["dec 1", "dec 2"])
    assert repr(sim) == "Simulation(3 units x 81 times from 2000 to 2010: dec 1, dec 2)"
    assert len(repr(chain.run(3))) < 200  # every variable recorded: still one line
    tidy = sim.to_frame()
    assert list(tidy.columns) == ["unit", "time", "dec 1", "dec 2"] and len(tidy) == 3 * 81
    np.testing.assert_array_equal(tidy.loc[tidy["unit"] == 2, "dec 1"], sim.values["dec 1"][2])
    assert sim.to_frame(2).index.name == "time"
