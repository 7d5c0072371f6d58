"""Capture-file destination (delivery.md §4): one line per batch body, never HTTP.

As upstream: the file is created with mode 0600, opened, appended to and flushed per
batch, and never truncated. Unlike upstream, a failed append is not the end of the
batch: it raises ``CaptureWriteError`` and the sink retries it with backoff (and
reports itself not ready meanwhile: ``/readyz`` 503, while ``/livez`` stays 200, since a
restart cannot free a disk), so nothing is dropped.

The file only ever holds whole lines. An append that fails half-way (a full disk, a
file size limit: the kernel writes what fits, then refuses the rest) is cut back to the
size the file had before it, and checked; before each append, a tail without its newline
(left by a cut that failed too, or by a process killed mid-write) is cut back to the last
whole line. Otherwise the retry would append after the partial line and the batch
would end as one line of invalid JSON, its offsets committed. A cut removes only bytes
no reader could use; whole lines are never truncated. Appends and cuts
hold an exclusive ``flock`` on the file, so that two sinks capturing to one file never
cut each other's lines.

It implements ``sinks.destinations.Destination``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from typing import Literal

from .errors import CaptureWriteError

log = logging.getLogger("codex_analytics.sink")

# Read and write: a torn tail is found by reading the file's last bytes.
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)

#: How far back a torn tail is looked for at a time.
_TAIL_CHUNK = 64 * 1024


class CaptureDestination:
    name = "capture"
    success_outcome: Literal["captured"] = "captured"
    #: ``capture_ignores_auth`` (a test switch) lets batches the gate would skip be
    #: captured: nothing leaves the machine.
    may_ignore_auth = True

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        #: Since the last failed append (or a failed ``prepare``), until one succeeds
        #: (or :meth:`recheck` opens the file): ``/readyz`` answers 503 meanwhile.
        self.failing = False
        #: ``prepare`` could not open the file, and no append has tried since.
        self._unopened = False

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
            self.failing = self._unopened = True
            log.error(
                "failed to initialize analytics event capture; network delivery remains "
                "disabled: %s",
                err,
            )
        log.warning("analytics event capture enabled; network delivery is disabled")
        return error

    def recheck(self) -> None:
        """A file ``prepare`` could not open is opened again (created, as ``prepare``
        does): with no events to append, nothing else would find out that it was fixed.
        A failed append is not rechecked here: its batch retries it."""
        if not self._unopened:
            return
        try:
            os.close(os.open(self.path, _FLAGS, 0o600))
        except OSError:
            return
        self.failing = self._unopened = False
        log.info("capture file %s can be opened now", self.path)

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
        self.failing = self._unopened = False
        return 200

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, _FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
            start = _cut_torn_tail(fd, self.path)
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                _cut_back(fd, start, self.path)
                raise
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"CaptureDestination({self.path!r}, fsync={self._fsync})"


def _cut_back(fd: int, size: int, path: str) -> None:
    """Truncate a failed append away, and check it went. If it did not, the file ends in
    a torn tail that the next append cuts first (:func:`_cut_torn_tail`)."""
    try:
        os.ftruncate(fd, size)
        left = os.fstat(fd).st_size
    except OSError as err:
        log.error("capture file %s: a failed append could not be cut back yet: %s", path, err)
        return
    if left != size:
        log.error("capture file %s: %d bytes after a cut back to %d", path, left, size)


def _cut_torn_tail(fd: int, path: str) -> int:
    """Cut the file back to its last whole line; returns its size after that."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    whole = 0  # no newline at all: nothing in the file is a whole line
    while end > 0:
        begin = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - begin, begin).rfind(b"\n")
        if newline >= 0:
            whole = begin + newline + 1
            break
        end = begin
    os.ftruncate(fd, whole)
    log.warning(
        "capture file %s ended in a torn line (%d bytes); cut back to the last whole line",
        path,
        size - whole,
    )
    if os.fstat(fd).st_size != whole:
        raise OSError(f"the torn tail of {path} could not be cut")
    return whole
