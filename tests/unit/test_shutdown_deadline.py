"""The shutdown deadline (codex_analytics.runtime.shutdown): the first stop signal arms
it, the second ends the process at once; a stop that finished disarms it."""

from __future__ import annotations

import signal
import threading

from codex_analytics.runtime.shutdown import EXIT_SHUTDOWN_CUT_SHORT, ShutdownDeadline


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_the_first_signal_ends_the_process_when_the_timeout_is_up() -> None:
    exits = Exits()
    deadline = ShutdownDeadline(0.05, grace_s=0.0, exit_now=exits)
    deadline.signalled(signal.SIGTERM)
    assert not exits.codes, "not at once"
    assert exits.called.wait(5)
    assert exits.codes == [EXIT_SHUTDOWN_CUT_SHORT]


def test_a_second_signal_ends_it_at_once() -> None:
    exits = Exits()
    deadline = ShutdownDeadline(60, exit_now=exits)
    deadline.signalled(signal.SIGTERM)
    deadline.signalled(signal.SIGINT)
    assert exits.codes == [128 + signal.SIGINT]
    deadline.cancel()


def test_a_stop_that_finished_in_time_disarms_it() -> None:
    exits = Exits()
    deadline = ShutdownDeadline(0.05, grace_s=0.0, exit_now=exits)
    deadline.signalled(signal.SIGTERM)
    deadline.cancel()
    assert not exits.called.wait(0.3)
    deadline.cancel()  # and with no signal at all: nothing to do
    ShutdownDeadline(1).cancel()
