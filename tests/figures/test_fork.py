"""Tasks split between this process and a forked copy: the same results, in order, and
an error raised here as it would be without the copy."""

from __future__ import annotations

import os

import pytest

from sdfit.figures.fork import run_split


def test_the_results_come_back_in_order_from_both_processes():
    here = os.getpid()
    pids = run_split([os.getpid, os.getpid, lambda: b"\x89PNG" * 100_000, os.getpid],
                     child=[1, 2])
    assert pids[0] == pids[3] == here
    if hasattr(os, "fork"):
        assert pids[1] != here  # drawn by the copy
    assert pids[2] == b"\x89PNG" * 100_000  # more than a pipe holds at once


def test_a_task_that_fails_in_the_copy_fails_here():
    def fails():
        raise ValueError("no such parameter")

    with pytest.raises(ValueError, match="no such parameter"):
        run_split([lambda: 1, fails], child=[1])
    with pytest.raises(ValueError, match="no such parameter"):
        run_split([fails, lambda: 1], child=[1])


def test_without_a_split_everything_runs_here():
    here = os.getpid()
    assert run_split([os.getpid, os.getpid], child=[]) == [here, here]
    assert run_split([os.getpid], child=[0]) == [here]


def test_each_task_split_off_has_a_copy_of_its_own():
    here = os.getpid()
    pids = run_split([os.getpid] * 3, child=[1, 2])
    assert pids[0] == here
    if hasattr(os, "fork"):
        assert len({here, *pids}) == 3
