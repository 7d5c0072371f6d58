"""Capture-file destination (delivery.md §4): one line per batch body, never HTTP.

As upstream: the file is created with mode 0600, opened, appended to and flushed per
batch, and never truncated. Unlike upstream, a failed append is not the end of the
batch: it raises ``CaptureWriteError`` and the sink retries it with backoff (and
reports itself unhealthy meanwhile), so nothing is dropped.
"""

from __future__ import annotations

import asyncio
import os

from .errors import CaptureWriteError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class CaptureDestination:
    name = "capture"

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync

    def prepare(self) -> OSError | None:
        """Create the (empty) file at start, as upstream does; the error if that fails.

        A failure is not fatal: the sink stays in capture mode and retries per batch.
        """
        try:
            os.close(os.open(self.path, _FLAGS, 0o600))
        except OSError as err:
            return err
        return None

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """Append ``body`` and a newline. ``headers`` are ignored: they hold the token."""
        line = body + b"\n"
        try:
            if self._fsync:
                await asyncio.to_thread(self._append, line)
            else:
                self._append(line)  # one small write: cheaper inline than a thread hop
        except OSError as err:
            raise CaptureWriteError(
                f"failed to capture analytics events: {err.strerror or err} ({self.path})"
            ) from None
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
