"""FitResult: the per-unit table of a fit, its targets, and how they are written to disk."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

OUTCOME_COLUMNS = ["sse", "success", "status", "message", "nfev"]


@dataclass
class FitResult:
    """Outcome of :func:`sdfit.fit`.

    Attributes
    ----------
    table : DataFrame
        One row per unit: the unit id columns, one column per fitted parameter
        (named as in the model), then ``sse, success, status, message, nfev``,
        then the diagnostics of :mod:`sdfit.diagnostics` (``rank``, ``condition``,
        ``<param>_identifiable``, ``_nullspace``, ``_stderr``, ``_ci_low``, ``_ci_high``).
    targets : DataFrame
        Long table of every target: unit ids, ``time``, ``variable``,
        ``observed`` and ``fitted``.
    parameters : list of str
        The fitted parameters, in table order.
    dropped : DataFrame
        Units skipped because their data was invalid, with the reason.
    info : dict
        How the fit was run: model, data, backend, workers, wall time...
    """

    table: pd.DataFrame
    targets: pd.DataFrame
    parameters: list[str]
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    info: dict = field(default_factory=dict)

    @property
    def unit_columns(self) -> list[str]:
        """The unit id columns: those before the first parameter column."""
        return list(self.table.columns[:self.table.columns.get_loc(self.parameters[0])])

    @property
    def n_failed(self) -> int:
        return int((~self.table["success"]).sum())

    def params(self) -> pd.DataFrame:
        """Fitted parameters indexed by unit."""
        return self.table.set_index(self.unit_columns)[self.parameters]

    def summary(self) -> str:
        """A few lines for the terminal: counts, failures, SSE quantiles, wall time."""
        n, failed = len(self.table), self.n_failed
        lines = [f"Fitted {n} units: {n - failed} succeeded, {failed} failed."]
        if self.info.get("wall_time") is not None:
            lines[0] += (f" Fit time {self.info['wall_time']:.2f} s "
                         f"({self.info.get('backend', '?')}, {self.info.get('workers', '?')} "
                         "workers).")
        if failed:
            reasons = self.table.loc[~self.table["success"], "message"].value_counts()
            lines += [f"  {count} x {reason}" for reason, count in reasons.items()]
        if len(self.dropped):
            lines.append(f"Dropped {len(self.dropped)} units with invalid data "
                         "(listed in dropped.csv):")
            ids = [c for c in self.dropped.columns if c not in ("line", "reason")]
            for _, unit in self.dropped.head(5).iterrows():
                where = ", ".join(f"{c}={unit[c]}" for c in ids)
                lines.append(f"  line {unit['line']} ({where}): {unit['reason']}")
            if len(self.dropped) > 5:
                lines.append(f"  and {len(self.dropped) - 5} more")
        q = self.table["sse"].quantile([0, 0.5, 0.9, 0.99, 1]).to_numpy()
        lines.append("SSE quantiles: min {:.3g}, median {:.3g}, 90% {:.3g}, 99% {:.3g}, "
                     "max {:.3g}".format(*q))
        lines += self.info.get("identifiability", {}).get("summary", [])
        return "\n".join(lines)

    # -- files ------------------------------------------------------------------------
    def write(self, out: str | Path) -> list[Path]:
        """Write params.csv (and params.parquet with pyarrow), targets.csv, dropped.csv
        and run.json into ``out``, each atomically.  Returns the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [write_csv(self.table, out / "params.csv"),
                   write_csv(self.targets, out / "targets.csv")]
        if _has_pyarrow():
            written.append(atomic_write(out / "params.parquet",
                                        lambda p: self.table.to_parquet(p, index=False)))
        if len(self.dropped):
            written.append(write_csv(self.dropped, out / "dropped.csv"))
        else:  # not one left by an earlier run in the same folder
            (out / "dropped.csv").unlink(missing_ok=True)
        written.append(atomic_write(out / "run.json", lambda p: Path(p).write_text(
            json.dumps(self.info, indent=2, default=str) + "\n")))
        return written


def fingerprint(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or None when ``path`` is not a file (e.g. an in-memory
    panel), so a results folder says exactly which inputs it came from."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as CSV atomically, floats with round-trip precision."""
    return atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format="%.17g"))


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_csv`, floats exactly as written."""
    # pandas 3 parses floats exactly by default and deprecates the option
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **exact)


def atomic_write(path: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place,
    so a crash never leaves a half-written file under the final name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
