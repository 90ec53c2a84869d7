"""Can the targets pin the parameters down?  Identifiability, rank and standard errors of
every unit's fit, from the Jacobian of its weighted residuals at the solution.

All units are diagnosed at once by the SVD of the stack of Jacobians: compiled
(``diagnostics.c``, one-sided Jacobi, and all of the per-unit arithmetic below with it)
when a C compiler is at hand, ``np.linalg.svd`` and NumPy otherwise (``SDFIT_NATIVE=0``;
the reference).
Each Jacobian's columns are first scaled to unit length, so the units of the
parameters do not matter (a rate and a population weigh alike).  Then, per unit:

* **rank**: singular values above ``RANK_RTOL`` times the largest count; fewer
  than the number of parameters means a direction in parameter space that
  leaves every residual unchanged (the *null space*).
* **condition**: largest over smallest singular value of the scaled Jacobian
  (infinite when there are fewer residuals than parameters).
* **<param>_nullspace**: length of the parameter's scaled axis inside the null
  space, from 0 (the targets fix it) to 1 (it changes no target at all).
* **<param>_identifiable**: ``nullspace <= NULL_TOL``.  Above it a step along the
  unidentified direction moves this parameter by more than 5 % of that step:
  its fitted value is an artefact of where the solver started.
* **<param>_stderr**, **<param>_ci_low**, **<param>_ci_high**: standard error
  and 95 % confidence interval from the Gauss–Newton covariance ``s² (JᵀJ)⁺``: for the
  gaussian family ``s² = SSE / (n - P)`` with the unit's n observations and P fitted
  parameters, and Student's t; for counts (Poisson and negative binomial deviance
  residuals) the scale is known, ``s² = 1``, and the interval normal.  NaN for
  non-identifiable parameters, and for all when ``n <= P`` with an unknown scale.

Ridge penalties are rows of the Jacobian too, so a parameter the targets cannot
pin down but its ridge does counts as identifiable; the summary then says that
its value comes from the penalty alone.  With shared parameters, per-unit
columns are diagnosed per unit given the shared values, and shared ones jointly
over all units through the Schur complement of the joint normal equations;
standard errors include the uncertainty of the shared values.
"""

from __future__ import annotations

import ctypes
import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import native
from .exceptions import IdentifiabilityWarning, warn_user

#: Singular values below this fraction of the largest (column-scaled) count as zero:
#: far above forward-difference noise (~1e-8), far below a real but weak direction.
RANK_RTOL = 1e-6
#: A parameter whose scaled axis has more than this length in the null space is flagged.
NULL_TOL = 0.05
CONFIDENCE = 0.95



@dataclass(frozen=True)
class Diagnostics:
    """Per-unit diagnostics of one block of parameters (arrays over N units, P params)."""

    rank: np.ndarray  # (N,)
    condition: np.ndarray  # (N,)
    nullspace: np.ndarray  # (N, P)
    identifiable: np.ndarray  # (N, P) bool
    variance: np.ndarray  # (N, P) diag of (JᵀJ)⁺, to be multiplied by s²


def diagnose(jacobian: np.ndarray, rank_rtol: float = RANK_RTOL,
             null_tol: float = NULL_TOL, block: int = 4096) -> Diagnostics:
    """Rank, condition, null-space components and unscaled variances of a stack of
    Jacobians ``(N, rows, P)``; units with non-finite Jacobians get NaN and False.
    Units are taken ``block`` at a time, so the SVD's temporaries stay bounded."""
    jac = np.asarray(jacobian, dtype=float)
    if len(jac) <= block:
        return _diagnose(jac, rank_rtol, null_tol)
    parts = [_diagnose(jac[i:i + block], rank_rtol, null_tol) for i in range(0, len(jac), block)]
    return Diagnostics(*(np.concatenate([getattr(d, f.name) for d in parts])
                         for f in dataclasses.fields(Diagnostics)))


