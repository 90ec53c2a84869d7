"""What checking a generated program costs, side by side with compiling it: the program of
the bundled aging chain and of the largest test models (every variable recorded), the
time of ``validate.check_program`` and of Python's ``compile`` (both once per process
and per set of recorded variables), best of several runs.

Usage: SDFIT_DATA=../shared/data python benchmarks/program_check.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import sdfit
from sdfit.datasets import aging_chain_path
from sdfit.model.runtime import validate
from sdfit.model.runtime.codegen import _generate

TEST_MODELS = ("delay_pipeline", "delays", "arguments", "subscript_3d_arrays",
               "subscripted_delays")


def best_ms(action, repeats: int, *args) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action(*args)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    paths = [("aging chain (bundled)", aging_chain_path())]
    suite = Path(os.environ.get("SDFIT_DATA", "../shared/data")) / "test-models" / "tests"
    for name in TEST_MODELS:
        found = sorted((suite / name).glob("*.mdl"))
        if found:
            paths.append((name, found[0]))
    print(f"{'model':24s} {'lines':>6s} {'check ms':>9s} {'compile ms':>11s} "
          f"{'check/compile':>14s}")
    for label, path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sdfit.load_model(path)
        record = tuple(v.ident for v in model.variables.values() if v.kind != "lookup")
        source = _generate(model, record)
        namespace = {"np": None, "F": None, "V": None, "A": None, "RPREC": None}
        check = best_ms(validate.check_program, args.repeats, source, str(path), namespace)
        build = best_ms(compile, args.repeats, source, "<program>", "exec")
        print(f"{label:24s} {source.count(chr(10)):6d} {check:9.2f} {build:11.2f} "
              f"{check / build:14.1f}")


if __name__ == "__main__":
    main()
