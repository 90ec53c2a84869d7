"""sdfit at scale: synthetic aging-chain panels of growing size, fitted with the default
backend.  Prints, per size, the fit's wall time, units per second, the peak memory of the
whole run (panel, fit and result; PSS of the process tree) and that peak per unit, then
the least-squares lines of time and of memory against units (linear in units: issue 15).

Each size runs in a fresh interpreter so that peak memory is its own (sampled by
benchmarks/_measure.py).  The peak includes the benchmark's own panel and planted
parameters, which any caller of ``sdfit.fit`` on an in-memory panel holds too.

Usage: python benchmarks/scale.py [--sizes 10000 100000 1000000] [--backend auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from _measure import run_measured


def one(n_units: int, backend: str) -> dict:
    import sdfit
    from sdfit.datasets import synthetic_panel
    from sdfit.demo import DEMO_PROBLEM, PLANTED

    model = sdfit.datasets.aging_chain()
    panel, planted = synthetic_panel(
        model, n_units, PLANTED | {"dec 1 loss rate": (0.05, 0.05)},
        {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)}, [2010], seed=n_units)
    started = time.perf_counter()
    result = sdfit.fit(model, panel, DEMO_PROBLEM, backend=backend, progress=False)
    wall = time.perf_counter() - started
    # a column at a time: (units, parameters) copies of both tables would be the run's
    # peak, though no part of the fit
    error = max(np.abs(result.table[name].to_numpy() - planted[name].to_numpy()).max()
                for name in PLANTED)
    return {"units": n_units, "wall": wall, "fit": result.run.wall_time,
            "failed": result.n_failed, "max_error": float(error),
            "workers": result.run.workers, "nfev": float(result.table["nfev"].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.backend)))
        return
    rows = []
    for n in args.sizes:
        done = run_measured([sys.executable, __file__, "--one", str(n), "--backend",
                             args.backend])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"mib": done.tree_mib})
    # fit() s: the whole call (resolving, fitting, diagnostics, tables); the fit loop alone
    # (run.wall_time) now includes each chunk's diagnostics, done as the chunk arrives
    print(f"{'units':>9} {'fit() s':>8} {'loop s':>7} {'units/s':>9} {'peak MiB':>9} "
          f"{'bytes/unit':>11} {'nfev/unit':>10} {'failed':>7} {'max |rate error|':>17}")
    for r in rows:
        print(f"{r['units']:>9,} {r['wall']:>8.2f} {r['fit']:>7.2f} "
              f"{r['units'] / r['wall']:>9,.0f} "
              f"{r['mib']:>9,.0f} {r['mib'] * 2**20 / r['units']:>11,.0f} {r['nfev']:>10.1f} "
              f"{r['failed']:>7} {r['max_error']:>17.2e}")
    units = np.array([r["units"] for r in rows], float)
    seconds = np.array([r["wall"] for r in rows])
    mib = np.array([r["mib"] for r in rows])
    if len(rows) > 1:
        slope, intercept = np.polyfit(units, seconds, 1)
        grow, base = np.polyfit(units, mib, 1)
        print(f"\nfit() time = {intercept:.3f} s + {slope * 1e6:.1f} us x units; peak memory = "
              f"{base:,.0f} MiB + {grow * 2**20:,.0f} bytes x units "
              f"({rows[0]['workers']} worker{'s' * (rows[0]['workers'] > 1)}, "
              f"backend {args.backend})")


if __name__ == "__main__":
    main()