def _diagnose(jac: np.ndarray, rank_rtol: float, null_tol: float) -> Diagnostics:
    n, rows, p = jac.shape
    library = _native(rows, p) if n and prepare(rows, p) else None
    if library is None:
        return _diagnose_numpy(jac, rank_rtol, null_tol)
    jac = np.ascontiguousarray(jac, dtype=float)
    d = Diagnostics(np.empty(n, np.int64), np.empty(n), np.empty((n, p)),
                    np.empty((n, p), bool), np.empty((n, p)))
    # units are independent: a share of them per core (ctypes releases the GIL)
    threads = min(native.threads(), -(-n // 256))
    bounds = [n * t // threads for t in range(threads + 1)]

    def part(t: int) -> None:
        lo = bounds[t]
        library.diagnose_stack(bounds[t + 1] - lo, jac[lo:].ctypes.data, rank_rtol, null_tol,
                               *(getattr(d, f.name)[lo:].ctypes.data
                                 for f in dataclasses.fields(Diagnostics)))

    list(native.pool().map(part, range(threads)) if threads > 1 else map(part, [0]))
    return d


def _diagnose_numpy(jac: np.ndarray, rank_rtol: float, null_tol: float) -> Diagnostics:
    """The reference (``diagnostics.c`` does the same per unit)."""
    n, rows, p = jac.shape
    finite = np.isfinite(jac).all(axis=(1, 2))
    jac = np.where(finite[:, None, None], jac, 0.0)
    norms = np.sqrt(np.einsum("nrp,nrp->np", jac, jac))
    scale = np.where(norms > 0, norms, 1.0)  # a zero column stays zero: wholly null
    _, sv, vh = np.linalg.svd(jac / scale[:, None, :], full_matrices=True)
    # sv: (N, k), k = min(rows, P); pad to P singular values, structural zeros last
    sv = np.concatenate([sv, np.zeros((n, p - sv.shape[1]))], axis=1)
    kept = sv > rank_rtol * sv[:, :1]
    rank = kept.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        condition = np.where(sv[:, -1] > 0, sv[:, 0] / sv[:, -1], np.inf)
        inverse = np.where(kept, 1.0 / sv, 0.0)
    nullspace = np.sqrt(np.einsum("nk,nkp->np", ~kept, vh**2))
    variance = np.einsum("nk,nkp->np", inverse**2, vh**2) / scale**2
    identifiable = nullspace <= null_tol
    variance = np.where(identifiable, variance, np.nan)
    return Diagnostics(
        rank=np.where(finite, rank, -1),
        condition=np.where(finite, condition, np.nan),
        nullspace=np.where(finite[:, None], nullspace, np.nan),
        identifiable=identifiable & finite[:, None],
        variance=np.where(finite[:, None], variance, np.nan),
    )


def prepare(rows: int, p: int) -> bool:
    """Build (or load) the compiled diagnostics of ``rows`` x ``p`` Jacobians now; True
    when they will run."""
    return rows * p <= 1024 and p <= 32 and _native(rows, p) is not None


@cache
def _native(rows: int, p: int):
    """The compiled diagnostics (``diagnostics.c``) of ``rows`` x ``p`` matrices, or None
    (NumPy's LAPACK then).  Small matrices only: the buffers live on the C stack."""
    source = (Path(__file__).parent / "diagnostics.c").read_text()
    library = native.library(f"#define ROWS {rows}\n#define P {p}\n{source}")
    if library is not None:
        library.diagnose_stack.restype = None
        library.diagnose_stack.argtypes = ([ctypes.c_int64, ctypes.c_void_p, ctypes.c_double,
                                            ctypes.c_double] + [ctypes.c_void_p] * 5)
    return library


def unit_diagnostics(jacobian: np.ndarray, objective: np.ndarray, x: np.ndarray,
                     params: list[str], n_obs: np.ndarray, problem: dict,
                     rank_rtol: float = RANK_RTOL, null_tol: float = NULL_TOL
                     ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Diagnostic columns of independent units (one chunk at a time is enough), and per
    ridge-penalised parameter the number of these units it is identifiable in only thanks
    to its penalty.  ``objective`` is each unit's sum of squared data residuals, ``n_obs``
    its number of observations, ``problem`` :meth:`Resolved.describe`."""
    diag = diagnose(jacobian, rank_rtol, null_tol)
    n_slots = jacobian.shape[1] - len(problem.get("ridge", {}))
    s2, dof = _scale(problem, objective, n_obs - len(params))
    penalty_only = _penalty_only(jacobian, n_slots, params, problem, diag, rank_rtol, null_tol)
    return _columns(diag, s2, dof, x, params), penalty_only


def scale_known(problem: dict) -> bool:
    """Deviance residuals of counts have variance 1: no scale to estimate."""
    return problem.get("likelihood") in ("poisson", "negative-binomial")


def _scale(problem: dict, objective: np.ndarray, dof: np.ndarray):
    """``s²`` and the degrees of freedom of its estimate (infinite when the scale is known)."""
    dof = np.asarray(dof, dtype=float)
    if scale_known(problem):
        return np.ones(len(objective)), np.full(len(objective), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(dof > 0, objective / np.where(dof > 0, dof, 1), np.nan)
    return s2, dof


def add_diagnostics(result, jacobian: np.ndarray, n_obs: np.ndarray,
                    rank_rtol: float = RANK_RTOL, null_tol: float = NULL_TOL):
    """Append the diagnostic columns of all units at once (needed when some parameters
    are shared, which couples the units), then summarise as :func:`summarise` does."""
    problem = result.run.problem
    params = result.parameters
    shared = np.isin(params, problem.get("shared", []))
    objective = result.table["objective"].to_numpy()
    x = result.table[params].to_numpy(float)
    n_slots = jacobian.shape[1] - len(problem.get("ridge", {}))
    if not shared.any():
        columns, penalty_only = unit_diagnostics(jacobian, objective, x, params, n_obs,
                                                 problem, rank_rtol, null_tol)
    else:
        local = diagnose(jacobian[:, :, ~shared], rank_rtol, null_tol)
        diag, s2, dof = _with_shared(jacobian, shared, local, objective, n_obs, problem,
                                     rank_rtol, null_tol)
        columns = _columns(diag, s2, dof, x, params)
        penalty_only = _penalty_only(jacobian, n_slots, params, problem, diag, rank_rtol,
                                     null_tol)
    result.table = pd.concat([result.table.drop(columns=list(columns), errors="ignore"),
                              pd.DataFrame(columns, index=result.table.index)], axis=1)
    return summarise(result, penalty_only, rank_rtol, null_tol)


def summarise(result, penalty_only: dict[str, int], rank_rtol: float = RANK_RTOL,
              null_tol: float = NULL_TOL):
    """Put the identifiability summary of the table's diagnostic columns in
    ``result.run.identifiability`` and warn when some parameters are not identifiable."""
    summary = _summarise(result, penalty_only, rank_rtol, null_tol)
    result.run = dataclasses.replace(result.run, identifiability=summary)
    if summary.warning:
        warn_user(summary.warning, IdentifiabilityWarning)
    return result


def _columns(diag: Diagnostics, s2: np.ndarray, dof: np.ndarray, x: np.ndarray,
             params: list[str]) -> dict[str, np.ndarray]:
    stderr = np.sqrt(s2[:, None] * diag.variance)
    half = _quantile(np.broadcast_to(np.asarray(dof, dtype=float), (len(s2),)))[:, None] \
        * stderr
    columns = {"rank": diag.rank, "condition": diag.condition}
    for j, name in enumerate(params):
        columns |= {f"{name}_identifiable": diag.identifiable[:, j],
                    f"{name}_nullspace": diag.nullspace[:, j],
                    f"{name}_stderr": stderr[:, j],
                    f"{name}_ci_low": x[:, j] - half[:, j],
                    f"{name}_ci_high": x[:, j] + half[:, j]}
    return columns


def _quantile(dof: np.ndarray) -> np.ndarray:
    """The two-sided CONFIDENCE quantile of Student's t with ``dof`` degrees of freedom
    (normal where infinite; NaN where none).  SciPy is imported only when some unit has a
    finite number of degrees of freedom: many problems (the census) have none."""
    q = 0.5 + CONFIDENCE / 2
    out = np.full(len(dof), np.nan)
    out[np.isinf(dof)] = _NORMAL_QUANTILE
    finite = np.isfinite(dof) & (dof > 0)
    if finite.any():
        from scipy.special import stdtrit  # Student's t without importing scipy.stats

        out[finite] = stdtrit(dof[finite], q)
    return out


#: The normal distribution's 97.5 % quantile (CONFIDENCE = 0.95; checked by the tests).
_NORMAL_QUANTILE = 1.959963984540054


def _with_shared(jac, shared, local: Diagnostics, objective, n_obs, problem, rank_rtol,
                 null_tol):
    """Joint diagnostics when some parameters are shared by all units.

    With ``A_i`` the per-unit and ``B_i`` the shared columns of unit i, the shared
    parameters' information is the Schur complement ``S = Σ B_iᵀ (I - A_i A_i⁺) B_i``
    (what is left once each unit's own parameters have absorbed what they can).
    """
    n = len(jac)
    finite = np.isfinite(jac).all(axis=(1, 2))
    A, B = jac[finite][:, :, ~shared], jac[finite][:, :, shared]
    G = np.linalg.pinv(A, rcond=rank_rtol) @ B  # (n, L, S): A⁺B
    schur = np.einsum("nrs,nrt->st", B, B) - np.einsum("nrs,nrl,nlt->st", B, A, G)
    whole = diagnose(_factor(schur)[None], rank_rtol, null_tol)
    dof = int(np.sum(n_obs[finite] - int((~shared).sum()))) - int(shared.sum())
    s2_all = np.nansum(objective[finite]) / dof if dof > 0 else np.nan
    if scale_known(problem):
        s2_all, dof = 1.0, np.inf
    inverse = np.linalg.pinv(schur, rcond=rank_rtol, hermitian=True)
    # a per-unit parameter also inherits the uncertainty of the shared values
    extra = np.einsum("nls,st,nlt->nl", G, inverse, G)
    p = jac.shape[2]
    identifiable = np.zeros((n, p), bool)
    nullspace = np.full((n, p), np.nan)
    variance = np.full((n, p), np.nan)
    identifiable[:, ~shared] = local.identifiable
    nullspace[:, ~shared] = local.nullspace
    local_var = local.variance.copy()
    local_var[finite] += extra
    variance[:, ~shared] = local_var
    identifiable[np.ix_(finite, shared)] = whole.identifiable[0]
    nullspace[np.ix_(finite, shared)] = whole.nullspace[0]
    variance[np.ix_(finite, shared)] = whole.variance[0]
    diag = Diagnostics(local.rank, local.condition, nullspace, identifiable, variance)
    return diag, np.where(finite, s2_all, np.nan), np.full(n, dof, dtype=float)


def _factor(matrix: np.ndarray) -> np.ndarray:
    """R with RᵀR = ``matrix`` (symmetric positive semi-definite), so that the shared block
    is diagnosed like a Jacobian; round-off negative eigenvalues count as zero."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return np.sqrt(np.clip(values, 0, None))[:, None] * vectors.T


def _penalty_only(jac, n_slots, params, problem, diag, rank_rtol, null_tol) -> dict:
    """Per ridge-penalised parameter, how many units have it identifiable only thanks to
    its penalty (identifiable with the penalty rows, not from the target rows alone)."""
    ridged = [params.index(p) for p in problem.get("ridge", {}) if p in params]
    if not ridged or jac.shape[1] == n_slots:
        return {}
    shared = set(problem.get("shared", []))
    local = [j for j, p in enumerate(params) if p not in shared]
    targets_only = diagnose(jac[:, :n_slots, local], rank_rtol, null_tol)
    out = {}
    for j in ridged:
        if params[j] in shared:
            continue
        k = local.index(j)
        out[params[j]] = int((diag.identifiable[:, j] & ~targets_only.identifiable[:, k]).sum())
    return out


@dataclass(frozen=True)
class Identifiability:
    """What the diagnostics say about a whole fit (``FitResult.run.identifiability``)."""

    rank_rtol: float
    null_tol: float
    confidence: float
    dof: int | None  # residual degrees of freedom per unit (None when they differ)
    units: int  # units diagnosed
    full_rank: int
    units_affected: int
    not_identifiable: dict[str, int]
    penalty_only: dict[str, int]
    stderr_note: str
    summary: list[str]  # the lines the CLI prints
    warning: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _summarise(result, penalty_only, rank_rtol, null_tol) -> Identifiability:
    problem = result.run.problem
    params = result.parameters
    table = result.table
    rank = table["rank"].to_numpy()
    # column by column: selecting a sub-table would build a DataFrame first
    identifiable = np.column_stack([table[f"{p}_identifiable"].to_numpy(bool) for p in params])
    assessed = rank >= 0
    n = int(assessed.sum())
    shared_params = problem.get("shared", [])
    p_local = len(params) - len(shared_params)
    n_obs = table["n_obs"].to_numpy()
    # distinct times without a Python float per target row (9 million at a million units),
    # nor the sorted copy of them all np.unique makes: hashed, then the few sorted
    times = np.sort(pd.unique(result.targets["time"].to_numpy())).tolist()
    which = ("the " + ", ".join(f"{t:g}" for t in times) + " targets" if len(times) <= 4
             else "their observations")
    not_identifiable = {p: int((~identifiable[assessed, j]).sum())
                        for j, p in enumerate(params)}
    full = int((rank[assessed] == p_local).sum())
    counts = (f"{int(n_obs.min())} targets" if n_obs.min() == n_obs.max()
              else f"{int(n_obs.min())}-{int(n_obs.max())} observations")
    lines = [f"Identifiability: {full} of {n} units have full rank "
             f"({p_local} per-unit parameters, {counts}"
             + (f" + {len(problem.get('ridge', {}))} ridge penalties" if problem.get("ridge")
                else "") + ")."]
    flagged = [p for p in params if not_identifiable[p]]
    unit_columns, examples = result.unit_columns, {}  # often the same unit for several
    for p in flagged:
        first = np.flatnonzero(assessed & ~identifiable[:, params.index(p)])[0]
        if first not in examples:
            examples[first] = ", ".join(f"{c}={table[c].iat[first]}" for c in unit_columns)
        example = examples[first]
        lines.append(f"  {p} is not identifiable from {which} in {not_identifiable[p]} of {n} "
                     f"units (first: {example}): it moves along a direction that leaves "
                     "every target unchanged.")
    for p, count in penalty_only.items():
        if count:
            lines.append(f"  {p} is set by its ridge penalty alone in {count} of {n} units: "
                         f"{which} do not identify it.")
    dofs = n_obs - p_local
    if shared_params:
        dof = int(np.sum(dofs[assessed])) - len(shared_params)
        dofs = np.full(len(dofs), dof)
    if problem.get("pooled"):
        note = ("Standard errors and intervals: the pooled fit's posterior (each unit's data "
                "and the population together).")
    elif scale_known(problem):
        note = (f"Standard errors and {CONFIDENCE:.0%} intervals from the Fisher information "
                f"of the {problem['likelihood']} likelihood, for identifiable parameters.")
    elif (dofs <= 0).all():
        note = (f"Standard errors unavailable: {counts} per unit for {p_local} per-unit "
                "parameters leave no degrees of freedom to estimate the residual variance.")
    else:
        spread = (f"{int(dofs.min())}" if dofs.min() == dofs.max()
                  else f"n - {p_local} per unit")
        note = (f"Standard errors and {CONFIDENCE:.0%} intervals from s² = SSE/{spread} "
                "for identifiable parameters"
                + (f" ({int((dofs <= 0).sum())} units have too few observations)."
                   if (dofs <= 0).any() else "."))
    lines.append(note)
    units_affected = int((~identifiable[assessed]).any(axis=1).sum())
    warning = ""
    if flagged:
        warning = (f"{units_affected} of {n} units have parameters that are not identifiable "
                   f"from {which}: " + ", ".join(f"{p} ({not_identifiable[p]} units)"
                                                 for p in flagged)
                   + ". Their fitted values are an artefact of the starting point; fix them, "
                   "add a ridge penalty or more targets (see the *_identifiable columns).")
    dof = int(dofs[0]) if len(dofs) and (dofs == dofs[0]).all() else None
    return Identifiability(rank_rtol, null_tol, CONFIDENCE, dof, n, full, units_affected,
                           not_identifiable, dict(penalty_only), note, lines, warning)
