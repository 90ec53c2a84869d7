"""Partial pooling and per-unit intervals, measured (prints tables; asserts nothing).

1. The simulation study: a nonlinear decay, rate and initial amount planted log-normally in
   300 units seen 2-4 times each with noise; over many seeds, how often the population
   mean and SD lie within 1.96 reported standard errors (FOCE and importance sampling),
   and the error of pooled against independent per-unit estimates.
2. Coverage of profile and bootstrap intervals of planted values on 1,000 units.
3. The census job pooled: the eight fitted loss rates of ``us-counties`` drawn from a
   population whose mean depends on the state, counts compared by Poisson deviance with a
   dispersion estimated (quasi-Poisson); its time against an independent fit of the same
   residuals, and a 200-replicate bootstrap of all counties against the same.

Usage::

    SDFIT_DATA=../shared/data python benchmarks/pooling.py [--seeds 100] [--skip-census]

BLAS runs on one thread here (set before NumPy loads): the population step is many small
matrix products, which a multi-threaded BLAS slows down badly on a busy machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from planted import DECAY_MEAN, DECAY_SD, decay_units  # noqa: E402
from sdfit.solvers import LevenbergMarquardt  # noqa: E402
from sdfit.solvers.pooled import fit_pooled  # noqa: E402
from sdfit.solvers.uncertainty import bootstrap_intervals, profile_intervals  # noqa: E402

X0 = [0.2, 80.0]


def study(seeds: int) -> None:
    print(f"Simulation study: {seeds} seeds x 300 units, 2-4 observations each (noise SD 4),"
          f"\nplanted log rate ~ N({DECAY_MEAN[0]:.3f}, {DECAY_SD[0]}²), log initial amount ~ "
          f"N({DECAY_MEAN[1]:.3f}, {DECAY_SD[1]}²)\n")
    names = ["mean log rate", "mean log amount", "SD log rate", "SD log amount"]
    rows = {}
    for method in ("foce", "importance"):
        z, rmse, seconds, nfev = [], [], [], []
        for seed in range(seeds):
            obs, truth = decay_units(seed)
            start = time.perf_counter()
            sol = fit_pooled(obs, X0, [0, 0], np.inf, n_obs=obs.n_obs, pooled=[True, True],
                             transform=["log", "log"], method=method)
            seconds.append(time.perf_counter() - start)
            nfev.append(sol.nfev.mean())
            z.append(np.concatenate([(sol.coef[:, 0] - DECAY_MEAN) / sol.coef_se[:, 0],
                                     (sol.sd - DECAY_SD) / sol.sd_se]))
            if method == "foce":
                own = LevenbergMarquardt().solve(obs, np.broadcast_to(X0, truth.shape),
                                                 [0, 0], np.inf).x
                rmse.append([_rmse(sol.x, truth), _rmse(own, truth),
                             _median_error(sol.x, truth), _median_error(own, truth)])
        z = np.array(z)
        rows[method] = (np.mean(np.abs(z) <= 1.96, axis=0), z.mean(axis=0), np.mean(seconds),
                        np.mean(nfev))
        if method == "foce":
            errors = np.array(rmse).mean(axis=0)
    print(f"{'':26s}" + "".join(f"{n:>17s}" for n in names) + f"{'s/fit':>8s}{'evals/unit':>11s}")
    for method, (inside, bias, seconds, nfev) in rows.items():
        print(f"{method + ' within 1.96 SE':26s}" + "".join(f"{v:17.0%}" for v in inside)
              + f"{seconds:8.2f}{nfev:11.0f}")
        print(f"{method + ' mean z':26s}" + "".join(f"{v:17.2f}" for v in bias))
    print("\n(mean z: (estimate - planted) / reported SE, averaged over seeds)")
    print(f"\nPer-unit error, averaged over seeds    RMSE rate   RMSE amount   median |log error|"
          f" rate, amount\n"
          f"  pooled (FOCE)                      {errors[0, 0]:10.4f}  {errors[0, 1]:12.2f}"
          f"   {errors[2, 0]:10.3f}  {errors[2, 1]:10.3f}\n"
          f"  independent fits                   {errors[1, 0]:10.4f}  {errors[1, 1]:12.3g}"
          f"   {errors[3, 0]:10.3f}  {errors[3, 1]:10.3f}")


def _rmse(x, truth):
    return np.sqrt(np.mean((x - truth) ** 2, axis=0))


def _median_error(x, truth):  # robust to the independent fits that run off
    with np.errstate(divide="ignore"):
        return np.median(np.abs(np.log(x) - np.log(truth)), axis=0)


def coverage() -> None:
    print("\nCoverage of 95 % intervals of the planted values, 1,000 units of the decay "
          "(noise SD 4), each fitted alone:\n")
    print(f"{'observations/unit':>18s}  {'method':22s}{'rate':>8s}{'amount':>8s}{'seconds':>9s}")
    for n in (20, 40):
        obs, truth = decay_units(5, units=1000, low=n, high=n)
        x = LevenbergMarquardt().solve(obs, np.broadcast_to(X0, truth.shape), [0, 0],
                                       np.inf).x
        runs = [("profile", lambda obs=obs, x=x: profile_intervals(obs, x, [0, 0], np.inf,
                                                                   n_obs=obs.n_obs))]
        for kind in ("parametric", "residual"):
            runs.append((f"bootstrap-{kind}", lambda kind=kind, obs=obs, x=x: bootstrap_intervals(
                obs, x, [0, 0], np.inf, n_obs=obs.n_obs, kind=kind, replicates=200, seed=1)))
        for name, run in runs:
            start = time.perf_counter()
            result = run()
            seconds = time.perf_counter() - start
            inside = ((result.lower <= truth) & (truth <= result.upper)).mean(axis=0)
            print(f"{n:18d}  {name:22s}{inside[0]:8.1%}{inside[1]:8.1%}{seconds:9.1f}")


def census() -> None:
    import pandas as pd

    import sdfit
    from sdfit.objective import Objective
    from sdfit.resolution import resolve

    spec = sdfit.load_spec("us-counties")
    model = sdfit.load_model(spec.model)
    panel = spec.data.read()
    problem = dataclasses.replace(spec.problem, likelihood="poisson")
    resolved, data = resolve(problem, model, panel)
    fun = Objective(resolved, data).residuals
    p = resolved.parameters
    units = len(data)
    state = panel.units.get_level_values("state").to_numpy()
    county = panel.units.get_level_values("county").to_numpy()
    states = pd.get_dummies(state, drop_first=True)
    print(f"\nThe census job pooled: {units} counties, {len(p.names)} loss rates pooled "
          f"({p.names[0]} ... {p.names[-1]}; dec 1 loss rate fixed at 0.05 as in "
          f"us-counties),\nmean = intercept + state ({states.shape[1]} indicators), Poisson "
          "deviance residuals with the dispersion estimated.\n")
    x0 = np.broadcast_to(p.x0, (units, len(p.x0)))
    t_own, own = _best_of(3, lambda: LevenbergMarquardt().solve(fun, x0, p.lower, p.upper))
    t_pool, sol = _best_of(3, lambda: fit_pooled(
        fun, p.x0, p.lower, p.upper, n_obs=data.n_obs, pooled=np.ones(8, bool),
        covariates=states.to_numpy(float), names=p.names))
    start = time.perf_counter()
    boot = bootstrap_intervals(fun, own.x, p.lower, p.upper, n_obs=data.n_obs,
                               replicates=200, sigma2=sol.sigma2, seed=0)
    t_boot = time.perf_counter() - start
    print(f"{'run (best of 3; the bootstrap once)':44s}{'seconds':>9s}{'x independent':>15s}"
          f"{'evals/unit':>12s}")
    print(f"{'independent fit (batched LM)':44s}{t_own:9.2f}{1:15.1f}{own.nfev.mean():12.0f}")
    print(f"{'pooled fit (FOCE, ' + str(sol.iterations) + ' rounds)':44s}{t_pool:9.2f}"
          f"{t_pool / t_own:15.1f}{sol.nfev.mean():12.0f}")
    print(f"{'parametric bootstrap, 200 replicates':44s}{t_boot:9.2f}{t_boot / t_own:15.1f}"
          f"{'':>12s}")
    print(f"\nconverged: {sol.converged}; dispersion σ² = {sol.sigma2:.3f} ± {sol.sigma2_se:.3f}"
          f"; objective {sol.objective:.1f}; failed bootstrap replicates "
          f"{int(boot.failed[:, 0].sum())} of {units * 200}\n")
    table = pd.DataFrame({"rate": p.names, "mean (state 1)": sol.coef[:, 0],
                          "SE": sol.coef_se[:, 0], "SD between counties": sol.sd,
                          "SE(SD)": sol.sd_se,
                          "median shrinkage": np.nanmedian(sol.shrinkage, axis=0),
                          "eta-shrinkage": sol.eta_shrinkage})
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    people = data.obs_value.sum(axis=1)
    picks = np.argsort(people)[[0, 1, len(people) // 2, -1]]
    print(f"\n{'county (state, fips)':22s}{'males 2010':>11s}  {'dec 9 loss rate: alone':>24s}"
          f"{'bootstrap 95 %':>20s}  {'pooled':>8s}{'95 %':>18s}{'shrinkage':>10s}")
    for u in picks:
        print(f"{f'{state[u]}, {county[u]}':22s}{people[u]:11.0f}  {own.x[u, 7]:24.4f}"
              f"  [{boot.lower[u, 7]:7.4f}, {boot.upper[u, 7]:7.4f}]  {sol.x[u, 7]:8.4f}"
              f"  [{sol.lower[u, 7]:6.4f}, {sol.upper[u, 7]:6.4f}]{sol.shrinkage[u, 7]:10.3f}")


def _best_of(repeats: int, run):
    """The least wall time of ``repeats`` runs (the machine's load only ever adds), and the
    last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--skip-coverage", action="store_true")
    parser.add_argument("--skip-census", action="store_true")
    args = parser.parse_args()
    if not args.skip_study:
        study(args.seeds)
    if not args.skip_coverage:
        coverage()
    if not args.skip_census:
        census()
