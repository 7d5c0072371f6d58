"""HTTP destination: POST a batch body to the analytics endpoint (delivery.md §3.1).

One ``httpx.AsyncClient`` per sink process, so connections are pooled and reused.
``transport`` is the seam for tests that want an in-process endpoint; the integration
tests use a real server on 127.0.0.1. It implements ``sinks.destinations.Destination``.
"""

from __future__ import annotations

import gzip
from typing import Literal

import httpx

from codex_analytics.contract import EVENTS_PATH

from .errors import RetryableDeliveryError
from .retry import check_response


def events_url(base_url: str) -> str:
    """``{base_url with every trailing / removed}/codex/analytics-events/events``."""
    return base_url.rstrip("/") + EVENTS_PATH


class HttpDestination:
    name = "http"
    success_outcome: Literal["delivered"] = "delivered"
    #: ``capture_ignores_auth`` never applies here: nothing is POSTed without a credential.
    may_ignore_auth = False
    #: Failed requests are retried with the partition paused; they never make the sink
    #: unhealthy (the endpoint's trouble is not the sink's).
    failing = False

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        gzip_body: bool = False,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = events_url(base_url)
        self._gzip = gzip_body
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    @property
    def target(self) -> str:
        return f"POST {self.url}"

    def prepare(self) -> None:
        """Nothing to get ready: the client connects on first use."""
        return None

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """Send one batch; returns the 2xx status or raises a ``DeliveryError``."""
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            # httpx's messages name the URL and the failure, never the request headers.
            raise RetryableDeliveryError(
                f"failed to send events request: {type(err).__name__}: {err}"
            ) from None
        error = check_response(
            response.status_code, response.headers.get("retry-after"), response.content
        )
        if error is not None:
            raise error
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpDestination({self.url!r}, gzip={self._gzip})"
