"""What to fit: parameters, initial stocks and targets, given in Python or a TOML spec.

A :class:`Problem` names things as the user writes them (globs included).
:meth:`Problem.resolve` checks it against a model and a panel, once, and
returns a :class:`FitTask` (model identifiers, bounds, layout of the
residuals) and the per-unit arrays it needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .data import Panel
from .exceptions import DataError, ModelError, SpecError
from .model.runtime.program import TIME_RPREC, BatchModel
from .model.runtime.pysd_engine import PysdModel
from .names import canonical, did_you_mean, match_pattern
from .task import FitTask, UnitData


@dataclass(frozen=True)
class Parameter:
    """One entry of the ``[parameters]`` table: an exact name or a glob, and its settings.

    Attributes
    ----------
    pattern : str
        A constant of the model (``"dec 3 loss rate"``) or a glob (``"dec * loss rate"``).
    x0 : float, optional
        Starting value; default the model's own value.
    bounds : (float, float)
        Lower and upper bound; infinite by default.
    fixed : float, optional
        Hold the constant at this value instead of fitting it.
    ridge : float
        Weight λ >= 0 of a penalty pulling the parameter towards ``x0``: the
        residuals gain ``sqrt(λ) * (x - x0)``, so a deviation ``δ`` costs as much
        as a weighted target residual of ``sqrt(λ) * δ`` (λ is in squared residual
        units per squared parameter unit).  It makes a parameter the targets cannot
        pin down take ``x0`` while barely moving those they can.
    shared : bool
        One value for all units instead of one per unit (fitted jointly, in
        process, by :mod:`sdfit.solvers.shared`).
    """

    pattern: str
    x0: float | None = None
    bounds: tuple[float, float] = (-math.inf, math.inf)
    fixed: float | None = None
    ridge: float = 0.0
    shared: bool = False

    def __post_init__(self):
        lo, hi = (float(b) for b in self.bounds)
        object.__setattr__(self, "bounds", (lo, hi))
        if not lo <= hi:
            raise SpecError(f"The bounds of parameter '{self.pattern}' have lower {lo:g} > "
                            f"upper {hi:g}.")
        for what, value in (("x0", self.x0), ("fixed", self.fixed)):
            if value is not None and not lo <= value <= hi:
                raise SpecError(f"The {what} = {value:g} of parameter '{self.pattern}' lies "
                                f"outside its bounds [{lo:g}, {hi:g}].")
        ridge = float(self.ridge)
        object.__setattr__(self, "ridge", ridge)
        if not (math.isfinite(ridge) and ridge >= 0):
            raise SpecError(f"The ridge of parameter '{self.pattern}' must be a finite number "
                            f">= 0; got {self.ridge}.")
        if ridge and self.shared:
            raise SpecError(f"Parameter '{self.pattern}' is shared, and a ridge penalty on a "
                            "shared parameter is not supported; fix it or drop the ridge.")
        if self.fixed is not None and (ridge or self.shared):
            what = "ridge" if ridge else "shared"
            raise SpecError(f"Parameter '{self.pattern}' is fixed, so '{what}' has no effect; "
                            "drop one of them.")


@dataclass(frozen=True)
class Problem:
    """A calibration problem, independent of any particular model file or data file.

    Attributes
    ----------
    parameters : sequence of Parameter
    target_times : sequence of float
        Times at which model outputs are compared with the data.
    initial_time : float, optional
        Start the model here, with its stocks taken from the data at this time;
        default the model's INITIAL TIME.
    initial_stocks : sequence of str, optional
        Stocks initialised from the data; default every stock the data has at
        the initial time.
    targets : sequence of str, optional
        Variables compared; default every data variable the model also has.
    exclude : sequence of str
        Variables present in the data but not fitted.
    weights : mapping of str to float
        Weight of each target's squared errors (default 1).
    aliases : mapping of str to str
        Data variable -> model variable, for data whose names differ from the model's:
        ``{"dec *": "population[dec *]"}`` reads the data's ``dec_3`` as the element
        ``population[dec 3]`` (each ``*`` stands for what it matched).  Without an
        alias a data variable ``name[element]`` is that element of ``name``.

    Every name may be a variable or one element of a subscripted one
    (``"loss rate[dec 3]"``); a subscripted variable named whole stands for all its
    elements (a parameter ``loss rate`` fits each element separately, reported as
    ``loss rate[dec 1]``, ...).
    """

    parameters: Sequence[Parameter]
    target_times: Sequence[float]
    initial_time: float | None = None
    initial_stocks: Sequence[str] | None = None
    targets: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "parameters", tuple(
            p if isinstance(p, Parameter) else Parameter(**p) for p in self.parameters))
        object.__setattr__(self, "target_times", tuple(float(t) for t in
                                                       np.atleast_1d(self.target_times)))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if not self.parameters:
            raise SpecError("The problem names no parameter to fit.")
        if not self.target_times:
            raise SpecError("The problem names no target time.")
        for pattern, target in self.aliases.items():
            if sum(map(pattern.count, "*?")) != sum(map(target.count, "*?")):
                raise SpecError(f"The alias '{pattern}' = '{target}' needs as many wildcards "
                                "on each side.")
        for name, weight in self.weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise SpecError(f"The weight of '{name}' must be a finite number >= 0; got "
                                f"{weight}.")

    # -- resolution -------------------------------------------------------------------
    def resolve(self, model: BatchModel | PysdModel, panel: Panel) -> tuple[FitTask, UnitData]:
        """Check the problem against ``model`` and ``panel`` and lay out the arrays.

        Raises
        ------
        SpecError
            A parameter, stock or target does not exist, or times are off the grid.
        DataError
            The data lacks a needed time or variable.
        """
        free, fixed = self._parameters(model)
        start = model.initial_time if self.initial_time is None else float(self.initial_time)
        dt = model.time_step
        offset = (start - model.initial_time) / dt
        if abs(offset - round(offset)) > TIME_RPREC:
            raise SpecError(f"Initial time {start:g} is not on the model's TIME STEP grid "
                            f"({model.initial_time:g} + k * {dt:g}).")
        start_data = panel.time(start)
        names = _data_names(panel, self.aliases)
        stocks = self._stocks(model, panel, start_data, names)
        targets = self._targets(model, panel, names)
        times = [panel.time(t) for t in self.target_times]
        for t in times:
            steps = (t - start) / dt
            if steps < -TIME_RPREC or abs(steps - round(steps)) > TIME_RPREC:
                raise SpecError(f"Target time {t:g} is not on the model's TIME STEP grid "
                                f"({start:g} + k * {dt:g}, k >= 0).")
        columns = [(t, names[_key(v)]) for t in times for v in targets]
        missing = [c for c in columns if not panel.has(*c)]
        if missing:
            t, v = missing[0]
            raise DataError(f"Data file '{panel.source}' has no column for '{v}' at time {t:g}.")
        weights = np.array([self._weight(model, v) for _ in times for v in targets])
        params = [model.element(p) for p, _ in free]
        target_vars = [model.element(v) for v in targets]
        recorded = list(dict.fromkeys(var.ident for var, _ in target_vars))
        defaults = {}
        for var, _ in params + [model.element(p) for p, _ in fixed]:
            if var.dims and var.ident not in defaults:
                defaults[var.ident] = np.array(model.constant_array(var.name))
        for name, spec in fixed:
            var, index = model.element(name)
            if index:
                defaults[var.ident][(0,) + index] = spec.fixed
        task = FitTask(
            model=model,
            parameters=tuple(p for p, _ in free),
            idents=tuple(var.ident for var, _ in params),
            x0=np.array([s.x0 if s.x0 is not None else model.constant_value(p)
                          for p, s in free]),
            lower=np.array([s.bounds[0] for _, s in free]),
            upper=np.array([s.bounds[1] for _, s in free]),
            fixed={model.variable(p).ident: s.fixed for p, s in fixed
                   if not model.element(p)[1]},
            stocks=tuple(stocks),
            stock_idents=tuple(model.element(s)[0].ident for s in stocks),
            targets=tuple((t, v) for t in times for v in targets),
            target_idents=tuple(recorded),
            target_times=tuple(times),
            start_time=start,
            sqrt_weights=np.sqrt(weights),
            ridge=np.array([s.ridge for _, s in free]),
            shared=np.array([s.shared for _, s in free]),
            elements=tuple(index for _, index in params),
            stock_elements=tuple(model.element(s)[1] for s in stocks),
            target_columns=tuple((recorded.index(var.ident), index)
                                 for var, index in target_vars),
            defaults=defaults,
            fixed_names={p: s.fixed for p, s in fixed},
            shapes={var.ident: model.shape(var.name) for var, index in
                    [model.element(s) for s in stocks] if index},
        )
        data = UnitData(
            initial=panel.values([(start_data, names[_key(s)]) for s in stocks]),
            observed=panel.values(columns),
        )
        return task, data

    def _parameters(self, model: BatchModel | PysdModel):
        """(name, Parameter) pairs of free and fixed constants (elements of subscripted
        ones).  An element's own entry takes precedence over its variable's, an exact name
        over a glob that also matches it; entries of the same kind may not overlap."""
        constants = model.constants
        elements = {e: c for c in constants for e in model.elements(c)}
        chosen: dict[str, Parameter] = {}
        for spec in sorted(self.parameters, key=lambda p: _specificity(p.pattern)):
            names = [e for c in match_pattern(spec.pattern, constants)
                     for e in model.elements(c)]
            if not names and _is_glob(spec.pattern):
                names = match_pattern(spec.pattern, list(elements))
            elif not names:
                names = [e for e in elements if _key(e) == _key(spec.pattern)]
            if not names:
                others = match_pattern(spec.pattern, model.names())
                if others:
                    raise SpecError(f"Parameter '{spec.pattern}' matches '{others[0]}', which is "
                                    f"not a constant of model '{model.name}' (it is a "
                                    f"{model.variable(others[0]).kind}).")
                raise SpecError(f"Parameter '{spec.pattern}' matches no constant of model "
                                f"'{model.name}'.{did_you_mean(spec.pattern, constants)}")
            for name in names:
                earlier = chosen.get(name)
                if earlier is not None and (_specificity(earlier.pattern)
                                            == _specificity(spec.pattern)):
                    raise SpecError(f"Constant '{name}' is matched by both '{earlier.pattern}' "
                                    f"and '{spec.pattern}'.")
                chosen.setdefault(name, spec)
        ordered = [(name, chosen[name]) for name in elements if name in chosen]
        free = [(n, p) for n, p in ordered if p.fixed is None]
        if not free:
            raise SpecError("Every parameter is fixed: there is nothing to fit.")
        return free, [(n, p) for n, p in ordered if p.fixed is not None]

    def _stocks(self, model: BatchModel | PysdModel, panel: Panel, start: float,
                names: dict[str, str]) -> list[str]:
        if self.initial_stocks is None:
            stocks = [e for s in model.stocks for e in model.elements(s)
                      if _key(e) in names and panel.has(start, names[_key(e)])]
        else:
            stocks = []
            for name in self.initial_stocks:
                var = _model_name(model, name, "stock")
                if model.element(var)[0].kind != "stock":
                    raise SpecError(f"Initial value '{name}' is not a stock of model "
                                    f"'{model.name}'.{did_you_mean(name, model.stocks)}")
                chosen = model.elements(var) if "[" not in var else [var]
                for element in chosen:
                    if _key(element) not in names:
                        panel.variable(element)  # raises with close matches
                stocks += chosen
        for stock in {model.element(s)[0].name for s in stocks if "[" in s}:
            given = sum(model.element(s)[0].name == stock for s in stocks)
            if given < len(model.elements(stock)):
                raise SpecError(f"The data give {given} of the {len(model.elements(stock))} "
                                f"elements of the stock '{stock}' at the initial time; give "
                                "all of them (or none).")
        return stocks

    def _targets(self, model: BatchModel | PysdModel, panel: Panel,
                 names: dict[str, str]) -> list[str]:
        """Target elements, named as the model names them."""
        data_of = {}  # model element name -> data variable
        for key, data_name in names.items():
            element = _element_name(model, key)
            if element is not None:
                data_of[element] = data_name
        known = (set(map(_key, model.names())) | set(map(_key, panel.variables))
                 | set(map(_key, data_of)))
        for name in self.exclude:
            if _key(name) not in known:
                raise SpecError(f"Excluded variable '{name}' is in neither the model nor the "
                                f"data.{did_you_mean(name, model.names() + panel.variables)}")
        excluded = set(map(_key, self.exclude))

        def kept(element: str) -> bool:
            whole = model.element(element)[0].name
            return not {_key(element), _key(whole), _key(data_of.get(element, element))
                        } & excluded

        if self.targets is None:
            targets = [e for e in data_of if kept(e)]
        else:
            targets = []
            for name in self.targets:
                var = _model_name(model, name, "target")
                chosen = model.elements(var) if "[" not in var else [var]
                targets += [e for e in chosen if kept(e)]
            for name in targets:
                if name not in data_of:
                    panel.variable(name)  # raises with close matches
        if not targets:
            raise SpecError(f"No data variable of '{panel.source}' names a variable of model "
                            f"'{model.name}': there is nothing to compare.")
        for name in self.weights:
            wholes = {canonical(model.element(t)[0].name) for t in targets}
            if canonical(name) not in set(map(canonical, targets)) | wholes:
                raise SpecError(f"Weight given for '{name}', which is not a target."
                                f"{did_you_mean(name, targets)}")
        return targets

    def _weight(self, model: BatchModel | PysdModel, name: str) -> float:
        """The weight of a target element: its own, else its variable's, else 1."""
        whole = model.element(name)[0].name
        for key in (name, whole):
            for pattern, weight in self.weights.items():
                if canonical(pattern) == canonical(key):
                    return float(weight)
        return 1.0


