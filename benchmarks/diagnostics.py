"""The identifiability diagnostics of the census fit, timed: ``diagnostics.diagnose`` of the
3,137 Jacobians (8 residuals x 8 parameters) that ``sdfit.fit`` of ``us-counties``
diagnoses, compiled on one thread and on every core, and NumPy's reference
(``np.linalg.svd``, what ``SDFIT_NATIVE=0`` runs), in turns; then the largest differences
between compiled and reference.

Usage: SDFIT_DATA=../shared/data python benchmarks/diagnostics.py [--repeats 300]

BLAS runs on one thread here (set before NumPy loads): its idle threads spin on after
NumPy's turn, on the core the compiled turn after it wants.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import sdfit  # noqa: E402
from sdfit import diagnostics, native  # noqa: E402


def census_jacobians() -> np.ndarray:
    """The stack ``diagnose`` gets in the fit (captured on its way in)."""
    spec = sdfit.load_spec("us-counties")
    captured = []
    original = diagnostics.diagnose

    def capture(jacobian, *args, **kwargs):
        captured.append(np.array(jacobian))
        return original(jacobian, *args, **kwargs)

    diagnostics.diagnose = capture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sdfit.IdentifiabilityWarning)  # Kalawao's, known
            sdfit.fit(sdfit.load_model(spec.model), spec.data.read(), spec.problem,
                      backend="serial", progress=False)
    finally:
        diagnostics.diagnose = original
    return np.concatenate(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    jac = census_jacobians()
    cores = native.threads()
    compiled = diagnostics._native(*jac.shape[1:])
    # the thread count is read per call: set it per turn
    runs = {f"compiled, {cores} threads": cores, "compiled, 1 thread": 1, "NumPy reference": 0}
    seconds = {name: [] for name in runs}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, threads in runs.items():
            native.threads = lambda threads=threads: max(threads, 1)
            diagnostics._native = lambda rows, p, threads=threads: compiled if threads else None
            started = time.perf_counter()
            diagnostics.diagnose(jac)
            seconds[name].append(time.perf_counter() - started)
    diagnostics._native = lambda rows, p: compiled
    fast = diagnostics.diagnose(jac)
    diagnostics._native = lambda rows, p: None
    reference = diagnostics.diagnose(jac)
    print(f"diagnose of {jac.shape[0]:,} Jacobians {jac.shape[1]} x {jac.shape[2]}, "
          f"{args.repeats} turns (load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)")
    print(f"{'':26} {'min ms':>8} {'median ms':>10}")
    for name, times in seconds.items():
        print(f"{name:26} {min(times) * 1e3:8.3f} {np.median(times) * 1e3:10.3f}")
    full = reference.rank == jac.shape[2]
    with np.errstate(invalid="ignore"):
        variance = np.nanmax(np.abs(fast.variance / reference.variance - 1))
    same = {name: "same" if np.array_equal(getattr(fast, name), getattr(reference, name))
            else "DIFFERENT" for name in ("rank", "identifiable")}
    print(f"\ncompiled against reference: rank {same['rank']}, identifiable "
          f"{same['identifiable']}; largest differences:\ncondition (full rank) "
          f"{np.max(np.abs(fast.condition[full] / reference.condition[full] - 1)):.1e} "
          f"relative, variance {variance:.1e} relative, null-space shares "
          f"{np.nanmax(np.abs(fast.nullspace - reference.nullspace)):.1e}")


if __name__ == "__main__":
    main()
