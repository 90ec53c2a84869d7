"""Run a command and sample its memory: the process alone (RSS) and with all its children,
the worker pool (PSS summed, so pages a forked worker shares with its parent count once)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measured:
    tree_mib: float  # peak PSS of the process and its children
    main_mib: float  # peak RSS of the process alone
    seconds: float
    stdout: str


def run_measured(command: list[str], interval: float = 0.02) -> Measured:
    """Run ``command`` to completion, sampling its memory every ``interval`` seconds."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(process.pid)
    peak_tree = peak_main = 0
    while process.poll() is None:
        try:
            main = root.memory_info().rss
            tree = _pss(root) + sum(_pss(child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main)
        time.sleep(interval)
    stdout = process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"{command} failed")
    return Measured(peak_tree / 2**20, peak_main / 2**20, time.perf_counter() - start, stdout)


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except psutil.NoSuchProcess:
        return 0
