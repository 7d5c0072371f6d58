"""Where batches go: the one interface the worker sees, and the choice made from settings.

Two destinations implement it: ``HttpDestination`` (``sinks/http.py``, POST to the
analytics endpoint) and ``CaptureDestination`` (``sinks/capture.py``, one line per batch
in a file, never HTTP). The worker never asks which one it has: what differs between
them (what a success counts as, whether the test switch may open the auth gate, whether
the destination is failing) is a property of the destination, as httpx keeps its
transports behind one ``handle_async_request``.
"""

from __future__ import annotations

from typing import Protocol

from .capture import CaptureDestination
from .http import HttpDestination
from .outcomes import SuccessOutcome
from .settings import SinkSettings


class Destination(Protocol):
    @property
    def name(self) -> str:
        """``http`` or ``capture``: the ``mode`` in ``/readyz``."""

    @property
    def target(self) -> str:
        """Where batches go, for the start-up line (never a credential)."""

    @property
    def success_outcome(self) -> SuccessOutcome:
        """What a successful write counts as: ``delivered`` (HTTP) or ``captured``."""

    @property
    def may_ignore_auth(self) -> bool:
        """Whether ``capture_ignores_auth`` (a test switch) may open the auth gate here:
        only for capture, so that nothing is ever POSTed without a credential."""

    @property
    def failing(self) -> bool:
        """Whether the last write (or ``prepare``) failed in a way that makes the sink
        not ready: a capture file that cannot be written. HTTP errors do not count."""

    def prepare(self) -> Exception | None:
        """Get ready at start. A failure is logged here and returned, never raised: the
        sink keeps running and retries per batch."""

    def recheck(self) -> None:
        """Try again what only ``prepare`` tries (a readiness probe asks): a failure is
        never kept when nothing would try again."""

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """Write one batch body; the 2xx status, or a ``DeliveryError``."""

    async def aclose(self) -> None: ...


def destination_for(settings: SinkSettings) -> Destination:
    """The destination ``settings.mode`` names (chosen once, at start)."""
    if settings.mode == "capture":
        assert settings.capture_file is not None
        return CaptureDestination(settings.capture_file, fsync=settings.capture_fsync)
    assert settings.base_url is not None
    return HttpDestination(
        settings.base_url,
        timeout_s=settings.http_timeout_s,
        gzip_body=settings.http_gzip,
        max_connections=settings.http_max_connections,
        client=settings.http_client,
    )
