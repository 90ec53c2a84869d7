"""Stateful structures as states of the batched program, mirroring PySD's ``statefuls``.

Each structure becomes one or more :class:`~sdfit.model.runtime.program.State` (initial value and
value one TIME STEP later, computed for every unit at once) plus hidden
auxiliaries for its inputs and output.  The functions here take the
:class:`~.expressions.Emitter` of the equation that uses the structure and
return the identifier of its output.

Multi-stage structures (DELAY1/3, DELAY N, SMOOTH3, SMOOTH N) keep their
stages on a leading axis and fix their order at the initial time, per unit,
as PySD does (including its lowering of a DELAY's order when the delay time is
shorter than ``order * TIME STEP``).  A state whose update is the state itself
(the order, INITIAL) costs nothing per step.  Stocks, SMOOTHs, DELAY1/3 and the
averages of TREND and FORECAST are continuous (RK4 integrates their rates);
DELAY N, DELAY FIXED, DELAY MATERIAL and SAMPLE IF TRUE move once per step, as
Vensim treats them under Runge-Kutta.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..runtime.program import Variable
from ..runtime.variables import key
from .subscripts import Expr, align, union

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter


def integ(em: Emitter, node) -> Expr:
    """INTEG inside an expression (a stock's own equation is compiled by
    :func:`sdfit.model.compiler.elements.compile_element`)."""
    flow, initial = em.child(), em.child()
    flow_expr, initial_expr = flow.emit(node.flow), initial.emit(node.initial)
    dims = union([flow_expr, initial_expr])
    flow_text = align(flow_expr, dims).text
    initial_text = align(initial_expr, dims, full=True).text
    ident = em.compiler.new_ident(em.variable, "integ")
    add_stock(em.compiler, ident, initial_text, initial.deps, flow_text, flow.deps,
              node.non_negative, getattr(node, "limits", None))
    em.deps.add(ident)
    return Expr(ident, 0, dims)


def add_stock(compiler, ident: str, initial: str, initial_deps, flow: str, flow_deps,
              non_negative: bool, limits: tuple | None = None) -> None:
    """A stock ``ident``; XMILE's non-negative stocks are clipped at 0 after each step,
    as PySD's ``NonNegativeInteg``; Vensim's SINTEG (``limits``: min, max, quantum,
    special value, threshold, each a number or :NA:) restricts its values, the initial
    one too."""
    limit = "np.maximum({}, 0)" if non_negative else "{}"
    if limits is not None:
        limit = "F.restrict({}, " + ", ".join(_number_text(v) for v in limits) + ")"
        initial = limit.format(initial)
    compiler.add_continuous(ident, initial, initial_deps, flow, flow_deps, limit)


def smooth(em: Emitter, node) -> Expr:
    """SMOOTH, SMOOTHI, SMOOTH3, SMOOTH3I and SMOOTH N."""
    ((x, x_deps), (t, t_deps), (init, init_deps)), dims = em.operands([
        (node.input, "smooth input", False), (node.smooth_time, "smooth time", False),
        (node.initial, "smooth initial", True)])
    compiler = em.compiler
    if _literal(node.order) == 1:  # one stage: a plain state, PySD's arithmetic
        s = compiler.new_ident(em.variable, "smooth")
        compiler.add_continuous(s, init, init_deps, f"({x} - {s}) * 1 / {t}",
                                x_deps | t_deps)
        em.deps.add(s)
        return Expr(s, 0, dims)
    order, order_deps = _order(em, node.order, "smooth order", "F.smooth_order({})")
    s = compiler.new_ident(em.variable, "smooth stages")
    compiler.add_continuous(s, f"F.stages({init}, {order})", init_deps | order_deps,
                            f"F.smooth_rate({s}, {x}, {t}, {order})",
                            x_deps | t_deps | order_deps, staged=True,
                            step=f"F.smooth_step({s}, {x}, {t}, {order}, dt)")
    return _output(em, "smooth", f"F.last_stage({s}, {order})", order_deps | {s}, dims)


def _delay_operands(em: Emitter, node):
    return em.operands([(node.input, "delay input", False),
                        (node.delay_time, "delay time", False),
                        (node.initial, "delay initial", True)])


def delay(em: Emitter, node) -> Expr:
    """DELAY1, DELAY1I, DELAY3 and DELAY3I (stages hold content times the delay time)."""
    ((x, x_deps), (d, d_deps), (init, init_deps)), dims = _delay_operands(em, node)
    order, order_deps = _delay_order(em, node.order, d, d_deps)
    s = em.compiler.new_ident(em.variable, "delay stages")
    em.compiler.add_continuous(s, f"F.stages({init} * {d}, {order})",
                               init_deps | d_deps | order_deps,
                               f"F.delay_rate({s}, {x}, {d}, {order})",
                               x_deps | d_deps | order_deps, staged=True,
                               step=f"F.delay_step({s}, {x}, {d}, {order}, dt)")
    return _output(em, "delay", f"F.last_stage({s}, {order}) / {d}", order_deps | d_deps | {s},
                   dims)


def delay_n(em: Emitter, node) -> Expr:
    """DELAY N: like DELAY, but each stage drains with the delay time it entered with
    (PySD's ``DelayN`` keeps the delay times of the last ``order`` steps)."""
    ((x, x_deps), (d, d_deps), (init, init_deps)), dims = _delay_operands(em, node)
    order, order_deps = _delay_order(em, node.order, d, d_deps)
    compiler = em.compiler
    s = compiler.new_ident(em.variable, "delay stages")
    times = compiler.new_ident(em.variable, "delay times")
    compiler.add_state(s, f"F.stages({init} * {d}, {order})", init_deps | d_deps | order_deps,
                       f"F.delay_n_step({s}, {times}, {x}, {d}, {order}, dt)",
                       x_deps | d_deps | order_deps | {s, times})
    compiler.add_state(times, f"F.stages({d}, {order})", d_deps | order_deps,
                       f"F.shift_in({d}, {times})", d_deps | {times})
    return _output(em, "delay", f"F.last_stage({s}, {order}) / {times}[0]",
                   order_deps | {s, times}, dims)


def delay_fixed(em: Emitter, node) -> Expr:
    """DELAY FIXED (and XMILE's DELAY): the input of round(delay time / TIME STEP)
    steps ago, the initial value before; the number of steps is fixed at the start."""
    ((x, x_deps), (d, d_deps), (init, init_deps)), dims = _delay_operands(em, node)
    dt = em.time_step
    pipe = em.compiler.new_ident(em.variable, "fixed delay")
    em.compiler.add_state(pipe, f"F.FixedDelay({init}, {d}, {dt})", init_deps | d_deps | {dt},
                          f"{pipe}.push({x})", x_deps | {pipe})
    return _output(em, "delay", f"{pipe}.output", {pipe}, dims)


def delay_material(em: Emitter, arguments) -> Expr:
    """Vensim's DELAY MATERIAL(input, delay time, initial value, missing value): each
    step's input leaves round(delay time / TIME STEP) steps later (the delay time it
    entered with); inputs leaving together add up, and a step nothing leaves gives
    the missing value (PySD has no DELAY MATERIAL)."""
    if len(arguments) != 4:
        raise em.unsupported(f"DELAY MATERIAL with {len(arguments)} arguments (it takes 4)")
    ((x, x_deps), (d, d_deps), (init, init_deps), (missing, m_deps)), dims = em.operands([
        (arguments[0], "delay input", False), (arguments[1], "delay time", False),
        (arguments[2], "delay initial", True), (arguments[3], "delay missing value", False)])
    dt = em.time_step
    pipe = em.compiler.new_ident(em.variable, "material delay")
    em.compiler.add_state(pipe, f"F.material_delay({init}, {d}, {dt})", init_deps | d_deps | {dt},
                          f"{pipe}.push({x}, {d}, {dt}, {missing})",
                          x_deps | d_deps | m_deps | {pipe, dt})
    return _output(em, "delay", f"{pipe}.output", {pipe}, dims)


def previous(em: Emitter, arguments) -> Expr:
    """XMILE's PREVIOUS(x, initial): x one TIME STEP ago, the initial value at the start."""
    if len(arguments) != 2:
        raise em.unsupported(f"PREVIOUS with {len(arguments)} arguments (it takes 2)")
    ((x, x_deps), (init, init_deps)), dims = em.operands([
        (arguments[0], "previous input", True), (arguments[1], "previous initial", True)])
    held = em.compiler.new_ident(em.variable, "previous")
    em.compiler.add_state(held, init, init_deps, f"{held} * 0 + {x}", x_deps | {held})
    em.deps.add(held)
    return Expr(held, 0, dims)


def trend(em: Emitter, node) -> Expr:
    """TREND: fractional change of the input over an exponential average."""
    ((x, x_deps), (avg, avg_deps), (init, init_deps)), dims = em.operands([
        (node.input, "trend input", True), (node.average_time, "trend average time", False),
        (node.initial_trend, "initial trend", False)])
    average = em.compiler.new_ident(em.variable, "trend average")
    em.compiler.add_continuous(average, f"{x} / (1 + {init} * {avg})",
                               x_deps | avg_deps | init_deps, f"({x} - {average}) / {avg}",
                               x_deps | avg_deps)
    return _output(em, "trend", f"F.zidz({x} - {average}, {avg} * np.abs({average}))",
                   x_deps | avg_deps | {average}, dims)


def forecast(em: Emitter, node) -> Expr:
    """FORECAST: the input extrapolated ``horizon`` ahead along its trend."""
    ((x, x_deps), (avg, avg_deps), (horizon, h_deps), (init, init_deps)), dims = em.operands([
        (node.input, "forecast input", True),
        (node.average_time, "forecast average time", False),
        (node.horizon, "forecast horizon", False), (node.initial_trend, "initial trend", False)])
    average = em.compiler.new_ident(em.variable, "forecast average")
    em.compiler.add_continuous(average, f"{x} / (1 + {init})", x_deps | init_deps,
                               f"({x} - {average}) / {avg}", x_deps | avg_deps)
    return _output(em, "forecast",
                   f"{x} * (1 + F.zidz({x} - {average}, {avg} * {average}) * {horizon})",
                   x_deps | avg_deps | h_deps | {average}, dims)


def sample_if_true(em: Emitter, node) -> Expr:
    """SAMPLE IF TRUE: the input while the condition holds, else the last sample.  Where
    its arguments read the variable it defines (``PEAK = SAMPLE IF TRUE(x > PEAK, x, x)``),
    they read the last sample, as Vensim reads a level (PySD recurses forever)."""
    sample = em.compiler.new_ident(em.variable, "sample")
    reader, own = em, getattr(em, "defining", None)
    if own is not None:
        from .expressions import Emitter, Scope

        variable = Variable(own.name, sample, "auxiliary", own.dims)
        kinds = frozenset({"constant", "auxiliary", "stock", "lookup", "control", "data"})
        scope = Scope({key(own.name): variable}, parent=em.scope, inherited=kinds)
        reader = Emitter(em.compiler, em.variable, scope, em.def_subs)
    ((condition, c_deps), (x, x_deps), (init, init_deps)), dims = reader.operands([
        (node.condition, "sample condition", False), (node.input, "sample input", True),
        (node.initial, "sample initial", True)])
    em.compiler.add_state(sample, init, init_deps,
                          f"{sample} * 0 + F.if_then_else({condition}, {x}, {sample})",
                          c_deps | x_deps | {sample})
    return _output(em, "sample", f"F.if_then_else({condition}, {x}, {sample})",
                   c_deps | x_deps | {sample}, dims)


def initial(em: Emitter, node) -> Expr:
    """INITIAL: the value at the initial time, held."""
    ((init, init_deps),), dims = em.operands([(node.initial, "initial value", False)])
    held = em.compiler.new_ident(em.variable, "initial")
    em.compiler.add_state(held, init, init_deps, held, {held})
    em.deps.add(held)
    return Expr(held, 0, dims)


def active_initial(em: Emitter, expression, initial_value) -> Expr:
    """ACTIVE INITIAL: ``initial_value`` while the model initialises, ``expression`` after."""
    run, init = em.child(), em.child()
    run_expr, init_expr = run.emit(expression), init.emit(initial_value)
    dims = union([run_expr, init_expr])
    ident = em.compiler.hidden(em.variable, "active initial", align(run_expr, dims, True).text,
                               run.deps)
    em.compiler.add_initial(ident, align(init_expr, dims, True).text, init.deps)
    em.deps.add(ident)
    return Expr(ident, 0, dims)


# -- helpers ------------------------------------------------------------------------------
def _output(em: Emitter, role: str, expr: str, deps: set[str] | frozenset[str],
            dims) -> Expr:
    ident = em.compiler.hidden(em.variable, f"{role} output", expr, deps)
    em.deps.add(ident)
    return Expr(ident, 0, dims)


def _number_text(value) -> str:
    value = float(value)
    return "np.nan" if np.isnan(value) else repr(value)


def _literal(node) -> float | None:
    return float(node) if isinstance(node, bool | int | float | np.number) else None


def _order(em: Emitter, node, role: str, template: str) -> tuple[str, frozenset[str]]:
    """An order fixed at the initial time: a literal, or a state that never changes."""
    value = _literal(node)
    if value is not None and value == int(value):
        return str(int(value)), frozenset()
    sub = em.child()
    text = sub.emit(node).text
    ident = em.compiler.new_ident(em.variable, role)
    em.compiler.add_state(ident, template.format(text), sub.deps, ident, {ident})
    return ident, frozenset({ident})


def _delay_order(em: Emitter, node, delay_time: str, delay_deps) -> tuple[str, frozenset[str]]:
    """A DELAY's order: always a state, as PySD lowers it when the initial delay time is
    shorter than ``order * TIME STEP``."""
    sub = em.child()
    text = sub.emit(node).text
    dt = em.time_step
    ident = em.compiler.new_ident(em.variable, "delay order")
    em.compiler.add_state(ident, f"F.delay_order({text}, {dt}, {delay_time})",
                          sub.deps | set(delay_deps) | {dt}, ident, {ident})
    return ident, frozenset({ident})
