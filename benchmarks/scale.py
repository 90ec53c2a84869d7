"""sdfit at scale: synthetic aging-chain panels of growing size, fitted with the default
backend.  Prints wall time, units per second and peak RSS (whole process tree) per size,
and the least-squares slope of time against units.

Each size runs in a fresh interpreter so that peak memory is its own (PSS of the whole
process tree, sampled by benchmarks/_measure.py).

Usage: python benchmarks/scale.py [--sizes 1000 10000 100000] [--backend processes]
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
    error = np.abs(result.params()[list(PLANTED)].to_numpy() - planted[list(PLANTED)].to_numpy())
    return {"units": n_units, "wall": wall, "fit": result.run.wall_time,
            "failed": result.n_failed, "max_error": float(error.max()),
            "workers": result.run.workers, "nfev": float(result.table["nfev"].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--backend", default="processes")
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
    print(f"{'units':>8} {'fit s':>8} {'units/s':>9} {'peak MiB':>9} {'nfev/unit':>10} "
          f"{'failed':>7} {'max |rate error|':>17}")
    for r in rows:
        print(f"{r['units']:>8} {r['fit']:>8.2f} {r['units'] / r['fit']:>9,.0f} "
              f"{r['mib']:>9,.0f} {r['nfev']:>10.1f} {r['failed']:>7} "
              f"{r['max_error']:>17.2e}")
    units = np.array([r["units"] for r in rows], float)
    seconds = np.array([r["fit"] for r in rows])
    slope, intercept = np.polyfit(units, seconds, 1)
    workers = rows[0]["workers"]
    print(f"\nfit time = {intercept:.3f} s + {slope * 1e6:.1f} us x units "
          f"({workers} worker{'s' * (workers > 1)}, backend {args.backend}); "
          f"time per unit at the largest size {seconds[-1] / units[-1] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
