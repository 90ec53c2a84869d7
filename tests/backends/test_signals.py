"""SIGTERM as Ctrl-C, in process (tests/backends/test_local.py sends real signals to a
real run)."""

from __future__ import annotations

import signal
import threading

import pytest

from sdfit.backends.signals import Terminated, sigterm_as_interrupt


def test_sigterm_raises_terminated_a_keyboard_interrupt_then_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as raised, sigterm_as_interrupt():
        signal.raise_signal(signal.SIGTERM)
    assert isinstance(raised.value, KeyboardInterrupt)  # unwinds as Ctrl-C does
    assert Terminated.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_it_changes_nothing():
    seen = []

    def enter():
        with sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]
