"""A deadline on a service's shutdown, whatever the broker (or anything else) does.

A graceful stop waits on the network: the last batch's acknowledgements, the final
offset commit, the consumer leaving its group, the producer's flush. With the broker
silent, each of those waits for its own client timeout, and some for ever. The deadline
does not try to bound each wait: on the first stop signal it arms a timer on a thread of
its own (the event loop may be the thing that is stuck), and when the time is up it ends
the process. Nothing is lost by that: offsets are committed only for work already out,
so a restart repeats what the stop did not finish. A second signal ends it at once.
Every service exits the same way: 75 past the deadline, 128 + the signal on a second one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("codex_analytics.shutdown")

#: Exit status of a stop past its deadline (EX_TEMPFAIL): a restart repeats the
#: unfinished work.
EXIT_SHUTDOWN_CUT_SHORT = 75


class ShutdownDeadline:
    """Call :meth:`signalled` on every stop signal: the first arms the deadline, the
    second ends the process at once."""

    def __init__(
        self,
        timeout_s: float,
        *,
        grace_s: float = 1.0,
        exit_now: Callable[[int], object] = os._exit,
    ) -> None:
        #: The service's own shutdown timeout; a little ``grace_s`` is added for the
        #: stop to notice its own deadlines before the process is ended from outside.
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self._exit_now = exit_now
        self._timer: threading.Timer | None = None

    def signalled(self, signum: signal.Signals) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.timeout_s + self.grace_s, self._expire)
            self._timer.daemon = True
            self._timer.start()
            log.info("stopping: %.4g s to finish, then the process exits", self.timeout_s)
        else:
            self._end(f"second {signum.name}: exiting without waiting for the stop", 128 + signum)

    def cancel(self) -> None:
        """The stop finished in time."""
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        self._end(
            f"the shutdown did not finish within {self.timeout_s:.4g} s: exiting now",
            EXIT_SHUTDOWN_CUT_SHORT,
        )

    def _end(self, why: str, status: int) -> None:
        log.critical("%s; what was not committed is read again by the next owner", why)
        for handler in logging.getLogger().handlers:
            handler.flush()  # not logging.shutdown(): it takes locks a stuck thread may hold
        self._exit_now(status)


def stop_on_signals(stop: asyncio.Event, deadline: ShutdownDeadline) -> None:
    """SIGTERM / SIGINT set ``stop`` (a graceful stop) and tell ``deadline``: the first
    arms it, the second ends the process at once. For services that own their event
    loop (the gateway, the sink); Faust's signal handlers call the deadline themselves."""
    loop = asyncio.get_running_loop()

    def signalled(signum: signal.Signals) -> None:
        stop.set()
        deadline.signalled(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled, signum)


#: How long a start step cancelled by a stop signal gets to unwind.
CANCEL_WITHIN_S = 1.0


async def unless_stopped(
    stop: asyncio.Event, step: Awaitable[T], *, cancel_within: float = CANCEL_WITHIN_S
) -> tuple[bool, T | None]:
    """Run ``step`` until it ends or ``stop`` is set: ``(True, its result)``, or
    ``(False, None)`` (``step`` cancelled, given ``cancel_within`` s to unwind) when
    ``stop`` came first. A start that waits on a broker must not outlive a SIGTERM."""
    task = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=cancel_within)
    if not task.done() or task.cancelled():
        return False, None
    return True, task.result()  # its error, if it failed


def run_unless_signalled(step: Awaitable[T], timeout_s: float) -> tuple[bool, T | None]:
    """``asyncio.run`` of a start step (waiting for the broker, creating topics) before
    a service's own loop exists, stopped by SIGTERM / SIGINT like the service itself:
    ``(False, None)`` when a signal came first. ``timeout_s`` is the service's shutdown
    timeout: the process ends by then whatever the step does (see
    :class:`ShutdownDeadline`)."""

    async def main() -> tuple[bool, T | None]:
        stop = asyncio.Event()
        deadline = ShutdownDeadline(timeout_s)
        stop_on_signals(stop, deadline)
        try:
            return await unless_stopped(stop, step)
        finally:
            deadline.cancel()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())
