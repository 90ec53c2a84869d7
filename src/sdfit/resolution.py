"""Resolve a :class:`~sdfit.problem.Problem` against a model and a panel, once: every name
matched (globs, elements, aliases), every time checked, the per-unit arrays laid out.

Name matching happens here and only here (through :mod:`sdfit.names` and the model's own
lookups).  Units whose needed data are invalid are refused in one sentence that lists
them, or dropped (``drop_invalid``) and returned in a table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .data import Panel
from .data.panel import code_dtype
from .exceptions import DataError, ModelError, SpecError
from .model.interface import Engine
from .model.runtime.program import TIME_RPREC
from .names import aliased, canonical, did_you_mean, element_key, is_glob, match_pattern
from .problem import Parameter, Problem
from .resolved import (
    InputBlock,
    ObservationBlock,
    ParameterBlock,
    PoolingBlock,
    Resolved,
    Slot,
    StockBlock,
    UnitData,
)
from .validate_units import valid_units


def resolve(problem: Problem, model: Engine, panel: Panel, *,
            method: str | None = None) -> tuple[Resolved, UnitData]:
    """Check ``problem`` against ``model`` and ``panel`` (refusing units with invalid needed
    data) and return the resolved problem and the per-unit arrays — what :func:`sdfit.fit`
    fits, for a look at them or to evaluate :class:`~sdfit.objective.Objective` directly."""
    resolved, data, _, _ = resolve_panel(problem, model, panel, method=method)
    return resolved, data


def resolve_panel(problem: Problem, model: Engine, panel: Panel, *, method: str | None = None,
                  drop_invalid: bool = False
                  ) -> tuple[Resolved, UnitData, Panel, pd.DataFrame]:
    """Check ``problem`` against ``model`` and ``panel`` and lay out the arrays.

    Returns the resolved problem, the unit data, the panel of the units kept and the table
    of dropped units (empty unless ``drop_invalid``).

    Raises
    ------
    SpecError
        A parameter, stock, input or target does not exist, or a time is out of the run.
    DataError
        The data lack a needed time or variable, or some units' needed values are invalid.
    """
    free, fixed = _parameters(problem, model)
    dt = model.time_step
    if not (math.isfinite(dt) and dt > 0):
        raise ModelError(f"The TIME STEP of model '{model.name}' is {dt:g}; it must be a "
                         "positive number.")
    start = model.initial_time if problem.initial_time is None else problem.initial_time
    offset = (start - model.initial_time) / dt
    if abs(offset - round(offset)) > TIME_RPREC:
        raise SpecError(f"Initial time {start:g} is not on the model's TIME STEP grid "
                        f"({model.initial_time:g} + k * {dt:g}).")
    keys = aliased(panel.variables, dict(problem.aliases))  # model key -> data name
    stocks = _stocks(problem, model, panel, keys, start)
    targets = _targets(problem, model, panel)
    inputs, input_data = _inputs(problem, model, panel)
    parameters = _parameter_block(model, free, fixed)
    if problem.starts > 1:
        spread = (np.isfinite(parameters.lower) & np.isfinite(parameters.upper)) | (
            parameters.scale > 0)
        if not spread.all():
            name = parameters.names[int(np.flatnonzero(~spread)[0])]
            raise SpecError(f"Several starts are spread over each parameter's bounds, but "
                            f"'{name}' has an infinite bound and no scale: give it bounds "
                            "or a scale (e.g. { x0 = 0.05, scale = 0.02 }).")
    observations = ObservationBlock(
        slots=tuple(_slot(model, name) for name, _ in targets),
        data_names=tuple(data for _, data in targets),
        sqrt_weights=np.sqrt([_weight(problem, model, name) for name, _ in targets]),
        likelihood=problem.likelihood, dispersion=problem.dispersion, loss=problem.loss,
        f_scale=problem.f_scale, times=problem.target_times)
    resolved = Resolved(
        model=model, parameters=parameters, stocks=stocks, inputs=inputs,
        observations=observations, start_time=float(start), time_step=float(dt),
        final_time=float(model.final_time), defaults=_defaults(model, free, fixed),
        method=method, seed=problem.seed, starts=problem.starts)
    data, rows = _unit_data(resolved, panel, input_data)
    if problem.has_pooled:
        resolved, data = _pooling(problem, resolved, data, panel, free)
    return valid_units(resolved, data, panel, rows, drop_invalid)


# -- parameters -------------------------------------------------------------------------------
def _parameters(problem: Problem, model: Engine):
    """(name, Parameter) pairs of free and fixed constants (elements of subscripted ones).
    An element's own entry takes precedence over its variable's, an exact name over a glob
    that also matches it; entries of the same kind may not overlap."""
    constants = model.constants
    elements = {e: c for c in constants for e in model.elements(c)}
    chosen: dict[str, Parameter] = {}
    for spec in sorted(problem.parameters, key=lambda p: _specificity(p.pattern)):
        names = [e for c in match_pattern(spec.pattern, constants) for e in model.elements(c)]
        if not names and is_glob(spec.pattern):
            names = match_pattern(spec.pattern, list(elements))
        elif not names:
            names = [e for e in elements if element_key(e) == element_key(spec.pattern)]
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


def _parameter_block(model: Engine, free, fixed) -> ParameterBlock:
    def column(values) -> np.ndarray:
        return np.array(values, dtype=float)

    return ParameterBlock(
        slots=tuple(_slot(model, name) for name, _ in free),
        x0=column([p.x0 if p.x0 is not None else model.constant_value(n) for n, p in free]),
        lower=column([p.bounds[0] for _, p in free]),
        upper=column([p.bounds[1] for _, p in free]),
        ridge=column([p.ridge for _, p in free]),
        shared=np.array([p.shared for _, p in free], dtype=bool),
        scale=column([np.nan if p.scale is None else p.scale for _, p in free]),
        fixed=tuple((_slot(model, n), float(p.fixed)) for n, p in fixed),
        pooled=np.array([p.pooled for _, p in free], dtype=bool),
        transforms=tuple(p.transform for _, p in free))


def _defaults(model: Engine, free, fixed) -> dict[str, np.ndarray]:
    """The own values of the subscripted constants whose elements are fitted or fixed
    (fixed elements set), so that each run starts from them."""
    defaults: dict[str, np.ndarray] = {}
    for name, _ in free + fixed:
        var, index = model.element(name)
        if var.dims and var.ident not in defaults:
            defaults[var.ident] = np.array(model.constant_array(var.name), dtype=float)
    for name, spec in fixed:
        var, index = model.element(name)
        if index:
            defaults[var.ident][(0,) + index] = spec.fixed
    return defaults


def _specificity(pattern: str) -> int:
    """Which entry wins when several name a constant: an element (``rate[dec 1]``) over a
    whole variable (``rate``) over a glob (``dec * loss rate``)."""
    return 2 if is_glob(pattern) else 0 if "[" in pattern else 1


# -- stocks -----------------------------------------------------------------------------------
def _stocks(problem: Problem, model: Engine, panel: Panel, keys: dict[str, str],
            start: float) -> StockBlock:
    if problem.initial_time is None:
        return StockBlock()
    observed = panel.observed_at(start)
    if not observed.any():
        panel.check_time(start)  # raises: no observation at the start
    if problem.initial_stocks is None:
        names = [e for s in model.stocks for e in model.elements(s)
                 if element_key(e) in keys
                 and observed[panel.variable_index(keys[element_key(e)])]]
    else:
        names = []
        for name in problem.initial_stocks:
            var = _model_name(model, name, "stock")
            if model.element(var)[0].kind != "stock":
                raise SpecError(f"Initial value '{name}' is not a stock of model "
                                f"'{model.name}'.{did_you_mean(name, model.stocks)}")
            chosen = model.elements(var) if "[" not in var else [var]
            for element in chosen:
                if element_key(element) not in keys:
                    panel.variable_index(element)  # raises with close matches
            names += chosen
    for stock in {model.element(s)[0].name for s in names if "[" in s}:
        given = sum(model.element(s)[0].name == stock for s in names)
        if given < len(model.elements(stock)):
            raise SpecError(f"The data give {given} of the {len(model.elements(stock))} "
                            f"elements of the stock '{stock}' at the initial time; give "
                            "all of them (or none).")
    shapes = {}
    for name in names:
        var, index = model.element(name)
        if index:
            shapes[var.ident] = model.shape(var.name)
    return StockBlock(tuple(_slot(model, n) for n in names),
                      tuple(keys[element_key(n)] for n in names), shapes)


# -- targets ----------------------------------------------------------------------------------
def modelled(problem: Problem, model: Engine, panel: Panel) -> dict[str, str]:
    """Model element name -> data variable, for every data variable that names a model
    variable or element (through the problem's aliases) and is not an input."""
    data_of = {}
    inputs = set(map(element_key, problem.inputs.values()))  # data columns driving the model
    for key, data_name in aliased(panel.variables, dict(problem.aliases)).items():
        element = _element_name(model, key)
        if element is not None and element_key(data_name) not in inputs:
            data_of[element] = data_name
    return data_of


def _targets(problem: Problem, model: Engine, panel: Panel) -> list[tuple[str, str]]:
    """(model element name, data variable) of every target."""
    data_of = modelled(problem, model, panel)
    known = (set(map(element_key, model.names())) | set(map(element_key, panel.variables))
             | set(map(element_key, data_of)))
    for name in problem.exclude:
        if element_key(name) not in known:
            raise SpecError(f"Excluded variable '{name}' is in neither the model nor the "
                            f"data.{did_you_mean(name, model.names() + list(panel.variables))}")
    excluded = set(map(element_key, problem.exclude))

    def kept(element: str) -> bool:
        whole = model.element(element)[0].name
        return not {element_key(element), element_key(whole),
                    element_key(data_of.get(element, element))} & excluded

    if problem.targets is None:
        names = [e for e in data_of if kept(e)]
    else:
        names = []
        for name in problem.targets:
            var = _model_name(model, name, "target")
            chosen = model.elements(var) if "[" not in var else [var]
            names += [e for e in chosen if kept(e)]
        for name in names:
            if name not in data_of:
                panel.variable_index(name)  # raises with close matches
    if not names:
        raise SpecError(f"No data variable of '{panel.source}' names a variable of model "
                        f"'{model.name}': there is nothing to compare.")
    for name in problem.weights:
        wholes = {canonical(model.element(t)[0].name) for t in names}
        if canonical(name) not in set(map(canonical, names)) | wholes:
            raise SpecError(f"Weight given for '{name}', which is not a target."
                            f"{did_you_mean(name, names)}")
    if problem.target_times is not None:
        for t in problem.target_times:
            panel.check_time(t)
    return [(n, data_of[n]) for n in names]


def _weight(problem: Problem, model: Engine, name: str) -> float:
    """The weight of a target element: its own, else its variable's, else 1."""
    whole = model.element(name)[0].name
    for key in (name, whole):
        for pattern, weight in problem.weights.items():
            if canonical(pattern) == canonical(key):
                return float(weight)
    return 1.0


# -- inputs -----------------------------------------------------------------------------------
def _inputs(problem: Problem, model: Engine, panel: Panel):
    """Per-unit inputs: constant within every unit -> one value per unit; else a table."""
    constants, series, kinds, columns, data = [], [], [], {}, {"constants": [], "series": []}
    for name, column in problem.inputs.items():
        target = _model_name(model, name, "input")
        var, index = model.element(target)
        if var.kind not in ("constant", "lookup", "auxiliary"):
            raise SpecError(f"Input '{name}' is a {var.kind} of model '{model.name}'; only "
                            "constants, lookups and data variables can be given per unit.")
        j = panel.variable_index(column)
        rows = panel.rows_of([j])
        rows = rows[~np.isnan(panel.value[rows]) | _noted(panel, rows)]
        columns[target] = panel.variables[j]
        varying = _varies_within_units(panel, rows)
        if not varying and var.kind == "constant":
            constants.append(_slot(model, target))
            data["constants"].append(rows)
        else:
            if index:
                raise SpecError(f"Input '{name}' varies over time; a time series can replace "
                                "a whole variable only, not one element.")
            series.append(_slot(model, target))
            kinds.append("lookup" if var.kind == "lookup" else "time")
            data["series"].append(rows)
    return InputBlock(tuple(constants), tuple(series), tuple(kinds), columns), data


def _varies_within_units(panel: Panel, rows: np.ndarray) -> bool:
    values = panel.value[rows]
    units = panel.unit[rows]
    low = np.full(len(panel), np.inf)
    high = np.full(len(panel), -np.inf)
    np.minimum.at(low, units, values)
    np.maximum.at(high, units, values)
    seen = np.isfinite(low)
    return bool(np.any(high[seen] != low[seen]))


def _noted(panel: Panel, rows: np.ndarray) -> np.ndarray:
    """Which ``rows`` held text instead of a number (only NaN rows are looked up)."""
    noted = np.zeros(len(rows), dtype=bool)
    if not panel.non_numeric:
        return noted
    names = panel.variables
    for k in np.flatnonzero(np.isnan(panel.value[rows])):
        r = rows[k]
        noted[k] = (panel.obs_line(r), float(panel.time[r]),
                    names[panel.variable[r]]) in panel.non_numeric
    return noted


# -- pooling ----------------------------------------------------------------------------------
def _pooling(problem: Problem, resolved: Resolved, data: UnitData, panel: Panel, free):
    """The pooling block and each unit's covariates: a unit id column gives one indicator
    per level but the first (a category), a data column constant within units its value."""
    import dataclasses

    columns, values, owner = [], [], []
    for name in dict.fromkeys(c for _, p in free if p.pooled for c in p.covariates):
        ids = {c.lower(): c for c in panel.unit_columns}
        if name.lower() in ids:
            level = panel.units.get_level_values(ids[name.lower()])
            levels = sorted(set(level))
            for value in levels[1:]:
                columns.append(f"{ids[name.lower()]}={value}")
                values.append((level == value).astype(float))
                owner.append(name)
            continue
        j = panel.variable_index(name)
        rows = panel.rows_of([j])
        if _varies_within_units(panel, rows):
            raise SpecError(f"Covariate '{name}' varies within units in '{panel.source}'; a "
                            "covariate of a population mean is one value per unit.")
        column = np.full(len(panel), np.nan)
        column[panel.unit[rows[::-1]]] = panel.value[rows[::-1]]
        columns.append(panel.variables[j])
        values.append(column)
        owner.append(name)
    pooled = [p for _, p in free if p.pooled]
    mask = np.array([[o in p.covariates for o in owner] for p in pooled], dtype=bool) \
        .reshape(len(pooled), len(columns))
    scale = problem.pooling_scale
    if scale == "auto":
        scale = "fixed" if problem.likelihood == "poisson" else "estimate"
    block = PoolingBlock(problem.pooling, problem.pooling_samples, scale, tuple(columns), mask)
    covariates = np.column_stack(values) if values else np.empty((len(panel), 0))
    bad = ~np.isfinite(covariates).all(axis=1)
    if bad.any():
        unit = int(np.flatnonzero(bad)[0])
        raise DataError(f"Data file '{panel.source}', {panel.describe_rows([unit])}: a "
                        "covariate of the population mean is missing.")
    return (dataclasses.replace(resolved, pooling=block),
            dataclasses.replace(data, covariates=covariates))


# -- unit data --------------------------------------------------------------------------------
def _unit_data(resolved: Resolved, panel: Panel, inputs: dict):
    """The per-unit arrays, and the panel rows they came from (for messages)."""
    u = len(panel)
    stocks = resolved.stocks
    stock_codes = [panel.variable_index(n) for n in stocks.data_names]
    initial, initial_rows = (panel.table_at(resolved.start_time, stock_codes) if stock_codes
                             else (np.empty((u, 0)), np.empty((u, 0), dtype=int)))
    constants, constant_rows = [], []
    for rows in inputs["constants"]:
        values = np.full(u, np.nan)
        where = np.full(u, -1)
        values[panel.unit[rows[::-1]]] = panel.value[rows[::-1]]  # each unit's first row
        where[panel.unit[rows[::-1]]] = rows[::-1]
        constants.append(values)
        constant_rows.append(where)
    series = []
    for rows in inputs["series"]:
        order = rows[np.lexsort((panel.time[rows], panel.unit[rows]))]
        layout, _ = panel.padded(order)
        x = np.where(layout >= 0, panel.time[layout], np.nan)
        y = np.where(layout >= 0, panel.value[layout], np.nan)
        series.append((x, y))
    obs = resolved.observations
    codes = {panel.variable_index(n): k for k, n in enumerate(obs.data_names)}
    rows = panel.rows_of(list(codes), obs.times)
    observed = ~np.isnan(panel.value[rows]) | _noted(panel, rows)
    is_stock = np.zeros(len(panel.variables), dtype=bool)
    is_stock[stock_codes] = True
    initialised = np.take(is_stock, panel.variable[rows])  # a gather: faster than np.isin
    at_start = np.abs(panel.time[rows] - resolved.start_time) <= 1e-9
    rows = rows[observed & ~(initialised & at_start)]
    layout, _ = panel.padded(rows)
    mask = layout >= 0
    # (U, M) of them: compact, in the type of the result's categorical codes; one entry per
    # data variable, as padding reads the variable of the panel's last row
    code_of = np.zeros(len(panel.variables), dtype=code_dtype(len(obs.slots)))
    code_of[list(codes)] = list(codes.values())
    data = UnitData(
        initial=initial,
        constants=np.column_stack(constants) if constants else np.empty((u, 0)),
        series=tuple(series),
        obs_time=np.where(mask, np.take(panel.time, layout), 0.0),  # np.take: faster
        obs_var=np.where(mask, np.take(code_of, np.take(panel.variable, layout)), 0),
        obs_value=np.where(mask, np.take(panel.value, layout), 0.0),
        obs_mask=mask,
        streams=np.arange(u))
    where = {"initial": initial_rows.T, "constants": constant_rows, "series": inputs["series"],
             "observations": layout}  # -1 in the padding
    return data, where


# -- names ------------------------------------------------------------------------------------
def _slot(model: Engine, name: str) -> Slot:
    var, index = model.element(name)
    return Slot(_element_name(model, element_key(name)) if index else var.name, var.ident,
                index)


def _model_name(model: Engine, name: str, what: str) -> str:
    """The model's spelling of a variable or of one element of it."""
    try:
        var, index = model.element(name)
        return _element_name(model, element_key(name)) if index else var.name
    except ModelError:
        raise SpecError(f"The {what} '{name}' is not a variable of model '{model.name}'."
                        f"{did_you_mean(name, model.names())}") from None


def _element_name(model: Engine, key: str) -> str | None:
    """The model's own spelling of a variable or element key, or None."""
    try:
        var, index = model.element(key)
    except ModelError:
        return None
    if not index:
        return var.name if not var.dims else None
    return model.elements(var.name)[int(np.ravel_multi_index(index, model.shape(var.name)))]


