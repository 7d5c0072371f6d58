"""How many ingest requests, and how many body bytes, the gateway handles at once.

A request is admitted before its body is read, for the bytes its ``Content-Length``
announces (or the largest body when it announces none), and keeps them until it is
answered; a request over either budget is answered 429 at once instead of queueing, so
the process's memory stays bounded however many clients send at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Admission:
    max_requests: int
    max_bytes: int
    requests: int = 0
    bytes: int = 0

    def admit(self, size: int) -> bool:
        """Take one request slot and ``size`` bytes, or nothing and False."""
        if self.requests >= self.max_requests or self.bytes + size > self.max_bytes:
            return False
        self.requests += 1
        self.bytes += size
        return True

    def release(self, size: int) -> None:
        self.requests -= 1
        self.bytes -= size
