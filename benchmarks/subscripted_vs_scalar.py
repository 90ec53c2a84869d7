"""The aging chain written with nine scalar stocks against one subscripted stock, side by
side in one run: the same US-counties problem (us-counties.toml and
us-counties-subscripted.toml), the time of one batched model evaluation at several
batch sizes, NumPy statements per Euler step, the whole fit, and the largest difference
between the two fits' parameters.

Usage: SDFIT_DATA=../shared/data python benchmarks/subscripted_vs_scalar.py
       [--backend serial|processes] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import sdfit
from sdfit.objective import Objective
from sdfit.resolution import resolve
from sdfit.spec import find_spec, load_spec

SPECS = {"scalar": "us-counties", "subscripted": "us-counties-subscripted"}
BATCHES = (1, 16, 128, 1024, 4096)


def evaluation_ms(task, data, batch: int) -> float:
    """Milliseconds of one model evaluation of ``batch`` units (best of a few)."""
    x = np.tile(task.parameters.x0, (batch, 1))
    objective = Objective(task, data)
    units = np.arange(batch) % len(data)
    objective.outputs(x, units)
    repeats = max(3, 1000 // batch)
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            objective.outputs(x, units)
        best = min(best, (time.perf_counter() - started) / repeats)
    return best * 1e3


def statements_per_step(model) -> int:
    """Statements of the generated Euler loop (auxiliaries and state updates)."""
    static, _, dynamic = model.schedule
    return len(dynamic) + sum(s.update.expr != s.ident for s in model.states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="processes")
    parser.add_argument("--repeats", type=int, default=3, help="fits per formulation")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows, tables = {}, {}
    for kind, name in SPECS.items():
        spec = load_spec(find_spec(name))
        panel = spec.data.read()
        model = sdfit.load_model(spec.model)
        task, data = resolve(spec.problem, model, panel.head(1024))
        evaluations = [evaluation_ms(task, data, b) for b in BATCHES]
        fits = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = sdfit.fit(model, panel, spec.problem, backend=args.backend,
                               progress=False)
            fits.append(time.perf_counter() - started)
        rows[kind] = (statements_per_step(model), evaluations, min(fits))
        tables[kind] = result.table
    header = "".join(f"  B={b} ms".rjust(12) for b in BATCHES)
    print(f"{'formulation':<13}{'stmts/step':>11}{header}  fit s ({args.backend}, "
          f"{len(tables['scalar'])} units)")
    for kind, (statements, evaluations, fit) in rows.items():
        cells = "".join(f"{e:12.3f}" for e in evaluations)
        print(f"{kind:<13}{statements:>11}{cells}  {fit:.3f}")
    ratio = [s / t for s, t in zip(rows["scalar"][1], rows["subscripted"][1], strict=True)]
    print(f"{'scalar/subs':<13}{'':>11}" + "".join(f"{r:12.2f}" for r in ratio)
          + f"  {rows['scalar'][2] / rows['subscripted'][2]:.2f}")
    scalar, subscripted = tables["scalar"], tables["subscripted"]
    difference = max(
        np.nanmax(np.abs(scalar[f"dec {k} loss rate"].to_numpy()
                         - subscripted[f"loss rate[dec {k}]"].to_numpy()))
        for k in range(2, 10))
    print(f"largest difference between the fitted loss rates: {difference:.3g}")


if __name__ == "__main__":
    main()
