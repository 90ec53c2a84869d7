"""The sections of the report, each a function of the result (and what the page knows
about its units) returning HTML."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import figures
from ..figures.shapes import CountyShapes
from ..figures.units import grid_units, identifiable, is_counties
from ..results import FitResult
from ..stories import UnitStory
from . import svg
from .html import escape, figure, frame, png, section, table

TOP_UNITS = 10


@dataclass(frozen=True)
class Units:
    """What the page knows about the units: their id columns, keys (``state=6,
    county=37``), labels (with the county name when the shapefile has it), and their
    stories, by key."""

    columns: list[str]
    keys: list[str]
    labels: list[str]
    stories: Mapping[str, UnitStory]
    missing_stories: str | None = None  # why the grid's stories could not be made

    def label_keys(self, text: str) -> str:
        """``text`` with every unit key in it replaced by the unit's label."""
        if self.keys == self.labels:
            return text
        by_key = dict(zip(self.keys, self.labels, strict=True))
        pattern = r"(?<!\w)" + ", ".join(re.escape(c) + r"=[^,()\s]+" for c in self.columns)
        return re.sub(pattern, lambda m: by_key.get(m.group(0), m.group(0)), text)


def run(result: FitResult) -> str:
    record = result.run
    if record is None:
        return section("run", "Run", "<p>Not recorded (a result made in memory).</p>")
    prints = record.fingerprints
    rows = [("model", record.model), ("data", record.data),
            ("spec", record.spec or "(Python API)"),
            ("backend", f"{record.backend} ({_count(record.workers, 'worker')}, "
                        f"{_count(record.chunks, 'chunk')})"),
            ("fit time", f"{record.wall_time:.2f} s")]
    rows += [(f"sha256 of {k}", prints[k] or "(not a file)") for k in sorted(prints)]
    spec = record.spec_dict or {"problem": record.problem}
    return section("run", "Run", table(rows) + "<h3>Spec</h3><pre>"
                   + escape(json.dumps(spec, indent=2, default=str)) + "</pre>")


def outcome(result: FitResult, units: Units) -> str:
    data = result.table
    n, failed = len(data), result.n_failed
    text = f"<p class='big'>{n - failed:,} of {n:,} units succeeded, {failed:,} failed"
    text += (f"; {len(result.dropped):,} dropped for invalid data.</p>" if len(result.dropped)
             else ".</p>")
    # observed: the outcomes that happened, not every message the categorical could hold
    reasons = data.groupby(["status", "message"], observed=True).size().reset_index(
        name="units")
    reasons.insert(0, "outcome", np.where(reasons["status"] > 0, "success", "failure"))
    text += frame(reasons)
    if failed:
        rows = np.flatnonzero(~data["success"].to_numpy(bool))[:TOP_UNITS]
        text += (f"<h3>Failed units (first {len(rows)})</h3>"
                 + _unit_rows(result, units, rows, ["status", "message"]))
    if len(result.dropped):
        text += "<h3>Dropped units</h3>" + frame(result.dropped.head(TOP_UNITS))
    return section("outcome", "Outcome", text)


def sse(result: FitResult) -> str:
    q = result.table["sse"].quantile([0, 0.5, 0.9, 0.99, 1])
    quantiles = table([(f"{p:.0%}", f"{v:.3g}") for p, v in q.items()], ("quantile", "SSE"))
    return section("sse", "SSE distribution", svg.sse_chart(result) + quantiles)


def parameters(result: FitResult, drawn: bytes | None = None) -> str:
    """``drawn``: the PNG of these histograms `sdfit fit` wrote, else drawn here."""
    if not result.table["success"].any():
        return section("parameters", "Fitted parameters", "<p>No unit succeeded.</p>")
    return section("parameters", "Fitted parameters",
                   "<p>Units per bracket of every fitted parameter, one panel each. Grey: "
                   "units in which the parameter is not identifiable; the shape of a "
                   "parameter that is not identifiable says where the solver started, not "
                   "what the data say.</p>"
                   + _figure(drawn, lambda: figures.parameter_histograms(result),
                             "parameter histograms"))


def fit(result: FitResult, drawn: bytes | None = None) -> str:
    return section("fit", "Observed vs fitted",
                   _figure(drawn, lambda: figures.observed_vs_fitted(result),
                           "observed vs fitted"))


def county_map(result: FitResult, shapes: CountyShapes | None, missing: str | None,
               drawn: bytes | None = None) -> str:
    if not is_counties(result):
        return section("map", "Map", "<p>No map: the units are not US counties "
                       "(unit ids 'state' and 'county').</p>")
    if shapes is None:
        return section("map", "Map", f"<p class='bad'>No map: {escape(missing)}</p>")
    shrinkage = [f"{p}_shrinkage" for p in result.parameters
                 if f"{p}_shrinkage" in result.table]
    pooled = ("" if not shrinkage else
              "<h3>Shrinkage of the pooled parameters</h3><p>0: the county's own data alone "
              "decide its value; 1: the population (its state's mean) alone does.  The maps "
              "above show the pooled (shrunken) values.</p>"
              + figure(figures.county_map(result, shapes, shrinkage), "shrinkage maps"))
    return section("map", "Maps of the fitted parameters",
                   "<p>One map per fitted parameter (the same as figures/map.png).</p>"
                   + _figure(drawn, lambda: figures.county_map(result, shapes),
                             "county maps") + pooled)


