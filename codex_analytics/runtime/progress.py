"""One self-updating progress line on a terminal. When stderr is not a terminal, nothing
(the command's summary says it all, and pipes stay clean), or with ``plain_every_s`` one
plain line that often, for the long-running jobs whose logs someone watches (through
``log``, a logger's method, when the job's stderr is a log: a JSON line then)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval_s: float = 0.2,
        plain_every_s: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.plain_every_s = plain_every_s
        self._log = log
        self.shown = False
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty:
            if self.plain_every_s is not None and (force or now - self._last >= self.plain_every_s):
                self._last = now
                if self._log is not None:
                    self._log(text)
                else:
                    self.stream.write(f"{text}\n")
                    self.stream.flush()
            return
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        self.stream.write(f"\r\x1b[2K{text}")
        self.stream.flush()
        self.shown = True

    def rate(self, count: int) -> float:
        """``count`` per second since this progress line started."""
        return count / max(time.monotonic() - self.started, 1e-9)

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
