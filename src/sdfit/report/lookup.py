"""The report's unit lookup: every unit's ids, name, parameters, SSE and targets embedded
as one JSON block, searched and drawn (inline SVG) by a small script in the page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..figures.units import identifiable
from ..results import FitResult
from .html import script_json, section
from .sections import Units

MAX_STORIES = 200  # units whose trajectories are embedded (each costs a few kB)
CURVE_POINTS = 80  # points kept of a trajectory (a thumbnail needs no more)


def lookup(result: FitResult, units: Units) -> str:
    """The lookup section: a search box, the matches, the chosen unit."""
    return section("lookup", "Look up a unit", _FORM + script_json("units-data", unit_data(
        result, units)) + f"<script>{_SCRIPT}</script>")


def unit_data(result: FitResult, units: Units) -> dict:
    """Everything the lookup shows, column by column (numbers to 6 significant digits)."""
    data = result.table
    success = data["success"].to_numpy(bool)
    messages, codes = np.unique(data["message"].astype(str).to_numpy(), return_inverse=True)
    out = {
        "labels": units.labels,
        "parameters": result.parameters,
        "values": [_numbers(data[p]) for p in result.parameters],
        "sse": _numbers(data["sse"]),
        "success": "".join("1" if s else "0" for s in success),
        "messages": messages.tolist(),
        "message": codes.tolist(),
        "nfev": data["nfev"].astype(int).tolist(),
        "targets": _targets(result),
        "stories": _stories(units),
    }
    if "rank" in data:
        out["identifiable"] = ["".join("1" if f else "0" for f in identifiable(result, p))
                               for p in result.parameters]
    if any(data.get(f"{p}_ci_low", pd.Series(dtype=float)).notna().any()
           for p in result.parameters):
        out["ci"] = [[_numbers(data[f"{p}_ci_low"]), _numbers(data[f"{p}_ci_high"])]
                     for p in result.parameters]
    return out


def _targets(result: FitResult) -> dict:
    """Targets grouped by unit: the unit's rows are ``start[u]`` to ``start[u + 1]``."""
    targets = result.targets
    ids = result.unit_columns
    row = pd.MultiIndex.from_frame(result.table[ids]).get_indexer(
        pd.MultiIndex.from_frame(targets[ids])) if len(ids) > 1 else \
        pd.Index(result.table[ids[0]]).get_indexer(targets[ids[0]])
    order = np.argsort(row, kind="stable")
    order = order[row[order] >= 0]
    variable, variables = pd.factorize(targets["variable"].to_numpy()[order])
    time, times = pd.factorize(targets["time"].to_numpy(float)[order])
    counts = np.bincount(row[order], minlength=len(result.table))
    return {"variables": [str(v) for v in variables], "times": _numbers(times),
            "start": np.concatenate([[0], np.cumsum(counts)]).tolist(),
            "variable": variable.tolist(), "time": time.tolist(),
            "observed": _numbers(targets["observed"].to_numpy(float)[order]),
            # residuals apart: observed and fitted to 6 digits would hide them
            "residual": _numbers((targets["fitted"] - targets["observed"]).to_numpy(float)[
                order], digits=3)}


def _stories(units: Units) -> dict:
    """Trajectories of the units with stories (at most MAX_STORIES), by unit index."""
    at = {k: i for i, k in enumerate(units.keys)}
    out = {}
    for key, story in list(units.stories.items())[:MAX_STORIES]:
        if key not in at:
            continue
        keep = np.unique(np.linspace(0, len(story.times) - 1, CURVE_POINTS).round().astype(int))
        seen = story.observations
        out[str(at[key])] = {
            "times": _numbers(np.asarray(story.times)[keep]),
            "curves": {v: _numbers(np.asarray(c)[keep]) for v, c in story.curves.items()},
            "observations": {"time": _numbers(seen["time"]),
                             "variable": seen["variable"].astype(str).tolist(),
                             "observed": _numbers(seen["observed"]),
                             "used": "".join("1" if u else "0" for u in seen["used"])}}
    return out