def _model_name(model: BatchModel | PysdModel, name: str, what: str) -> str:
    """The model's spelling of a variable or of one element of it."""
    try:
        var, index = model.element(name)
        return _element_name(model, _key(name)) if index else var.name
    except ModelError:
        raise SpecError(f"The {what} '{name}' is not a variable of model '{model.name}'."
                        f"{did_you_mean(name, model.names())}") from None


def _key(name: str) -> str:
    """Comparison key of a variable or element name (``"Pop[dec_1, B]"`` ->
    ``"pop[dec 1,b]"``)."""
    return re.sub(r"\s*([\[\],])\s*", r"\1", canonical(name))


def _data_names(panel: Panel, aliases: Mapping[str, str]) -> dict[str, str]:
    """Model-side key -> data variable, through the problem's aliases (globs whose ``*``
    and ``?`` carry over to the model name)."""
    compiled = []
    for pattern, target in aliases.items():
        regex = "".join("(.*)" if c == "*" else "(.)" if c == "?" else re.escape(c)
                        for c in _key(pattern))
        compiled.append((re.compile(regex), _key(target)))
    names = {}
    for variable in panel.variables:
        key = _key(variable)
        for regex, target in compiled:
            match = regex.fullmatch(key)
            if match:
                pieces = re.split(r"[*?]", target)
                key = pieces[0] + "".join(g + p for g, p in zip(match.groups(), pieces[1:],
                                                                strict=True))
                break
        names[key] = variable
    return names


def _element_name(model: BatchModel | PysdModel, key: str) -> str | None:
    """The model's own spelling of a variable or element key, or None."""
    try:
        var, index = model.element(key)
    except ModelError:
        return None
    if not index:
        return var.name if not var.dims else None
    return model.elements(var.name)[int(np.ravel_multi_index(index, model.shape(var.name)))]


def _specificity(pattern: str) -> int:
    """Which entry wins when several name a constant: an element (``rate[dec 1]``) over a
    whole variable (``rate``) over a glob (``dec * loss rate``)."""
    return 2 if _is_glob(pattern) else 0 if "[" in pattern else 1


def _is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern
