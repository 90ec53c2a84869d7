"""Peak memory of `sdfit fit` against the number of units.

For each size, synthetic units of the bundled aging chain (planted loss rates) are
written as a wide CSV, then fitted by the command line in a subprocess while this
script samples, every 20 ms, the memory of that process (RSS) and of it with all its
children, the worker pool (PSS summed: pages a forked worker shares with its parent
count once, not twice).  Two ways are measured side by side:

* ``streamed``: ``sdfit fit --out DIR`` (chunks saved to disk as they finish, then the
  results assembled from them chunk by chunk);
* ``in memory``: ``sdfit.fit()`` without an out folder, then ``FitResult.write``
  (every chunk's solution held until the end).

Either way each chunk's Jacobians are let go once its diagnostics are computed; what
grows with the units is the input panel and the result tables.

Usage: python benchmarks/memory.py [--units 10000 50000 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _measure import run_measured

from sdfit.datasets import aging_chain, aging_chain_path, synthetic_panel
from sdfit.demo import PLANTED

SPEC = """
model = "{model}"
data = "{data}"
[initial]
time = 2000
[targets]
times = [2010]
exclude = ["dec 1"]
[parameters]
"dec 1 loss rate" = {{ fixed = 0.05 }}
"dec * loss rate" = {{ x0 = 0.05 }}
"""

IN_MEMORY = """
import sys, sdfit
spec = sdfit.load_spec(sys.argv[1])
result = sdfit.fit(spec.model, spec.data.read(), spec.problem, workers=int(sys.argv[3]),
                    progress=False)
result.write(sys.argv[2])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    model = aging_chain()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.units:
            panel, _ = synthetic_panel(
                model, n, PLANTED | {"dec 1 loss rate": (0.05, 0.05)},
                {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)}, [2010], seed=1)
            data = panel.to_csv(tmp / f"units-{n}.csv")
            spec = tmp / f"spec-{n}.toml"
            spec.write_text(SPEC.format(model=aging_chain_path(), data=data))
            streamed = run_measured([sys.executable, "-m", "sdfit.cli", "fit", str(spec),
                                 "--out", str(tmp / f"out-{n}"), "--workers",
                                 str(args.workers), "--quiet", "--no-figures"])
            in_memory = run_measured([sys.executable, "-c", IN_MEMORY, str(spec),
                                  str(tmp / f"mem-{n}"), str(args.workers)])
            rows.append((n, streamed, in_memory))
            print(f"{n:>8,} units  streamed: tree {streamed.tree_mib:7.0f} MiB, main "
                  f"{streamed.main_mib:6.0f} MiB, {streamed.seconds:5.1f} s   in memory: tree "
                  f"{in_memory.tree_mib:7.0f} MiB, main {in_memory.main_mib:6.0f} MiB, "
                  f"{in_memory.seconds:5.1f} s", flush=True)
    if len(rows) > 1:
        (n0, s0, m0), (n1, s1, m1) = rows[0], rows[-1]
        per_unit = [(b.tree_mib - a.tree_mib) * 2**20 / (n1 - n0)
                    for a, b in ((s0, s1), (m0, m1))]
        print(f"growth of the tree's peak per extra unit: streamed {per_unit[0]:.0f} bytes, "
              f"in memory {per_unit[1]:.0f} bytes")


if __name__ == "__main__":
    main()
