"""sdfit against the PySD Cookbook recipe it replaces, side by side in one run.

(a) the recipe as its notebook does it: PySD ``model.run`` per evaluation, SciPy
    ``minimize(method="L-BFGS-B", x0=[0.05] * 9)`` per county, sequential, on K
    counties sampled from the whole file (``return_columns`` fixed so that the
    residuals are not NaN, the recipe's failure with current PySD);
(b) sdfit on all 3,137 counties with the default backend;
(c) sdfit's in-process backend on the same K counties.

Usage: SDFIT_DATA=../shared/data python benchmarks/vs_recipe.py [--k 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pysd
import scipy.optimize

import sdfit
from sdfit.datasets import fetch
from sdfit.problem import Parameter, Problem

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], initial_time=2000,
                 target_times=[2010], exclude=["dec 1"])
PARAM_NAMES = [f"dec_{i}_loss_rate" for i in range(1, 10)]


def run_recipe(model_path: Path, data: pd.DataFrame) -> tuple[float, np.ndarray]:
    """The notebook's error() and fit(), with the column fix; returns seconds and SSEs."""
    with tempfile.TemporaryDirectory() as tmp:  # PySD writes its .py beside the model
        copy = Path(tmp) / model_path.name
        shutil.copy(model_path, copy)
        model = pysd.read_vensim(str(copy))

        def error(param_vals, measurements):
            predictions = model.run(params=dict(zip(PARAM_NAMES, param_vals, strict=True)),
                                    initial_condition=(2000, measurements["2000"]),
                                    return_timestamps=2010,
                                    return_columns=list(measurements["2010"].index)).loc[2010]
            errors = predictions - measurements["2010"]
            return sum(errors.values[1:] ** 2)  # ignore first decade: no birth info

        started = time.perf_counter()
        sse = [scipy.optimize.minimize(error, args=row, x0=[0.05] * 9, method="L-BFGS-B").fun
               for _, row in data.iterrows()]
        return time.perf_counter() - started, np.array(sse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10, help="counties for the recipe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # PySD's deprecation noise under pandas 3

    census_path = fetch("us-county-males")
    model_path = census_path.parents[1] / "models" / "Aging_Chain.mdl"
    census = sdfit.read_panel(census_path)
    sample = np.sort(np.random.default_rng(args.seed).choice(len(census), args.k, replace=False))
    notebook = pd.read_csv(census_path, header=[0, 1], skiprows=[2])  # as the notebook reads it

    recipe_seconds, recipe_sse = run_recipe(model_path, notebook.iloc[sample])
    model = sdfit.load_model(model_path)
    everything = sdfit.fit(model, census, RECIPE, progress=False)
    same = sdfit.fit(model, census.take(sample), RECIPE, backend="serial", progress=False)
    sdfit_sse = same.table["sse"].to_numpy()

    rows = [("recipe: PySD + L-BFGS-B, sequential", args.k, recipe_seconds),
            (f"sdfit {everything.run.backend} ({everything.run.workers} "
             f"worker{'s' * (everything.run.workers > 1)}), all counties", len(census),
             everything.run.wall_time),
            ("sdfit serial, the same sampled counties", args.k, same.run.wall_time)]
    per_recipe = recipe_seconds / args.k
    print(f"{'run':<48} {'counties':>8} {'seconds':>9} {'s/county':>11} {'recipe/this':>12}")
    for name, n, seconds in rows:
        print(f"{name:<48} {n:>8} {seconds:>9.3f} {seconds / n:>11.3g} "
              f"{per_recipe / (seconds / n):>12,.0f}")
    print(f"\nall counties: {int(everything.table['success'].sum())} of {len(census)} "
          f"succeeded, largest SSE {everything.table['sse'].max():.3g}")
    print(f"\n{'county (state, county)':<24} {'recipe SSE':>14} {'sdfit SSE':>14}")
    for i, a, b in zip(sample, recipe_sse, sdfit_sse, strict=True):
        print(f"{str(tuple(int(v) for v in census.units[i])):<24} {a:>14.6g} {b:>14.6g}")
    better = int(np.sum(sdfit_sse <= recipe_sse + 1e-6))
    speedup = per_recipe / (everything.run.wall_time / len(census))
    print(f"\nspeedup: {speedup:,.0f} x (per county), fit quality: sdfit SSE <= recipe SSE "
          f"on {better}/{args.k} counties")


if __name__ == "__main__":
    main()
