"""HTML pieces of the report: sections, tables, embedded figures, escaping, style."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd


def section(key: str, heading: str, content: str) -> str:
    return f"<section id='{key}'><h2>{escape(heading)}</h2>\n{content}\n</section>"


def figure(fig, alt: str) -> str:
    """A matplotlib Figure embedded as a base64 PNG."""
    from ..figures import png_bytes

    return png(png_bytes(fig), alt)


def png(data: bytes, alt: str) -> str:
    """PNG bytes embedded in base64: the page stays one self-contained file."""
    return (f"<img alt='{escape(alt)}' src='data:image/png;base64,"
            f"{base64.b64encode(data).decode('ascii')}'>")


def table(rows, head=None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def frame(data: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else v

    return table([[cell(v) for v in row] for row in data.itertuples(index=False)],
                 list(data.columns))


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def script_json(element_id: str, data) -> str:
    """``data`` as JSON inside a script element that the browser never runs; ``<``
    escaped so that no text from a data file can close the element."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return f"<script type='application/json' id='{element_id}'>{text}</script>"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
nav a { margin-right: .8em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } pre { background: #f7f7f7; padding: .8em; overflow-x: auto; }
img, svg.chart { max-width: 100%; height: auto; }
.meta { color: #666; font-size: .9em; } .big { font-size: 1.2em; }
.bad { color: #b22222; font-weight: bold; }
#lookup-query { font-size: 1.1em; padding: .3em .5em; width: 28em; max-width: 100%; }
#lookup-matches button { display: block; margin: .15em 0; background: none; border: none;
       color: #1f5fa8; cursor: pointer; font-size: .95em; text-align: left; padding: 0; }
#lookup-unit svg { background: #fafafa; border: 1px solid #ddd; margin: 0 .6em .6em 0; }
"""
