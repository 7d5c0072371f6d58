"""HTTP destination: POST a batch body to the analytics endpoint (delivery.md §3.1).

``HttpDestination`` (it implements ``sinks.destinations.Destination``) builds the request
and judges the answer (status, ``Retry-After``, redaction); an ``HttpClient`` sends it:
``AiohttpClient`` (the default: ``ANALYTICS_HTTP_CLIENT=aiohttp``) or ``HttpxClient``.
Each is one pooled client per sink process, and each maps its library's errors to ours
the same way: a header it cannot write is ``UnsendableRequestError``, anything else
that failed is ``RetryableDeliveryError`` (retries, ``Retry-After`` and dead letters are
decided above, in ``sinks.delivery``). ``transport`` (an ``httpx`` transport) is the seam
for tests that want an in-process endpoint; the integration tests use a real server on
127.0.0.1.

No error it raises carries the token: transport errors whose text could quote a header
are reported by type, and a refusal's body is redacted of the token before it is kept.
"""

from __future__ import annotations

import gzip
import re
from typing import Literal, NamedTuple, Protocol

import aiohttp
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


class Reply(NamedTuple):
    """What the destination reads of an answer."""

    status: int
    retry_after: str | None
    body: bytes


class HttpClient(Protocol):
    """POST one body; the answer, or a ``DeliveryError`` (never an error of the library)."""

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply: ...

    async def aclose(self) -> None: ...


#: The HTTP clients ``ANALYTICS_HTTP_CLIENT`` may name.
HTTP_CLIENTS = ("aiohttp", "httpx")


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
        client: str = "aiohttp",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = events_url(base_url)
        self._gzip = gzip_body
        if client not in HTTP_CLIENTS:
            raise ValueError(f"unknown HTTP client {client!r}: one of {', '.join(HTTP_CLIENTS)}")
        if transport is not None:
            client = "httpx"  # an in-process httpx endpoint (tests)
        self.client_name = client
        self._client: HttpClient = (
            HttpxClient(timeout_s, max_connections, transport)
            if client == "httpx"
            else AiohttpClient(timeout_s, max_connections)
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
        reply = await self._client.post(self.url, body, headers)
        if 200 <= reply.status < 300:
            return reply.status
        # The whole body is redacted before anything is cut from it: a token that
        # straddled the cut would leave a piece behind.
        error = check_response(reply.status, reply.retry_after, redact_headers(reply.body, headers))
        assert error is not None
        raise error

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpDestination({self.url!r}, gzip={self._gzip}, client={self.client_name})"


def _unsendable(err: BaseException) -> UnsendableRequestError:
    return UnsendableRequestError(
        f"the events request could not be written: {type(err).__name__} "
        "(its text is withheld: it may quote a header)"
    )


class HttpxClient:
    """``httpx.AsyncClient``: each phase (pool, connect, write, read) within the timeout."""

    def __init__(
        self,
        timeout_s: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        try:
            response = await self._client.post(url, content=body, headers=headers)
            _release(response)
        except (httpx.LocalProtocolError, UnicodeEncodeError) as err:
            # A header the client will not write: the same request can never be sent.
            raise _unsendable(err) from None
        except httpx.HTTPError as err:
            raise RetryableDeliveryError(
                f"failed to send events request: {describe_http_error(err)}"
            ) from None
        return Reply(response.status_code, response.headers.get("retry-after"), response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


#: What h11 (and so httpx) refuses to write in a header value: control characters
#: other than HTAB, anything outside ASCII, and surrounding whitespace; in a name,
#: anything but a token. aiohttp would write some of these (UTF-8, NUL), so they are
#: refused before it sees them: one rule whichever client sends.
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]|^[ \t]|[ \t]$")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_headers(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        if _TOKEN.fullmatch(name) is None or _BAD_VALUE.search(value) is not None:
            raise UnsendableRequestError(
                "the events request could not be written: a header the client will not "
                "write (its value is withheld: it may be a secret)"
            )


#: aiohttp errors whose text comes from the socket, the clock or the server, and so
#: cannot quote a request header (as ``_TEXT_IS_SAFE`` for httpx).
_AIOHTTP_TEXT_IS_SAFE: tuple[type[BaseException], ...] = (
    TimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)


class AiohttpClient:
    """``aiohttp.ClientSession``, made on first use (it belongs to the running loop).

    Timeouts as httpx's: connecting (pool wait included) and each read within
    ``timeout_s``; the whole request, write included, within four times that, so that
    no request waits without a deadline."""

    def __init__(self, timeout_s: float, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=4 * timeout_s, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=self._max_connections
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            # No cookie jar: a cookie the endpoint sets must not travel with another
            # account's batch (httpx keeps cookies; the endpoint sets none).
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        _check_headers(headers)
        session = self._session or self._open()
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                content = await response.read()
                return Reply(response.status, response.headers.get("Retry-After"), content)
        except (ValueError, UnicodeEncodeError) as err:
            # A header aiohttp will not write after all (it checks CR and LF itself).
            raise _unsendable(err) from None
        except (TimeoutError, aiohttp.ClientError) as err:
            text = (
                f": {err}"
                if isinstance(err, _AIOHTTP_TEXT_IS_SAFE)
                else (" (its text is withheld: it may quote a header)")
            )
            raise RetryableDeliveryError(
                f"failed to send events request: {type(err).__name__}{text}"
            ) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
