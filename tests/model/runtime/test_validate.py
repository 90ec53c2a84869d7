"""The whitelist generated programs are checked against, and the interpreter of constant
expressions (sdfit.model.runtime.validate)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sdfit
from sdfit.datasets import aging_chain_path
from sdfit.exceptions import ModelError
from sdfit.model.runtime import arrays, functions, validate
from sdfit.model.runtime.program import Assignment

NAMESPACE = {"np": np, "F": functions, "V": arrays, "A": {"k": np.arange(6.0).reshape(1, 2, 3)},
             "RPREC": 1e-5}

PROGRAM = """
def statics(ov):
    v_a = ov['v_a'] if 'v_a' in ov else (2.0)
    return {'v_a': v_a}

def run(ov, stop, due):
    S = statics(ov)
    v_a = S['v_a']
    time = 0.0
    times, rows = [], []
    while True:
        h_b = np.maximum(v_a, -1.0) * F.if_then_else(time > 1, A['k'][:, 0, 1:3], np.nan)
        h_c = V.assemble((2,), [(h_b, (slice(None), slice(0, 2)))], True)
        if due(time, 0.0, 1.0, 1.0):
            rows.append((h_b, h_c.transpose(0, 1)))
        if not time + 1.0 * RPREC < 3 or stop is not None and time >= stop:
            break
        time = time + 1.0
    return times, rows
"""


def test_a_program_of_the_kinds_the_generator_writes_passes():
    validate.check_program(PROGRAM, "model.mdl", NAMESPACE)


@pytest.mark.parametrize("statement, construct", [
    ("x = __import__('os')", "the name '__import__'"),
    ("x = open", "the name 'open'"),
    ("x = np.load", "the attribute 'load'"),
    ("x = np.lib", "the attribute 'lib'"),
    ("x = F.np", "the attribute 'np'"),  # a module F imports, not a function of its own
    ("x = v_a.__class__", "the attribute '__class__'"),
    ("x = v_a.tofile", "the attribute 'tofile'"),
    ("import os", "a Import construct"),
    ("x = lambda: 0", "a Lambda construct"),
    ("x = [y for y in A]", "a ListComp construct"),
    ("x = f'{v_a}'", "a JoinedStr construct"),
    ("x = A['a b']", "the string 'a b'"),
    ("x = A[b'k']", "the constant b'k'"),
    ("x = {**A}", "a dictionary unpacking"),
    ("x = F.lookup(**A)", "the name 'None'"),
    ("np = F", "an assignment to 'np'"),
    ("_x = 1", "the name '_x'"),
    ("global v_a", "a Global construct"),
    ("x = unknown", "the name 'unknown'"),
])
def test_anything_else_is_refused_naming_the_model_file(statement, construct):
    source = PROGRAM.replace("    return times, rows", f"    {statement}\n    return times, rows")
    with pytest.raises(ModelError, match="model file 'model.mdl' contains") as error:
        validate.check_program(source, "model.mdl", NAMESPACE)
    assert construct in str(error.value)


def test_a_program_that_is_not_python_is_refused():
    with pytest.raises(ModelError, match="is not valid Python"):
        validate.check_program("x = (", "model.mdl", NAMESPACE)


def test_the_program_runs_without_pythons_builtins(aging_chain):
    run = aging_chain._program(("v_dec_2",)).run
    assert run.__globals__["__builtins__"] == {"slice": slice}


def test_a_tampered_model_is_refused_before_it_runs(tmp_path):
    """Whatever reaches the program text, e.g. a BatchModel altered after compiling (or
    unpickled from elsewhere), is checked before it runs."""
    model = sdfit.load_model(aging_chain_path())
    marker = tmp_path / "marker"
    expr = f"__import__('os').mkdir('{marker}')"
    model.assignments["v_births"] = dataclasses.replace(model.assignments["v_births"],
                                                        expr=expr)
    with pytest.raises(ModelError, match="aging_chain.mdl' contains"):
        model.run(1)
    assert not marker.exists()


def test_hidden_assignments_cannot_smuggle_strings():
    model = sdfit.load_model(aging_chain_path())
    model.assignments["v_births"] = Assignment("v_births", "'x' + \"; import os\"", frozenset())
    with pytest.raises(ModelError, match="the string '; import os'"):
        model.run(1)


# -- the interpreter ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("A['k'][:, 1, ::2]", [[3.0, 5.0]]),
    ("A['k'][:, 0].transpose(1, 0)", [[0.0], [1.0], [2.0]]),
    # [1.5, 1.5, 2] * -2 + 9 / 4 - 3 % 2
    ("np.maximum(A['k'][0, 0], 1.5) * -2 + 3 ** 2 / 4 - 7 // 2 % 2", [-1.75, -1.75, -2.75]),
    ("V.fill(2.0, (2,))", [[2.0, 2.0]]),
    ("F.if_then_else(A['k'][0, 1] >= 4, 1.0, 0.0)", [0.0, 1.0, 1.0]),
    ("np.nan if 1 < 2 <= 2 else 0.0", np.nan),
    ("(0.0 or 3.0) and not 0.0", True),
    ("np.sum(A['k'], axis=(1, 2))", [15.0]),
    ("[1.0, 2.0][slice(1, None)]", [2.0]),
])
def test_constant_expressions_are_computed_without_eval(text, expected):
    namespace = {**NAMESPACE, **validate.BUILTINS}
    np.testing.assert_array_equal(validate.evaluate(text, namespace, "model.mdl"), expected)


@pytest.mark.parametrize("text", ["__import__('os')", "np.load('x')", "(1).__class__",
                                  "[x for x in A]", "lambda: 1", "A['k'].tofile('x')"])
def test_the_interpreter_refuses_what_the_program_may_not_contain(text):
    with pytest.raises(ModelError, match="model file 'model.mdl' contains"):
        validate.evaluate(text, NAMESPACE, "model.mdl")
