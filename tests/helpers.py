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
