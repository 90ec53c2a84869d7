"""Figures of a fit: the recipe's parameter histogram, observed vs fitted, and a county map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from .files import atomic_write  # noqa: E402
from .names import canonical  # noqa: E402
from .results import FitResult  # noqa: E402


def default_histogram_parameters(result: FitResult, excluded: Sequence[str] = ()) -> list[str]:
    """Parameters shown by default: all but those named after an excluded target
    (the recipe's ``dec 1 loss rate`` when ``dec 1`` is excluded: no births data)."""
    prefixes = [canonical(e) + " " for e in excluded]
    shown = [p for p in result.parameters
             if not any(canonical(p).startswith(pre) for pre in prefixes)]
    return shown or list(result.parameters)


def unit_noun(result: FitResult) -> str:
    return "counties" if "county" in map(str.lower, result.unit_columns) else "units"


def parameter_histogram(result: FitResult, parameters: Sequence[str] | None = None,
                        bin_width: float = 0.01, ax=None):
    """Units per bracket of each parameter, one step-filled series per parameter
    (the original recipe's figure, with 1 % brackets of a yearly rate)."""
    parameters = list(parameters or result.parameters)
    values = result.table.loc[result.table["success"], parameters].to_numpy(float)
    ax = ax or plt.subplots(figsize=(10, 6))[1]
    finite = values[np.isfinite(values)]
    lo, hi = np.quantile(finite, [0.005, 0.995]) if finite.size else (0.0, 1.0)
    if (hi - lo) / bin_width > 300:  # parameters of another scale: about 100 bins
        bin_width = (hi - lo) / 100 or 1.0
    bins = np.arange(np.floor(lo / bin_width) * bin_width, hi + 2 * bin_width, bin_width)
    for j, name in enumerate(parameters):
        ax.hist(values[:, j], bins=bins, alpha=0.4, histtype="stepfilled", label=name)
    noun = unit_noun(result)
    ax.set_title(f"Fitted parameters of {len(values):,} {noun}", fontsize=14)
    ax.set_xlabel(f"Parameter value in brackets of {bin_width:g}", fontsize=12)
    ax.set_ylabel(f"Number of {noun}", fontsize=12)
    ax.legend(frameon=False, fontsize=9, ncol=2)
    return ax


def observed_vs_fitted(result: FitResult, ax=None):
    """Every target of every unit: observed against fitted, with the 1:1 line."""
    ax = ax or plt.subplots(figsize=(7, 7))[1]
    targets = result.targets
    # counts span orders of magnitude: log axes, linear near zero so zero counts still show
    non_negative = (targets[["observed", "fitted"]].min().min() >= 0)
    for variable, group in targets.groupby("variable", sort=False):
        ax.scatter(group["observed"], group["fitted"], s=4, alpha=0.5, label=variable)
    both = np.concatenate([targets["observed"], targets["fitted"]])
    both = both[np.isfinite(both)]
    lo, hi = (both.min(), both.max()) if both.size else (0, 1)
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, label="1:1")
    if non_negative:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("Observed")
    ax.set_ylabel("Fitted")
    times = ", ".join(f"{t:g}" for t in sorted(targets["time"].unique()))
    ax.set_title(f"Observed vs fitted at {times}: {len(result.table):,} {unit_noun(result)}")
    ax.legend(frameon=False, fontsize=8, markerscale=3, ncol=2)
    return ax


def county_map(result: FitResult, parameter: str, shapefile: str | Path, ax=None):
    """A US county map of one fitted parameter, matching units by state and county FIPS."""
    import shapefile as shp

    ids = {c.lower(): c for c in result.unit_columns}
    if not {"state", "county"} <= ids.keys():
        raise ValueError("A county map needs unit id columns 'state' and 'county' (FIPS).")
    table = result.table.set_index([ids["state"], ids["county"]])[parameter]
    shapefile = Path(shapefile)
    polygons, colours = [], []
    with open(shapefile, "rb") as shp_file, open(shapefile.with_suffix(".dbf"), "rb") as dbf:
        reader = shp.Reader(shp=shp_file, dbf=dbf)
        fields = [f[0] for f in reader.fields[1:]]
        state_at, county_at = fields.index("StateFIPSN"), fields.index("CntyFIPSN")
        for shape_record in reader.iterShapeRecords():
            record, shape = shape_record.record, shape_record.shape
            key = (int(record[state_at]), int(record[county_at]))
            value = table.get(key, np.nan)
            points = np.asarray(shape.points)
            parts = list(shape.parts) + [len(points)]
            for a, b in zip(parts[:-1], parts[1:], strict=True):
                polygons.append(points[a:b])
                colours.append(value)
    colours = np.asarray(colours, dtype=float)
    ax = ax or plt.subplots(figsize=(12, 7))[1]
    lo, hi = np.nanquantile(colours, [0.02, 0.98])
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    collection = PolyCollection(polygons, array=np.ma.masked_invalid(colours), cmap=cmap,
                                edgecolors="none", linewidths=0)
    collection.set_clim(lo, hi)
    ax.add_collection(collection)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_axis_off()
    plt.colorbar(collection, ax=ax, shrink=0.6, label=parameter)
    ax.set_title(f"Fitted {parameter} by county (grey: no fit)")
    return ax


def write_figures(result: FitResult, out: str | Path, *, excluded: Sequence[str] = (),
                  map_parameter: str | None = None, shapefile: Path | None = None) -> list[Path]:
    """Write histogram.png, observed_vs_fitted.png and, for US counties with a
    shapefile, map.png into ``out``.  Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shown = default_histogram_parameters(result, excluded)
    drawings = [("histogram.png", lambda ax: parameter_histogram(result, shown, ax=ax),
                 (10, 6)),
                ("observed_vs_fitted.png", lambda ax: observed_vs_fitted(result, ax=ax), (7, 7))]
    if shapefile is not None and {"state", "county"} <= set(map(str.lower, result.unit_columns)):
        parameter = map_parameter or shown[0]
        drawings.append(("map.png", lambda ax: county_map(result, parameter, shapefile, ax=ax),
                         (12, 7)))
    written = []
    for name, draw, size in drawings:
        fig, ax = plt.subplots(figsize=size)
        try:
            draw(ax)
            fig.tight_layout()
            written.append(atomic_write(out / name, lambda p, fig=fig: fig.savefig(
                p, dpi=110, format="png")))
        finally:
            plt.close(fig)
    return written
