"""What to fit, as the user says it: parameters, targets, initial stocks, inputs, likelihood.

A :class:`Problem` names things as the user writes them (globs included) and is valid on
its own; :func:`sdfit.resolve.resolve` checks it against a model and a panel, once.  Every
value goes through :mod:`sdfit.settings`, whether it comes from Python, a spec file or the
command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import settings
from .exceptions import SpecError

LIKELIHOODS = settings.setting("targets", "likelihood").choices
LOSSES = settings.setting("targets", "loss").choices


@dataclass(frozen=True)
class Parameter:
    """One entry of the ``[parameters]`` table: an exact name or a glob, and its settings.

    Attributes
    ----------
    pattern : str
        A constant of the model (``"dec 3 loss rate"``), one element of a subscripted one
        (``"loss rate[dec 3]"``) or a glob (``"dec * loss rate"``).
    x0 : float, optional
        Starting value; default the model's own value.
    bounds : (float, float)
        Lower and upper bound; infinite by default.
    fixed : float, optional
        Hold the constant at this value instead of fitting it.
    ridge : float
        Weight λ >= 0 of a penalty pulling the parameter towards ``x0``: the residuals gain
        ``sqrt(λ) * (x - x0)``, so a deviation ``δ`` costs as much as a weighted target
        residual of ``sqrt(λ) * δ``.  It makes a parameter the targets cannot pin down take
        ``x0`` while barely moving those they can.
    shared : bool
        One value for all units instead of one per unit (fitted jointly, in process).
    scale : float, optional
        Spread of the extra starting points around ``x0`` (see ``Problem.starts``) when a
        bound is infinite.
    pooled : bool
        Each unit's value is drawn from a population (normal on the ``transform`` scale)
        whose mean and covariance are estimated with every unit's value (partial pooling).
    transform : str
        ``"none"``, ``"log"`` or ``"logit"``: the scale on which the population is normal.
    covariates : sequence of str
        Data columns constant within units, or unit id columns, on which the population
        mean of this pooled parameter depends linearly (a text or id column: one
        coefficient per level but the first).
    """

    pattern: str
    x0: float | None = None
    bounds: tuple[float, float] = (-math.inf, math.inf)
    fixed: float | None = None
    ridge: float = 0.0
    shared: bool = False
    scale: float | None = None
    pooled: bool = False
    transform: str = "none"
    covariates: Sequence[str] = ()

    def __post_init__(self):
        where = f"parameter '{self.pattern}'"
        if not isinstance(self.pattern, str) or not self.pattern.strip():
            raise SpecError(f"A parameter needs a name; got {self.pattern!r}.")
        bounds = settings.check("parameter", "bounds", self.bounds, where)
        if len(bounds) != 2:
            raise SpecError(f"The bounds of {where} must be [lower, upper]; got "
                            f"{list(bounds)}.")
        lo, hi = bounds
        object.__setattr__(self, "bounds", (lo, hi))
        for key in ("x0", "fixed", "ridge", "shared", "scale", "pooled", "transform"):
            default = settings.setting("parameter", key).default
            value = getattr(self, key)
            object.__setattr__(self, key, settings.check("parameter", key, value, where)
                               if value is not None else default)
        if not lo <= hi:
            raise SpecError(f"The bounds of {where} have lower {lo:g} > upper {hi:g}.")
        for what, value in (("x0", self.x0), ("fixed", self.fixed)):
            if value is not None and not lo <= value <= hi:
                raise SpecError(f"The {what} = {value:g} of {where} lies outside its bounds "
                                f"[{lo:g}, {hi:g}].")
        object.__setattr__(self, "covariates", settings.check(
            "parameter", "covariates", self.covariates or None, where) or ())
        if self.pooled and (self.shared or self.ridge or self.fixed is not None):
            what = "shared" if self.shared else "ridge" if self.ridge else "fixed"
            raise SpecError(f"Parameter '{self.pattern}' is pooled, so it cannot be {what} "
                            "too (a population prior replaces a ridge penalty).")
        if not self.pooled and (self.transform != "none" or self.covariates):
            raise SpecError(f"Parameter '{self.pattern}' has a transform or covariates, "
                            "which only a pooled parameter uses: add pooled = true.")
        if self.transform == "log" and self.bounds[0] < 0 or self.transform == "logit" and (
                self.bounds[0] < 0 or self.bounds[1] > 1):
            raise SpecError(f"Parameter '{self.pattern}' is pooled on the {self.transform} "
                            f"scale, so its bounds must lie within "
                            f"{'[0, inf]' if self.transform == 'log' else '[0, 1]'}.")
        if self.ridge and self.shared:
            raise SpecError(f"Parameter '{self.pattern}' is shared, and a ridge penalty on a "
                            "shared parameter is not supported; fix it or drop the ridge.")
        if self.fixed is not None and (self.ridge or self.shared):
            what = "ridge" if self.ridge else "shared"
            raise SpecError(f"Parameter '{self.pattern}' is fixed, so '{what}' has no effect; "
                            "drop one of them.")


@dataclass(frozen=True)
class Problem:
    """A calibration problem, independent of any particular model file or data file.

    Attributes
    ----------
    parameters : sequence of Parameter
    target_times : sequence of float, optional
        Only observations at these times are compared; default every observation.
    initial_time : float, optional
        Start the run here with the stocks taken from the data at this time.  Default: the
        model's INITIAL TIME, every stock from the model's own equations.
    initial_stocks : sequence of str, optional
        With ``initial_time``: the stocks taken from the data; default every stock the
        data has at that time.
    targets : sequence of str, optional
        Variables compared with the data; default every data variable the model also has.
    exclude : sequence of str
        Variables present in the data but not compared.
    weights : mapping of str to float
        Weight of each target variable's squared errors (default 1).
    aliases : mapping of str to str
        Data variable -> model variable, for data whose names differ from the model's:
        ``{"dec *": "population[dec *]"}`` reads ``dec_3`` as ``population[dec 3]``.
    inputs : mapping of str to str
        Model variable -> data column, per unit: a column constant within each unit gives
        the variable one value per unit; one that varies over time replaces the variable
        (a constant, a data variable or a lookup) by the unit's own time series,
        interpolated linearly and held at its ends.
    likelihood : str
        ``"gaussian"`` (weighted least squares), ``"lognormal"`` (errors on the log scale),
        ``"poisson"`` or ``"negative-binomial"`` (counts).
    dispersion : str
        Negative binomial only: one dispersion per ``"unit"``, or per unit and
        ``"variable"``.
    loss, f_scale : str, float
        A robust loss on the residuals (``"linear"``, ``"soft_l1"``, ``"huber"``,
        ``"cauchy"``, as SciPy's ``least_squares``) and its residual scale.
    starts : int
        Starting points per unit: the first is x0, the others a Latin hypercube over the
        bounds (or x0 ± scale where a bound is infinite); each unit keeps its best.
    seed : int
        Seed of the starting points (and of the model's random functions).
    pooling, pooling_samples, pooling_scale : str, int, str
        With pooled parameters: ``"foce"`` (first-order conditional estimation, the Laplace
        approximation) or ``"importance"`` (refined by importance sampling with
        ``pooling_samples`` draws per unit); the residual variance estimated or fixed at 1
        (``"auto"``: fixed for the Poisson likelihood's deviance, else estimated).

    Every name may be a variable or one element of a subscripted one
    (``"loss rate[dec 3]"``); a subscripted variable named whole stands for all its
    elements.
    """

    parameters: Sequence[Parameter]
    target_times: Sequence[float] | None = None
    initial_time: float | None = None
    initial_stocks: Sequence[str] | None = None
    targets: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    likelihood: str = "gaussian"
    dispersion: str = "unit"
    loss: str = "linear"
    f_scale: float = 1.0
    starts: int = 1
    seed: int = 0
    pooling: str = "foce"
    pooling_samples: int = 400
    pooling_scale: str = "auto"

    def __post_init__(self):
        params = self.parameters
        if isinstance(params, Parameter | Mapping) or not isinstance(params, Sequence):
            raise SpecError("The problem's parameters must be a list of Parameter; got "
                            f"{type(params).__name__}.")
        object.__setattr__(self, "parameters", tuple(
            p if isinstance(p, Parameter) else Parameter(**p) for p in params))
        if not self.parameters:
            raise SpecError("The problem names no parameter to fit.")
        check = settings.check
        object.__setattr__(self, "targets", check("targets", "variables", self.targets))
        object.__setattr__(self, "exclude", check("targets", "exclude", self.exclude) or ())
        object.__setattr__(self, "target_times", check("targets", "times", self.target_times))
        if self.target_times == ():
            raise SpecError("The problem's target times are empty; leave them out to compare "
                            "every observation.")
        object.__setattr__(self, "initial_time", check("initial", "time", self.initial_time))
        object.__setattr__(self, "initial_stocks", check("initial", "stocks",
                                                         self.initial_stocks))
        if self.initial_stocks is not None and self.initial_time is None:
            raise SpecError("Initial stocks from the data need the time to read them at: "
                            "give [initial] time.")
        for key in ("likelihood", "dispersion", "loss", "f_scale"):
            object.__setattr__(self, key, check("targets", key, getattr(self, key)))
        for key in ("starts", "seed"):
            object.__setattr__(self, key, check("fit", key, getattr(self, key)))
        for key, setting in (("pooling", "method"), ("pooling_samples", "samples"),
                             ("pooling_scale", "scale")):
            object.__setattr__(self, key, check("pooling", setting, getattr(self, key)))
        if any(p.pooled for p in self.parameters):
            if self.starts > 1 or self.has_shared:
                raise SpecError("A pooled fit estimates every unit at once from one start: "
                                "it takes neither several starts nor shared parameters.")
            if self.likelihood == "negative-binomial" or self.loss != "linear":
                raise SpecError("A pooled fit takes the gaussian, lognormal or Poisson "
                                "likelihood without a robust loss (the negative binomial's "
                                "dispersion is not estimated inside it).")
        if self.loss != "linear" and self.likelihood != "gaussian":
            raise SpecError(f"A robust loss ('{self.loss}') applies to the gaussian "
                            f"likelihood only, not to '{self.likelihood}'.")
        for name, weight in self.weights.items():
            if (isinstance(weight, bool) or not isinstance(weight, int | float)
                    or not (math.isfinite(weight) and weight >= 0)):
                raise SpecError(f"The weight of '{name}' must be a finite number >= 0; got "
                                f"{weight!r}.")
        for table, what in ((self.inputs, "input"), (self.aliases, "alias")):
            for key, value in table.items():
                if not isinstance(value, str) or not value.strip():
                    raise SpecError(f"The {what} '{key}' must name a "
                                    f"{'data column' if what == 'input' else 'model variable'}"
                                    f"; got {value!r}.")
        for pattern, target in self.aliases.items():
            if sum(map(pattern.count, "*?")) != sum(map(target.count, "*?")):
                raise SpecError(f"The alias '{pattern}' = '{target}' needs as many wildcards "
                                "on each side.")

    def __repr__(self) -> str:
        names = ", ".join(p.pattern for p in self.parameters)
        start = ("model's own initial stocks" if self.initial_time is None
                 else f"stocks from the data at {self.initial_time:g}")
        return (f"Problem(parameters=[{names}], likelihood={self.likelihood!r}, {start}"
                + (f", {self.starts} starts" if self.starts > 1 else "") + ")")

    @property
    def has_pooled(self) -> bool:
        return any(p.pooled for p in self.parameters)

    @property
    def has_shared(self) -> bool:
        return any(p.shared for p in self.parameters)
