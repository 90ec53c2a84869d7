"""How long looking at a fit takes: every figure and the report of the 3,137 US counties,
with the county shapes cache cold (first use) and warm, side by side in one run; and the
whole commands, `sdfit fit us-counties --out DIR` (with and without figures) and
`sdfit report DIR`, wall and CPU seconds (CPU: all processes of the command, so that a
busy machine, which stretches the wall time, can be told apart), best and median.

The counties are fitted once (`us-counties`, all cores) and written to a temporary
folder.  Each measurement then runs in a fresh interpreter, as `sdfit fit` and
`sdfit report` do, and times only sdfit's own work after the imports: `write_figures`
first, then each of its figures again alone, and the unit figures, in one process;
`write_report` (reading the folder, shapes, the grid's stories, every section, writing)
in another, of a folder the API wrote (every figure drawn) and of one `sdfit fit` wrote
(its figures embedded).  "cold" starts from an empty cache folder (XDG_CACHE_HOME),
"warm" from the one the cold run filled.  Best of --repeats runs; the whole commands
warm also their median.

Usage: SDFIT_DATA=../shared/data python benchmarks/figures.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROWS = [("imports", "import sdfit, matplotlib and the figure modules"),
        ("write_figures", "the three figures of `sdfit fit`, shapes included"),
        ("shapes", "county shapes: parse + project + cache, or read the cache"),
        ("histogram.png", "parameter histograms, drawn and written"),
        ("observed_vs_fitted.png", "observed vs fitted, drawn and written"),
        ("map.png", "one map per parameter, drawn and written"),
        ("unit figure", "one unit's story"),
        ("story grid", "best, median and worst units (SVG)"),
        ("write_report", "`sdfit report DIR` after imports, every figure drawn"),
        ("write_report reusing", "... of a folder `sdfit fit` wrote: its figures embedded"),
        ("report MB", "size of report.html"),
        ("sdfit fit", "whole command, figures included: wall"),
        ("sdfit fit CPU", "... CPU of all its processes"),
        ("sdfit fit --no-figures", "whole command without figures: wall"),
        ("sdfit report", "whole command: wall"),
        ("sdfit report CPU", "... CPU of all its processes")]
# in this order: the report reads the folder of the fit with figures, as `sdfit fit` left it
COMMANDS = {"sdfit fit --no-figures": ["fit", "us-counties", "--quiet", "--no-figures", "--out"],
            "sdfit fit": ["fit", "us-counties", "--quiet", "--out"],
            "sdfit report": ["report"]}


def child(mode: str, folder: Path, cold: bool) -> dict:
    """Run in a fresh interpreter: time the figures or the report of ``folder`` (and of
    its sibling ``cli``, written by `sdfit fit`)."""
    started = time.perf_counter()
    import pickle

    from sdfit.datasets import county_shapes
    from sdfit.figures import (
        county_map,
        load_county_shapes,
        observed_vs_fitted,
        parameter_histograms,
        save_png,
        unit_figure,
        write_figures,
    )
    from sdfit.report import load_results, svg, write_report

    times = {"imports": time.perf_counter() - started}
    shapefile = county_shapes()
    out = Path(tempfile.mkdtemp())
    if mode == "report":
        started = time.perf_counter()
        page = write_report(folder, out / "report.html")
        times["write_report"] = time.perf_counter() - started
        times["report MB"] = page.stat().st_size / 2**20
        started = time.perf_counter()
        write_report(folder.parent / "cli", out / "reusing.html")
        times["write_report reusing"] = time.perf_counter() - started
        return times
    result = load_results(folder)
    started = time.perf_counter()  # first, as `sdfit fit` does: shapes not yet loaded
    write_figures(result, out / "all", shapefile=shapefile)
    times["write_figures"] = time.perf_counter() - started
    from sdfit.figures import shapes as shapes_module

    shapes_module._load.cache_clear()  # then each piece alone (fonts already loaded)
    for stale in Path(os.environ["XDG_CACHE_HOME"]).rglob("*.npz") if cold else ():
        stale.unlink()
    started = time.perf_counter()
    shapes = load_county_shapes(shapefile)
    times["shapes"] = time.perf_counter() - started
    for name, draw in [("histogram.png", lambda: parameter_histograms(result)),
                       ("observed_vs_fitted.png", lambda: observed_vs_fitted(result)),
                       ("map.png", lambda: county_map(result, shapes))]:
        started = time.perf_counter()
        save_png(draw(), out / name)
        times[name] = time.perf_counter() - started
    stories = pickle.loads((folder / "stories.pkl").read_bytes())
    started = time.perf_counter()
    save_png(unit_figure(stories[next(iter(stories))]), out / "unit.png")
    times["unit figure"] = time.perf_counter() - started
    started = time.perf_counter()
    svg.story_grid(stories)
    times["story grid"] = time.perf_counter() - started
    return times


def measure(mode: str, folder: Path, cache: Path, state: str) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    run = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), state],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def command(name: str, out: Path, cache: Path) -> dict:
    """Wall and CPU seconds of one whole command in a fresh interpreter (cold: ``cache``
    empty; the compiled model and the county shapes are made and cached).  The fits
    write into ``out``, the report reads it (a folder `sdfit fit` wrote: `sdfit report`
    refuses one the API wrote, which has no record of sdfit's own)."""
    import resource
    import shutil

    if name != "sdfit report":
        shutil.rmtree(out, ignore_errors=True)  # a fresh results folder each time
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdfit.cli", *COMMANDS[name], str(out)], env=env,
                   capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {name: wall} | ({f"{name} CPU": cpu} if name != "sdfit fit --no-figures" else {})


def fit_counties(folder: Path) -> float:
    """Fit the 3,137 counties into ``folder``, with the stories of the grid's units."""
    import pickle

    import sdfit
    from sdfit.figures import grid_units, unit_keys
    from sdfit.stories import unit_stories

    spec = sdfit.load_spec("us-counties")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sdfit.fit(spec.model, spec.data.read(), spec.problem, progress=False)
    seconds = time.perf_counter() - started
    result.write(folder)
    keys = unit_keys(result.table, result.unit_columns)
    ids = list(result.table[result.unit_columns].itertuples(index=False, name=None))
    grid = [ids[keys.index(k)] for k in grid_units(result).values()]
    (folder / "stories.pkl").write_bytes(pickle.dumps(unit_stories(result, grid)))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FOLDER", "STATE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.child[2] == "cold")))
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "us-counties"
        fit_seconds = fit_counties(folder)
        subprocess.run([sys.executable, "-m", "sdfit.cli", *COMMANDS["sdfit fit"],
                        str(Path(tmp) / "cli")], capture_output=True, check=True)
        runs = {"cold": defaultdict(list), "warm": defaultdict(list)}
        for _ in range(args.repeats):
            cache = Path(tempfile.mkdtemp(dir=tmp))
            for state in ("cold", "warm"):  # the cold run fills the cache the warm one reads
                for mode in ("figures", "report"):
                    if state == "cold" and mode == "report":
                        for stale in cache.rglob("*.npz"):
                            stale.unlink()  # the report's shapes from scratch too
                    for key, value in measure(mode, folder, cache, state).items():
                        runs[state][key].append(value)
        for _ in range(args.repeats):  # the whole commands, each cold then warm
            run = Path(tempfile.mkdtemp(dir=tmp))
            for i, name in enumerate(COMMANDS):  # the report last: it reads the fit's folder
                for state in ("cold", "warm"):
                    for key, value in command(name, run / "out", run / f"cache{i}").items():
                        runs[state][key].append(value)
    print(f"3,137 US counties fitted in {fit_seconds:.2f} s; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; best (and median) of {args.repeats} fresh "
          "interpreters, seconds")
    print(f"{'':24}{'cold cache':>12}{'warm cache':>12}{'warm median':>13}  what")
    for key, what in ROWS:
        cold, warm = runs["cold"].get(key), runs["warm"].get(key)
        print(f"{key:24}{_cell(cold, min):>12}{_cell(warm, min):>12}"
              f"{_cell(warm, statistics.median):>13}  {what}")


def _cell(values: list | None, reduce) -> str:
    return "-" if not values else f"{reduce(values):.3f}"


if __name__ == "__main__":
    main()
