"""HTTP destination: POST a batch body to the analytics endpoint (delivery.md §3.1).

One ``httpx.AsyncClient`` per sink process, so connections are pooled and reused.
``transport`` is the seam for tests that want an in-process endpoint; the integration
tests use a real server on 127.0.0.1. It implements ``sinks.destinations.Destination``.

No error it raises carries the token: transport errors whose text could quote a header
are reported by type, and a refusal's body is redacted of the token before it is kept.
"""

from __future__ import annotations

import gzip
from typing import Literal

import httpx
import orjson

from codex_analytics.contract import EVENTS_PATH

from .errors import RetryableDeliveryError, UnsendableRequestError
from .retry import check_response

#: What stands for a token that an endpoint echoed back.
REDACTED = b"[redacted]"
#: Transport errors whose text comes from the socket, the clock or the server, and so
#: cannot quote a request header: their text is kept. Any other error's text may (h11
#: quotes an illegal header value whole, the token with it), so only its type is kept.
_TEXT_IS_SAFE: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def events_url(base_url: str) -> str:
    """``{base_url with every trailing / removed}/codex/analytics-events/events``."""
    return base_url.rstrip("/") + EVENTS_PATH


class HttpDestination:
    name = "http"
    success_outcome: Literal["delivered"] = "delivered"
    #: ``capture_ignores_auth`` never applies here: nothing is POSTed without a credential.
    may_ignore_auth = False
    #: Failed requests are retried with the partition paused; they never make the sink
    #: not ready (the endpoint's trouble is not the sink's: another sink pod could not
    #: deliver either, and the backlog waits in Kafka).
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

    def recheck(self) -> None:
        """Nothing to check: requests are retried by their batches."""
        return None

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """Send one batch; returns the 2xx status or raises a ``DeliveryError``."""
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
            _release(response)
        except (httpx.LocalProtocolError, UnicodeEncodeError) as err:
            # A header the client will not write: the same request can never be sent.
            raise UnsendableRequestError(
                f"the events request could not be written: {type(err).__name__} "
                "(its text is withheld: it may quote a header)"
            ) from None
        except httpx.HTTPError as err:
            raise RetryableDeliveryError(
                f"failed to send events request: {describe_http_error(err)}"
            ) from None
        # The whole body is redacted before anything is cut from it: a token that
        # straddled the cut would leave a piece behind.
        error = check_response(
            response.status_code,
            response.headers.get("retry-after"),
            redact_headers(response.content, headers),
        )
        if error is not None:
            raise error
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpDestination({self.url!r}, gzip={self._gzip})"


def _release(response: httpx.Response) -> None:
    """Break the reference cycle httpx 0.28 leaves between a read response and its
    stream (``response.stream`` is a ``BoundAsyncStream`` that refers back to the
    response: encode/httpx#3733). Through ``response.request`` the cycle holds the
    request body, a whole batch, until the cyclic garbage collector runs, which the sink
    makes rare (``sinks.runner.GC_THRESHOLDS``): bodies piled up by the hundred while a
    backlog drained. The response is read and closed by then (``post`` reads it
    whole); its content, status and headers stay."""
    response.stream = httpx.ByteStream(b"")


def redact(body: bytes, authorization: str | None) -> bytes:
    """``body`` without the token of ``authorization``: an endpoint or a proxy may echo
    the request's headers in an error body, which the sink logs (200 bytes) and
    dead-letters (4 KiB). The token as sent and as JSON escapes it (with ``/`` as
    ``\\/`` too, as some encoders write it) go; other encodings of it (base64,
    percent-encoding) are not looked for."""
    if not authorization or not body:
        return body
    token = authorization.partition(" ")[2] or authorization
    escaped = orjson.dumps(token)[1:-1]
    for form in {token.encode(), escaped, escaped.replace(b"/", b"\\/")}:
        body = body.replace(form, REDACTED)
    return body


#: Request headers whose values are no secret: the rest (``Authorization``, and the
#: external headers of a ``headers`` credential) are redacted from an error body.
_PUBLIC_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "idempotency-key",
        "chatgpt-account-id",
        "x-openai-fedramp",
    }
)


def redact_headers(body: bytes, headers: dict[str, str]) -> bytes:
    """``body`` without any secret the request's headers carried (see :func:`redact`):
    the credential of ``Authorization`` (a bearer token or an agent assertion) and the
    value of every header that is not one of the sink's own."""
    for name, value in headers.items():
        if name.lower() not in _PUBLIC_HEADERS:
            body = redact(body, value)
    return body


def describe_http_error(err: httpx.HTTPError) -> str:
    """``err`` for a log line or a dead letter: its type, and its text only when that
    text cannot quote a request header."""
    if isinstance(err, _TEXT_IS_SAFE):
        return f"{type(err).__name__}: {err}"
    return f"{type(err).__name__} (its text is withheld: it may quote a header)"
