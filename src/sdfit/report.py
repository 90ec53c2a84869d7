"""``sdfit report``: one self-contained HTML page about a results folder.

The page reads only what ``sdfit fit`` wrote (params.csv, targets.csv,
run.json, dropped.csv) and embeds its figures as base64 PNG, so it can be
mailed or archived alone.  Sections: run (spec and sha256 fingerprints),
outcome (successes, failures and reasons), SSE distribution, parameters,
observed vs fitted, county map (US counties only), identifiability, and the
slowest and worst-fitting units.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .files import atomic_write
from .results import FitResult

SECTIONS = ("run", "outcome", "sse", "parameters", "fit", "map", "identifiability", "units")
TOP_UNITS = 10


def load_results(folder: str | Path) -> FitResult:
    """The FitResult written into ``folder`` (see :meth:`FitResult.read`)."""
    return FitResult.read(folder)


def write_report(folder: str | Path, out: str | Path | None = None,
                 shapefile: Path | None = None) -> Path:
    """Render the report of ``folder`` into ``out`` (default ``folder/report.html``).
    ``shapefile`` draws the county map; by default the census shapes when available."""
    result = load_results(folder)
    if shapefile is None and _is_counties(result):
        from .datasets import county_shapes

        shapefile = county_shapes()
    page = render(result, shapefile)
    out = Path(out) if out is not None else Path(folder) / "report.html"
    return atomic_write(out, lambda p: Path(p).write_text(page, encoding="utf-8"))


def render(result: FitResult, shapefile: Path | None = None) -> str:
    """The report page as a string."""
    run = result.run
    title = f"sdfit report: {Path(str(run.model)).stem} on {len(result.table):,} units"
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class='meta'>sdfit {__version__} &middot; spec {_e(run.spec or '-')}</p>"]
    body += [_run(result), _outcome(result), _sse(result), _parameters(result), _fit(result),
             _map(result, shapefile), _identifiability(result), _units(result)]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# -- sections ------------------------------------------------------------------------------
def _run(result: FitResult) -> str:
    run = result.run
    prints = run.fingerprints
    rows = [("model", run.model), ("data", run.data), ("spec", run.spec or "(Python API)"),
            ("backend", f"{run.backend} ({run.workers} workers, {run.chunks} chunks)"),
            ("fit time", f"{run.wall_time:.2f} s")]
    rows += [(f"sha256 of {k}", prints[k] or "(not a file)") for k in sorted(prints)]
    spec = run.spec_dict or {"problem": run.problem}
    return _section("run", "Run", _table(rows) + "<h3>Spec</h3><pre>"
                    + _e(json.dumps(spec, indent=2, default=str)) + "</pre>")


def _outcome(result: FitResult) -> str:
    table = result.table
    n, failed = len(table), result.n_failed
    text = f"<p class='big'>{n - failed:,} of {n:,} units succeeded, {failed:,} failed"
    text += f"; {len(result.dropped):,} dropped for invalid data.</p>" if len(result.dropped) \
        else ".</p>"
    reasons = table.groupby(["status", "message"]).size().reset_index(name="units")
    reasons.insert(0, "outcome", np.where(reasons["status"] > 0, "success", "failure"))
    text += _frame(reasons)
    if len(result.dropped):
        text += "<h3>Dropped units</h3>" + _frame(result.dropped.head(TOP_UNITS))
    return _section("outcome", "Outcome", text)


def _sse(result: FitResult) -> str:
    sse = result.table["sse"].to_numpy(float)
    q = pd.Series(sse).quantile([0, 0.5, 0.9, 0.99, 1])
    quantiles = _table([(f"{p:.0%}", f"{v:.3g}") for p, v in q.items()], ("quantile", "SSE"))

    def draw(ax):
        finite = sse[np.isfinite(sse)]
        floor = np.finfo(float).tiny
        ax.hist(np.log10(np.maximum(finite, floor)), bins=60, color="#4c72b0")
        ax.set_xlabel("log10 SSE (weighted sum of squared target residuals; 0 shown at -308)")
        ax.set_ylabel("units")
        ax.set_title(f"SSE of {len(finite):,} units")

    return _section("sse", "SSE distribution", _figure(draw, (9, 4)) + quantiles)


def _parameters(result: FitResult) -> str:
    from .plotting import parameter_histogram

    if not result.table["success"].any():
        return _section("parameters", "Parameters", "<p>No unit succeeded.</p>")
    # the legend says which histograms show artefacts of the starting point
    labels = {}
    for p in result.parameters:
        column = result.table.get(f"{p}_identifiable")
        if column is not None and not column.astype(bool).all():
            labels[p] = f"{p} (NOT identifiable in {(~column.astype(bool)).sum():,} units)"
    shown = FitResult(result.table.rename(columns=labels), result.targets,
                      [labels.get(p, p) for p in result.parameters])
    return _section("parameters", "Fitted parameters",
                    "<p>Units per 1 % bracket of every fitted parameter (the recipe's figure). "
                    "The shape of a parameter that is not identifiable says where the solver "
                    "started, not what the data say.</p>"
                    + _figure(lambda ax: parameter_histogram(shown, ax=ax), (10, 6)))


def _fit(result: FitResult) -> str:
    from .plotting import observed_vs_fitted

    return _section("fit", "Observed vs fitted",
                    _figure(lambda ax: observed_vs_fitted(result, ax=ax), (7, 7)))


def _map(result: FitResult, shapefile: Path | None) -> str:
    from .plotting import county_map

    if not _is_counties(result):
        return _section("map", "Map", "<p>No map: the units are not US counties "
                        "(unit ids 'state' and 'county').</p>")
    if shapefile is None:
        return _section("map", "Map", "<p>No map: the county shapefile was not found (set "
                        "SDFIT_DATA to the folder holding census/US_County_2000_2004.shp).</p>")
    parameter = next((p for p in result.parameters
                      if result.table.get(f"{p}_identifiable", pd.Series([True])).all()),
                     result.parameters[0])
    return _section("map", f"Map of {parameter}",
                    _figure(lambda ax: county_map(result, parameter, shapefile, ax=ax), (12, 7)))


def _identifiability(result: FitResult) -> str:
    summary = result.identifiability
    if summary is None or "rank" not in result.table:
        return _section("identifiability", "Identifiability",
                        "<p>No diagnostics in this folder: fit again to get them.</p>")
    problem, table = result.run.problem, result.table
    ok = table["rank"] >= 0
    rows = []
    for p in result.parameters:
        flags = table.loc[ok, f"{p}_identifiable"].astype(bool)
        kind = ("shared" if p in problem.get("shared", []) else
                f"ridge λ={problem['ridge'][p]:g} towards {problem['x0'][p]:g}"
                if p in problem.get("ridge", {}) else "per unit")
        stderr = table.loc[ok, f"{p}_stderr"]
        rows.append((p, kind, f"{flags.sum():,}", f"{(~flags).sum():,}",
                     f"{table.loc[ok, f'{p}_nullspace'].median():.3f}",
                     f"{stderr.median():.3g}" if stderr.notna().any() else "unavailable",
                     f"{summary.penalty_only.get(p, 0):,}" if p in summary.penalty_only
                     else "-"))
    for name, value in problem.get("fixed", {}).items():
        rows.append((name, f"fixed at {value:g}", "not fitted", "-", "-", "-", "-"))
    head = ("parameter", "how", "identifiable in", "not identifiable in",
            "median null-space length", "median standard error", "set by penalty alone in")
    ranks = table.loc[ok, "rank"].value_counts().sort_index()
    cond = table.loc[ok, "condition"]
    finite = cond[np.isfinite(cond)]
    conditions = (f"infinite (fewer residuals than parameters) in {(~np.isfinite(cond)).sum():,}"
                  " units" if len(finite) < len(cond) else "")
    if len(finite):
        conditions += ("; " if conditions else "") + (
            f"median {finite.median():.3g}, max {finite.max():.3g} over {len(finite):,} units")
    flagged = table.loc[ok & ~table[[f"{p}_identifiable" for p in result.parameters]]
                        .astype(bool).all(axis=1)]
    listing = ""
    if len(flagged):
        listing = (f"<h3>Units with parameters not identifiable ({len(flagged):,}; first "
                   f"{min(len(flagged), TOP_UNITS)})</h3>" + _frame(flagged.head(TOP_UNITS).assign(
                       not_identifiable=[", ".join(p for p in result.parameters
                                                   if not row[f"{p}_identifiable"])
                                         for _, row in flagged.head(TOP_UNITS).iterrows()])
                       [[*result.unit_columns, "rank", "not_identifiable"]]))
    text = ("<ul>" + "".join(f"<li>{_e(line.strip())}</li>" for line in summary.summary)
            + "</ul>" + _table(rows, head)
            + "<p>Rank of the column-scaled Jacobian: "
            + ", ".join(f"{int(r)} in {c:,} units" for r, c in ranks.items())
            + f". Condition number of the column-scaled Jacobian: {conditions}.</p>"
            + "<p class='meta'>A parameter is not identifiable when more than "
            f"{summary.null_tol:g} of its column-scaled axis lies in the Jacobian's null "
            f"space (singular values below {summary.rank_rtol:g} of the largest): a step "
            "along that direction leaves every target unchanged, so its fitted value reflects "
            "the starting point, not the data.</p>"
            + _figure(lambda ax: _identifiable_bars(result, ax),
                      (9, 1.2 + 0.4 * len(result.parameters))) + listing)
    return _section("identifiability", "Identifiability", text)


def _identifiable_bars(result: FitResult, ax) -> None:
    table = result.table[result.table["rank"] >= 0]
    names = result.parameters[::-1]
    share = np.array([table[f"{p}_identifiable"].astype(bool).mean() * 100 for p in names])
    ax.barh(names, share, color="#55a868", label="identifiable")
    ax.barh(names, 100 - share, left=share, color="#c44e52", label="not identifiable")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of units")
    ax.set_title("Is each fitted parameter pinned down by the targets?")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1.04), ncol=2, frameon=False, fontsize=8)


def _units(result: FitResult) -> str:
    table = result.table
    columns = [*result.unit_columns, "sse", "nfev", "status", "message"]
    if "rank" in table:
        columns.insert(-2, "rank")
    slow = table.nlargest(TOP_UNITS, "nfev")[columns]
    worst = table.assign(_sse=table["sse"].fillna(np.inf)).nlargest(TOP_UNITS, "_sse")[columns]
    return _section("units", "Slowest and worst-fitting units",
                    f"<h3>Most model evaluations (nfev)</h3>{_frame(slow)}"
                    f"<h3>Largest SSE</h3>{_frame(worst)}")


# -- HTML pieces ---------------------------------------------------------------------------
def _section(key: str, heading: str, content: str) -> str:
    return f"<section id='{key}'><h2>{_e(heading)}</h2>\n{content}\n</section>"


def _figure(draw: Callable, size: tuple[float, float]) -> str:
    import matplotlib.pyplot as plt

    from . import plotting  # noqa: F401 - selects the Agg backend

    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='figure' src='data:image/png;base64,{data}'>"


def _table(rows, head=None) -> str:
    out = "<table>"
    if head:
        out += "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
    for row in rows:
        out += "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
    return out + "</table>"


def _frame(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else v

    return _table([[cell(v) for v in row] for row in frame.itertuples(index=False)],
                  list(frame.columns))


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _is_counties(result: FitResult) -> bool:
    return {"state", "county"} <= set(map(str.lower, result.unit_columns))


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } pre { background: #f7f7f7; padding: .8em; overflow-x: auto; }
img { max-width: 100%; } .meta { color: #666; font-size: .9em; } .big { font-size: 1.2em; }
"""
