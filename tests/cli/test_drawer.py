"""The copy forked when ``sdfit fit`` starts draws the figures it is sent; without a copy,
or when the copy fails, they are drawn here, with the same errors and warnings."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sdfit
from sdfit import Parameter, Problem
from sdfit.cli.drawer import Drawer
from sdfit.exceptions import FigureWarning

PARENT = os.getpid()


@pytest.fixture(scope="module")
def result(aging_chain, census):
    problem = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                      initial_time=2000, exclude=["dec 1"])
    return sdfit.fit(aging_chain, census.take(np.arange(5)), problem, backend="serial",
                     progress=False)


def where(result, label):
    """What a drawing would return: where it ran, and what it was given."""
    return [os.getpid(), label, result.table["sse"].tolist(), result.context]


def test_the_copy_draws_the_result_it_is_sent(result):
    prepared = []
    drawer = Drawer(where, lambda: prepared.append(os.getpid()))
    pid, label, sse, context = drawer.draw(result, "figures")
    assert pid not in (PARENT, os.getpid()) and label == "figures"
    assert sse == result.table["sse"].tolist()  # the tables, not the model, cross over
    assert context is None and result.context is not None
    assert drawer.pid is None and not prepared  # reaped; prepared in the copy, not here


def test_a_drawing_that_fails_in_the_copy_is_drawn_here_and_raises_here(result):
    here = os.getpid()

    def draw(result):
        if os.getpid() != here:
            raise RuntimeError("only in the copy")
        return "drawn here"

    assert Drawer(draw, lambda: None).draw(result) == "drawn here"

    def bad(result):
        raise ValueError("no such parameter")

    with pytest.raises(ValueError, match="no such parameter"):
        Drawer(bad, lambda: None).draw(result)


def test_the_copys_warnings_are_given_here(result):
    def draw(result):
        import warnings

        warnings.warn("no map: the shapefile is missing", FigureWarning, stacklevel=1)
        return os.getpid()

    with pytest.warns(FigureWarning, match="no map"):
        assert Drawer(draw, lambda: None).draw(result) != os.getpid()


def test_a_copy_sent_nothing_leaves_when_closed():
    drawer = Drawer(where, lambda: None)
    pid = drawer.pid
    drawer.close()
    with pytest.raises(ChildProcessError):  # reaped already: no zombie left behind
        os.waitpid(pid, os.WNOHANG)


def test_without_fork_the_figures_are_drawn_here(result, monkeypatch):
    monkeypatch.delattr(os, "fork")
    drawer = Drawer(where, lambda: None)
    assert drawer.pid is None and drawer.draw(result, "x")[0] == os.getpid()
