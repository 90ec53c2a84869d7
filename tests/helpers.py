"""Helpers shared by several test modules (imported as ``helpers``; pytest puts this
folder on the path)."""

from __future__ import annotations

import numpy as np


def compare_suite_with_pysd(test_models: dict, subscripted: bool,
                            skip: tuple[str, ...] = ()) -> int:
    """Every folder of the test-models suite that uses subscripts (or none), run by the
    batched engine and by PySD itself (once per session: tests/suite.py): the same numbers
    variable by variable, not only within Vensim's 5 %.  Returns the folders compared."""
    checked = 0
    for name, folder in test_models.items():
        if folder.scalar == subscripted or name in skip:
            continue
        assert folder.frames, f"{name}: {folder.error or folder.construct}"
        assert folder.pysd is not None, f"{name}: PySD failed: {folder.pysd_error}"
        ours = folder.frames[0]
        assert list(ours.index) == list(folder.pysd.index), name
        np.testing.assert_allclose(ours.to_numpy(float),
                                   folder.pysd[ours.columns].to_numpy(float),
                                   rtol=1e-12, atol=0, err_msg=name)
        checked += 1
    return checked


def story_without_a_curve(b_used: bool):
    """A unit whose variable 'a' is simulated and observed and whose 'b' is observed
    only (no curve), with one parameter 'k': how figures draw what the model lacks."""
    import pandas as pd

    from sdfit.stories import UnitStory

    return UnitStory(
        "unit=1", np.array([0.0, 1.0, 2.0]), {"a": np.array([1.0, 2.0, 3.0])},
        pd.DataFrame({"time": [1.0, 2.0], "variable": ["a", "b"], "observed": [2.1, 5.0],
                      "fitted": [2.0, 4.0], "used": [True, b_used]}),
        pd.DataFrame({"value": [0.5], "ci_low": [0.4], "ci_high": [0.6],
                      "identifiable": [True]}, index=["k"]), 0.1)