def _numbers(values, digits: int = 6) -> list:
    """Floats to ``digits`` significant digits, whole numbers without a decimal point
    (counts stay short), and null for NaN or infinity (JSON has neither)."""
    out = []
    for v in np.asarray(values, dtype=float).tolist():
        if v != v or v in (np.inf, -np.inf):
            out.append(None)
        else:
            v = float(f"{v:.{digits}g}")
            out.append(int(v) if v.is_integer() and abs(v) < 1e15 else v)
    return out


_FORM = """
<p>Type part of a unit's name or ids (e.g. <i>Los Angeles</i>, <i>state=6</i>,
<i>county=37</i>); every word must match.</p>
<input id='lookup-query' type='search' placeholder='unit name or ids' autocomplete='off'>
<div id='lookup-matches'></div>
<div id='lookup-unit'></div>
"""

# the script builds every element with textContent: no text from a data file is parsed
# as HTML
_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('units-data').textContent);
  const query = document.getElementById('lookup-query');
  const matches = document.getElementById('lookup-matches');
  const panel = document.getElementById('lookup-unit');
  const lower = data.labels.map(s => s.toLowerCase());
  const sorted = data.sse.filter(v => v !== null).sort((a, b) => a - b);
  const SVG = 'http://www.w3.org/2000/svg';
  const fmt = v => v === null ? 'n/a' : v === 0 || Math.abs(v) >= 1e-3 && Math.abs(v) < 1e7
    ? String(Number(v.toPrecision(6))) : v.toPrecision(4);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function table(head, rows) {
    const t = el('table'), h = el('tr');
    head.forEach(x => h.append(el('th', x)));
    t.append(h);
    rows.forEach(r => {
      const tr = el('tr');
      // a cell is its text, or [text, class]
      r.forEach(x => tr.append(Array.isArray(x) ? el('td', x[0], x[1]) : el('td', x)));
      t.append(tr);
    });
    return t;
  }
  // a small chart: lines (arrays of [x, y]) and dots ([x, y, filled])
  function chart(title, lines, dots, labels) {
    const W = 330, H = 150, L = 62, R = 18, T = 18, B = labels ? 34 : 18;
    const xs = [], ys = [];
    lines.forEach(l => l.forEach(p => { if (p[1] !== null) { xs.push(p[0]); ys.push(p[1]); } }));
    dots.forEach(p => { if (p[1] !== null) { xs.push(p[0]); ys.push(p[1]); } });
    const box = svg('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`});
    box.append(svg('text', {x: 4, y: 12, 'font-size': 11}, title));
    if (!xs.length) return box;
    let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= Math.abs(y0) || 1; y1 += Math.abs(y1) || 1; }
    const X = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    box.append(svg('text', {x: L - 3, y: T + 4, 'font-size': 9, 'text-anchor': 'end'}, fmt(y1)));
    box.append(svg('text', {x: L - 3, y: H - B, 'font-size': 9, 'text-anchor': 'end'}, fmt(y0)));
    box.append(svg('rect', {x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none',
                            stroke: '#ccc'}));
    lines.forEach(l => box.append(svg('polyline', {fill: 'none', stroke: '#4c72b0',
      'stroke-width': 1.5, points: l.filter(p => p[1] !== null)
        .map(p => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ')})));
    dots.forEach(p => { if (p[1] !== null) box.append(svg('circle', {cx: X(p[0]), cy: Y(p[1]),
      r: 3, fill: p[2] ? 'black' : 'white', stroke: 'black'})); });
    if (labels) labels.forEach((s, i) => box.append(svg('text', {x: X(i), y: H - B + 12,
      'font-size': 9, 'text-anchor': 'middle'}, s)));
    else box.append(svg('text', {x: W - R, y: H - 4, 'font-size': 9, 'text-anchor': 'end'},
                        fmt(x0) + ' to ' + fmt(x1)));
    return box;
  }

  function show(u) {
    panel.replaceChildren();
    panel.append(el('h3', data.labels[u]));
    const ok = data.success[u] === '1';
    const sse = data.sse[u];
    const rank = sse === null ? '' : ` (rank ${sorted.filter(v => v < sse).length + 1} of ` +
                                     `${sorted.length} by SSE, 1 = best fit)`;
    panel.append(el('p', (ok ? 'fit succeeded' : 'FIT FAILED') + ': ' +
      data.messages[data.message[u]] + '; SSE ' + fmt(sse) + rank + '; ' + data.nfev[u] +
      ' model evaluations', ok ? '' : 'bad'));
    const head = ['parameter', 'value'], rows = [];
    if (data.identifiable) head.push('identifiable');
    if (data.ci) head.push('confidence interval');
    data.parameters.forEach((p, j) => {
      const row = [p, fmt(data.values[j][u])];
      if (data.identifiable) row.push(data.identifiable[j][u] === '1' ? 'yes' : ['NO', 'bad']);
      if (data.ci) row.push(data.ci[j][0][u] === null ? 'unavailable'
                            : `[${fmt(data.ci[j][0][u])}, ${fmt(data.ci[j][1][u])}]`);
      rows.push(row);
    });
    panel.append(table(head, rows));
    const t = data.targets, a = t.start[u], b = t.start[u + 1];
    const trows = [], byVariable = {};
    for (let k = a; k < b; k++) {
      const name = t.variables[t.variable[k]], time = t.times[t.time[k]];
      const fit = t.observed[k] === null || t.residual[k] === null ? null
                  : t.observed[k] + t.residual[k];
      trows.push([fmt(time), name, fmt(t.observed[k]), fmt(fit), fmt(t.residual[k])]);
      (byVariable[name] = byVariable[name] || []).push([time, t.observed[k], fit]);
    }
    const names = Object.keys(byVariable);
    if (names.every(v => byVariable[v].length > 1)) {  // series: one chart per variable
      names.forEach(v => panel.append(chart(v + ': observed (dots), fitted (line)',
        [byVariable[v].map(p => [p[0], p[2]])], byVariable[v].map(p => [p[0], p[1], true]))));
    } else {  // a few values per variable: one profile across them
      const rows = names.flatMap(v => byVariable[v].map(p => [v, ...p]));
      panel.append(chart('targets: observed (dots), fitted (line)',
        [rows.map((r, i) => [i, r[3]])], rows.map((r, i) => [i, r[2], true]),
        rows.map(r => rows.length <= 12 ? r[0] : '')));
    }
    const story = data.stories[u];
    if (story) {
      const o = story.observations;
      Object.keys(story.curves).forEach(v => {
        const curve = story.times.map((x, i) => [x, story.curves[v][i]]);
        const dots = o.time.map((x, i) => [x, o.observed[i], o.used[i] === '1'])
                           .filter((d, i) => o.variable[i] === v);
        panel.append(chart(v, [curve], dots));
      });
      panel.append(el('p', 'Trajectories: simulated (line); observed, in the SSE (filled) ' +
                            'or not (hollow).', 'meta'));
    }
    panel.append(table(['time', 'variable', 'observed', 'fitted', 'fitted - observed'],
                       trows));
  }

  // units holding every word, those that start with the whole query first, then those
  // holding it whole ("new york county" before every county of New York)
  function search() {
    const phrase = query.value.toLowerCase().trim().replace(/\s+/g, ' ');
    const words = phrase.split(' ').filter(Boolean);
    matches.replaceChildren();
    if (!words.length) return [];
    const ranked = [];
    lower.forEach((label, i) => {
      if (words.every(w => label.includes(w)))
        ranked.push([label.startsWith(phrase) ? 0 : label.includes(phrase) ? 1 : 2, i]);
    });
    const found = ranked.sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, 20)
                        .map(r => r[1]);
    found.forEach(i => { const b = el('button', data.labels[i]);
                         b.addEventListener('click', () => show(i)); matches.append(b); });
    if (!found.length) matches.append(el('p', 'No unit matches.'));
    return found;
  }
  query.addEventListener('input', search);
  // report.html#unit=Los%20Angeles opens the first match
  const hash = decodeURIComponent(location.hash);
  if (hash.startsWith('#unit=')) {
    query.value = hash.slice(6);
    const found = search();
    if (found.length) { show(found[0]); panel.scrollIntoView(); }
  }
})();
"""