def identifiability(result: FitResult, units: Units) -> str:
    summary = result.identifiability
    if summary is None or "rank" not in result.table:
        return section("identifiability", "Identifiability",
                       "<p>No diagnostics in this folder: fit again to get them.</p>")
    problem, data = result.run.problem, result.table
    ok = data["rank"].to_numpy() >= 0
    rows = []
    for p in result.parameters:
        flags = identifiable(result, p)[ok]
        kind = ("shared" if p in problem.get("shared", []) else
                f"ridge λ={problem['ridge'][p]:g} towards {problem['x0'][p]:g}"
                if p in problem.get("ridge", {}) else "per unit")
        stderr = data.loc[ok, f"{p}_stderr"]
        rows.append((p, kind, f"{flags.sum():,}", f"{(~flags).sum():,}",
                     f"{data.loc[ok, f'{p}_nullspace'].median():.3f}",
                     f"{stderr.median():.3g}" if stderr.notna().any() else "unavailable",
                     f"{summary.penalty_only.get(p, 0):,}" if p in summary.penalty_only
                     else "-"))
    for name, value in problem.get("fixed", {}).items():
        rows.append((name, f"fixed at {value:g}", "not fitted", "-", "-", "-", "-"))
    head = ("parameter", "how", "identifiable in", "not identifiable in",
            "median null-space length", "median standard error", "set by penalty alone in")
    ranks = data.loc[ok, "rank"].value_counts().sort_index()
    cond = data.loc[ok, "condition"]
    finite = cond[np.isfinite(cond)]
    conditions = (f"infinite (a singular Jacobian) in "
                  f"{_count(int((~np.isfinite(cond)).sum()), 'unit')}"
                  if len(finite) < len(cond) else "")
    if len(finite):
        conditions += ("; " if conditions else "") + (
            f"median {finite.median():.3g}, max {finite.max():.3g} over "
            f"{_count(len(finite), 'unit')}")
    flagged = np.flatnonzero(ok & ~np.all([identifiable(result, p)
                                           for p in result.parameters], axis=0))
    listing = ""
    if len(flagged):
        shown = flagged[:TOP_UNITS]
        names = [", ".join(p for p in result.parameters
                           if not identifiable(result, p)[i]) for i in shown]
        listing = (f"<h3>Units with parameters not identifiable ({len(flagged):,}; first "
                   f"{len(shown)})</h3>"
                   + _unit_rows(result, units, shown, ["rank"], {"not identifiable": names}))
    text = ("<ul>" + "".join(f"<li>{escape(units.label_keys(line.strip()))}</li>"
                             for line in summary.summary) + "</ul>"
            + table(rows, head)
            + "<p>Rank of the column-scaled Jacobian: "
            + ", ".join(f"{int(r)} in {_count(c, 'unit')}" for r, c in ranks.items())
            + f". Condition number of the column-scaled Jacobian: {conditions}.</p>"
            + "<p class='meta'>A parameter is not identifiable when more than "
            f"{summary.null_tol:g} of its column-scaled axis lies in the Jacobian's null "
            f"space (singular values below {summary.rank_rtol:g} of the largest): a step "
            "along that direction leaves every target unchanged, so its fitted value reflects "
            "the starting point, not the data.</p>"
            + svg.identifiability_chart(result) + listing)
    return section("identifiability", "Identifiability", text)


def unit_section(result: FitResult, units: Units) -> str:
    data = result.table
    picks = grid_units(result)
    at = {k: i for i, k in enumerate(units.keys)}
    text = ("<h3>Best, median and worst fit (by SSE)</h3>"
            + _unit_rows(result, units, [at[k] for k in picks.values()], ["nfev"],
                         {"": list(picks)}, first=True))
    labels = dict(zip(units.keys, units.labels, strict=True))
    stories = {k: dataclasses.replace(units.stories[k], label=labels[k])
               for k in picks.values() if k in units.stories}
    if stories:
        text += svg.story_grid(stories)
    else:
        text += ("<p class='meta'>Their trajectories are not drawn: "
                 + escape(units.missing_stories or "no stories were given.") + "</p>")
    slow = data["nfev"].to_numpy().argsort(kind="stable")[::-1][:TOP_UNITS]
    worst = np.argsort(-np.nan_to_num(data["sse"].to_numpy(float), nan=np.inf),
                       kind="stable")[:TOP_UNITS]
    columns = ["nfev", "status", "message"] + (["rank"] if "rank" in data else [])
    text += (f"<h3>Most model evaluations (nfev)</h3>{_unit_rows(result, units, slow, columns)}"
             f"<h3>Largest SSE</h3>{_unit_rows(result, units, worst, columns)}")
    return section("units", "Units", text)


def _figure(drawn: bytes | None, draw, alt: str) -> str:
    """The PNG ``drawn`` before, else ``draw()`` (matplotlib, imported only then)."""
    return png(drawn, alt) if drawn is not None else figure(draw(), alt)


def _unit_rows(result: FitResult, units: Units, rows, columns: list[str],
               extra: Mapping[str, list] | None = None, first: bool = False) -> str:
    """A table of some units: label, SSE, then ``columns`` of the result table."""
    rows = list(rows)
    data = result.table.iloc[rows]
    out = pd.DataFrame({"unit": [units.labels[i] for i in rows],
                        "sse": data["sse"].to_numpy(float)})
    for column in columns:
        out[column] = data[column].to_numpy()
    for name, values in (extra or {}).items():
        if first:
            out.insert(0, name, values)
        else:
            out[name] = values
    return frame(out)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
