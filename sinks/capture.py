"""Capture-file destination (delivery.md §4): one line per batch body, never HTTP.

As upstream: the file is created with mode 0600, opened, appended to and flushed per
batch, and never truncated. Unlike upstream, a failed append is not the end of the
batch: it raises ``CaptureWriteError`` and the sink retries it with backoff (and
reports itself unhealthy meanwhile), so nothing is dropped.

It implements ``sinks.destinations.Destination``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Literal

from .errors import CaptureWriteError

log = logging.getLogger("codex_analytics.sink")

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class CaptureDestination:
    name = "capture"
    success_outcome: Literal["captured"] = "captured"
    #: ``capture_ignores_auth`` (a test switch) lets batches the gate would skip be
    #: captured: nothing leaves the machine.
    may_ignore_auth = True

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        #: Since the last failed append (or a failed ``prepare``), until one succeeds:
        #: ``/healthz`` answers 503 meanwhile.
        self.failing = False

    @property
    def target(self) -> str:
        return f"capture file {self.path}"

    def prepare(self) -> OSError | None:
        """Create the (empty) file at start, as upstream does; the error if that fails.

        A failure is not fatal: the sink stays in capture mode (failing, and logged) and
        retries per batch.
        """
        error: OSError | None = None
        try:
            os.close(os.open(self.path, _FLAGS, 0o600))
        except OSError as err:
            error = err
            self.failing = True
            log.error(
                "failed to initialize analytics event capture; network delivery remains "
                "disabled: %s",
                err,
            )
        log.warning("analytics event capture enabled; network delivery is disabled")
        return error

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """Append ``body`` and a newline. ``headers`` are ignored: they hold the token."""
        line = body + b"\n"
        try:
            if self._fsync:
                await asyncio.to_thread(self._append, line)
            else:
                self._append(line)  # one small write: cheaper inline than a thread hop
        except OSError as err:
            self.failing = True
            raise CaptureWriteError(
                f"failed to capture analytics events: {err.strerror or err} ({self.path})"
            ) from None
        self.failing = False
        return 200

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, _FLAGS, 0o600)
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"CaptureDestination({self.path!r}, fsync={self._fsync})"
