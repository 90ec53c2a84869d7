"""The scales a pooled population is normal on."""

from __future__ import annotations

import numpy as np
import pytest

from sdfit.exceptions import SpecError
from sdfit.solvers.transforms import Transforms


def test_round_trip_and_bounds():
    kinds = Transforms(("none", "log", "logit"), ["a", "b", "c"])
    x = np.array([[-3.0, 0.2, 0.9], [5.0, 40.0, 0.01]])
    phi = kinds.forward(x)
    np.testing.assert_allclose(phi[:, 1], np.log(x[:, 1]))
    np.testing.assert_allclose(phi[:, 2], np.log(x[:, 2] / (1 - x[:, 2])))
    np.testing.assert_allclose(kinds.inverse(phi), x, rtol=1e-14)
    lo, hi = kinds.forward_bounds(np.array([-1.0, -5.0, 0.0]), np.array([1.0, 10.0, 0.5]))
    np.testing.assert_allclose(lo, [-1.0, -np.inf, -np.inf])
    np.testing.assert_allclose(hi, [1.0, np.log(10.0), 0.0])


def test_values_outside_the_scale_are_refused():
    kinds = Transforms(("logit",), ["share"])
    with pytest.raises(SpecError, match="'share' is pooled on the logit scale"):
        kinds.check(np.array([[1.5]]))
