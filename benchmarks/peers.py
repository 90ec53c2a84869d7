"""sdfit against what a skilled user would write by hand, side by side in one run.

All 3,137 counties, the well-posed problem (``us-counties``: eight loss rates per county
from its 2000 and 2010 census counts):

(a) hand-vectorised NumPy (``_peer_numpy.py``): Euler on a (units, 9) array with
    forward-mode tangents, one batched Levenberg–Marquardt, one process;
(b) hand-written Numba (``_peer_numba.py``): the whole per-county fit (Euler with
    tangents, LM, Cholesky) compiled, counties in ``prange`` over every core;
(c) ``sdfit.fit`` of ``sdfit.load_spec("us-counties")`` with the serial and processes
    backends, the whole call (problem resolved, diagnostics, tables) and its chunks alone;
    sdfit starts from a cold user cache, so its first call compiles (reported apart).

Every method is checked to reach the same optimum as sdfit (per county, the SSE within
1e-9 of the larger SSE plus 1e-12 of the data's own sum of squares).  Methods run in turn,
``--repeat`` rounds, so that a busy machine slows them alike, each ``--calls`` times in a
row per round (the first call of a round finds the caches and threads the method before
it left: with ``--calls 1`` that is all it measures); min and median of all calls are
printed.
Last, the whole command ``sdfit fit us-counties --out DIR --no-figures --quiet`` is run in
fresh interpreters: cold (an empty user cache: translation and kernel compile) and warm.

Usage: SDFIT_DATA=../shared/data python benchmarks/peers.py [--repeat 7] [--calls 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import sdfit
from sdfit import native
from sdfit.datasets import fetch

sys.path.insert(0, str(Path(__file__).parent))
import _peer_numba  # noqa: E402
import _peer_numpy  # noqa: E402


def census_arrays() -> tuple[np.ndarray, np.ndarray]:
    """2000 and 2010 counts (N, 9), as a user reads the census file."""
    table = np.loadtxt(fetch("us-county-males"), delimiter=",", skiprows=3)
    return table[:, 2:11], table[:, 11:20]


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def whole_command(cache: Path) -> float:
    """Seconds of ``sdfit fit us-counties`` in a fresh interpreter with this user cache."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sdfit.cli", "fit", "us-counties", "--out",
                        str(Path(out) / "run"), "--no-figures", "--quiet"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="calls in a row per round")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # PySD's deprecation noise; identifiability is known

    stocks, counts = census_arrays()
    cache = tempfile.TemporaryDirectory()  # a cold user cache: sdfit's first run, compile included
    os.environ["XDG_CACHE_HOME"] = cache.name
    spec = sdfit.load_spec("us-counties")
    load_seconds, model = timed(lambda: sdfit.load_model(spec.model))
    panel = spec.data.read()

    def run_sdfit(backend):
        return lambda: sdfit.fit(model, panel, spec.problem, backend=backend, progress=False)

    methods = {  # sdfit serial first: its first call compiles, in this process
        "sdfit.fit(), serial": run_sdfit("serial"),
        "sdfit.fit(), processes": run_sdfit("processes"),
        "Numba by hand: per-county LM in prange": lambda: _peer_numba.fit(stocks, counts),
        "NumPy by hand: batched LM, one process": lambda: _peer_numpy.fit(stocks, counts),
    }
    first = {name: timed(method)[0] for name, method in methods.items()}  # JIT, compile
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    inner: dict[str, list[float]] = {name: [] for name in methods}  # sdfit: chunks only
    results = {}
    for _ in range(args.repeat):
        for name, method in methods.items():
            for _ in range(args.calls):
                elapsed, results[name] = timed(method)
                seconds[name].append(elapsed)
                if name.startswith("sdfit"):
                    inner[name].append(results[name].run.wall_time)

    table = results["sdfit.fit(), processes"].table
    sse = table["sse"].to_numpy()
    scale = np.sum(counts[:, 1:] ** 2, axis=1)
    rate_names = [f"dec {k} loss rate" for k in range(2, 10)]
    identifiable = table["rank"].to_numpy() == len(rate_names)
    print(f"{'method (3,137 counties)':<42} {'min s':>7} {'median s':>9} {'first s':>8} "
          f"{'chunks s':>9} {'same SSE':>9} {'max |rate diff|':>16}")
    for name in methods:
        result = results[name]
        if name.startswith("sdfit"):
            x, other = result.table[rate_names].to_numpy(), result.table["sse"].to_numpy()
        else:
            x, other = result
        same = np.abs(other - sse) <= 1e-9 * np.maximum(other, sse) + 1e-12 * scale
        diff = np.max(np.abs(x - table[rate_names].to_numpy())[identifiable])
        chunks = f"{min(inner[name]):>9.3f}" if inner[name] else f"{'':>9}"
        print(f"{name:<42} {min(seconds[name]):>7.3f} {statistics.median(seconds[name]):>9.3f} "
              f"{first[name]:>8.2f} {chunks} {int(same.sum()):>9} {diff:>16.2e}")
    print(f"\n(first: the first call, with Numba's JIT or load and sdfit's C compile of "
          f"{native.compile_seconds:.2f} s; sdfit's model load took {load_seconds:.2f} s; chunks: "
          "sdfit's fit proper, without resolving the problem, diagnostics and tables)")

    best = min(min(seconds["sdfit.fit(), processes"]), min(seconds["sdfit.fit(), serial"]))
    r1 = best / min(seconds["Numba by hand: per-county LM in prange"])
    r2 = best / min(seconds["NumPy by hand: batched LM, one process"])
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    sdfit_median = min(medians["sdfit.fit(), processes"], medians["sdfit.fit(), serial"])
    print(f"of the medians: sdfit/numba "
          f"{sdfit_median / medians['Numba by hand: per-county LM in prange']:.2f} x, "
          f"sdfit/numpy {sdfit_median / medians['NumPy by hand: batched LM, one process']:.2f} x")
    with tempfile.TemporaryDirectory() as fresh:
        cold = whole_command(Path(fresh))
        warm = min(whole_command(Path(fresh)) for _ in range(3))
    print(f"sdfit/numba: {r1:.2f} x, sdfit/numpy: {r2:.2f} x, whole command: {warm:.2f} s "
          f"(compile: {cold - warm:.2f} s)")


if __name__ == "__main__":
    main()
