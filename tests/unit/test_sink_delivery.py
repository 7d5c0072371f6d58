"""Response classification, the retry schedule, and both destinations (no broker)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import os
import stat
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from tenacity import RetryCallState

from sinks.capture import CaptureDestination
from sinks.errors import (
    BackpressureError,
    CaptureWriteError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SinkConfigError,
    UnsendableRequestError,
)
from sinks.http import HTTP_CLIENTS, HttpDestination, events_url, redact
from sinks.retry import RetryPolicy, check_response, parse_retry_after
from sinks.settings import SinkSettings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 0.5 ", 0.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)


def test_responses_are_classified() -> None:
    assert check_response(204, None, b"") is None
    assert isinstance(check_response(429, None, b""), BackpressureError)
    busy = check_response(503, "2", b"")
    assert isinstance(busy, BackpressureError)
    assert busy.retry_after == 2
    plain = check_response(500, None, b"")
    assert type(plain) is RetryableDeliveryError
    assert plain.retry_after is None
    assert type(check_response(408, None, b"")) is RetryableDeliveryError
    refused = check_response(400, None, b"x" * 10_000)
    assert isinstance(refused, PermanentDeliveryError)
    assert refused.status == 400
    assert len(refused.body) == 4096
    assert isinstance(check_response(302, None, b""), PermanentDeliveryError)


def _state(error: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_backoff_is_jittered_exponential_and_capped() -> None:
    wait = RetryPolicy(initial_s=0.1, max_s=2.0).wait()
    for attempt in range(1, 12):
        delays = [wait(_state(RetryableDeliveryError("x"), attempt)) for _ in range(50)]
        assert all(0 <= d <= min(2.0, 0.1 * 2**attempt) + 1e-9 for d in delays)
    assert len({round(wait(_state(RetryableDeliveryError("x"), 5)), 6) for _ in range(20)}) > 1


def test_retry_after_is_honoured_at_least_and_capped() -> None:
    wait = RetryPolicy(initial_s=0.1, max_s=2.0, max_retry_after_s=60).wait()
    delays = [wait(_state(BackpressureError("x", retry_after=5), 1)) for _ in range(50)]
    assert all(5 <= d <= 5.5 for d in delays)
    assert wait(_state(BackpressureError("x", retry_after=3600), 1)) <= 61


@pytest.mark.parametrize("retry_after", [0.0, parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")])
def test_a_retry_after_of_no_wait_keeps_the_backoff(retry_after: float | None) -> None:
    """Issue #16: ``Retry-After: 0`` or a past date once made every wait 0 (~730
    requests/s per partition); the policy's backoff, from ``initial_s`` up, still holds."""
    assert retry_after == 0.0
    wait = RetryPolicy(initial_s=0.2, max_s=5.0).wait()
    for attempt in range(1, 10):
        backoff_cap = min(5.0, 0.2 * 2 ** (attempt - 1))
        delays = [
            wait(_state(BackpressureError("x", retry_after=retry_after), attempt))
            for _ in range(50)
        ]
        assert all(0.2 <= d <= backoff_cap + 1e-9 for d in delays), (attempt, min(delays))


def test_full_jitter_never_waits_less_than_the_initial_backoff() -> None:
    wait = RetryPolicy(initial_s=0.3, max_s=2.0).wait()
    delays = [wait(_state(RetryableDeliveryError("x"), a)) for a in range(1, 8) for _ in range(200)]
    assert min(delays) >= 0.3
    assert max(delays) <= 2.0


def _recording(status: int) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport that answers every request with ``status`` and keeps the requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)

    return seen, httpx.MockTransport(handler)


async def test_http_destination_posts_the_body_with_the_headers() -> None:
    seen, transport = _recording(202)
    destination = HttpDestination("https://chatgpt.example/backend-api///", transport=transport)
    status = await destination.deliver(b'{"events":[]}', {"Authorization": "Bearer t", "X-A": "1"})
    await destination.aclose()
    assert status == 202
    (request,) = seen
    assert str(request.url) == "https://chatgpt.example/backend-api/codex/analytics-events/events"
    assert request.content == b'{"events":[]}'
    assert request.headers["x-a"] == "1"


async def test_http_destination_gzips_when_asked() -> None:
    seen, transport = _recording(200)
    destination = HttpDestination("http://h/", gzip_body=True, transport=transport)
    await destination.deliver(b'{"events":[1]}', {})
    assert seen[0].headers["content-encoding"] == "gzip"
    assert gzip.decompress(seen[0].content) == b'{"events":[1]}'


async def test_http_transport_errors_are_retryable_and_name_no_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    destination = HttpDestination("http://h/", transport=httpx.MockTransport(handler))
    with pytest.raises(RetryableDeliveryError) as caught:
        await destination.deliver(b"{}", {"Authorization": "Bearer SECRET"})
    assert "SECRET" not in str(caught.value)
    assert "ConnectError" in str(caught.value)


@pytest.mark.parametrize("client", HTTP_CLIENTS)
@pytest.mark.parametrize(
    "token",
    ["tok-LEFT\ntok-RIGHT", "tok-LEFT\x00tok-RIGHT", "tok-LEFT\u00fctok-RIGHT", "tok-LEFT\r"],
)
async def test_a_header_the_client_cannot_write_is_unsendable_and_never_quoted(
    token: str, client: str
) -> None:
    """A safety net behind the credential checks: h11 quotes an illegal header value
    whole in its error, and httpx cannot encode a non-ASCII one (it crashed the sink)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        writer.close()

    # A socket, not a mock transport: h11, which writes the request, is what refuses it.
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    destination = HttpDestination(f"http://127.0.0.1:{port}/", client=client)
    try:
        with pytest.raises(UnsendableRequestError) as caught:
            await destination.deliver(b"{}", {"Authorization": f"Bearer {token}"})
    finally:
        await destination.aclose()
        server.close()
    assert "tok-LEFT" not in str(caught.value)
    assert "tok-RIGHT" not in str(caught.value)
    assert caught.value.reason == "unsendable_request"


async def test_an_http_error_whose_text_may_quote_a_header_is_reported_by_type() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol(f"bad {request.headers['authorization']}", request=request)

    destination = HttpDestination("http://h/", transport=httpx.MockTransport(handler))
    with pytest.raises(RetryableDeliveryError) as caught:
        await destination.deliver(b"{}", {"Authorization": "Bearer SECRET"})
    assert "SECRET" not in str(caught.value)
    assert "UnsupportedProtocol (its text is withheld" in str(caught.value)


async def test_a_refusal_that_echoes_the_token_is_kept_without_it() -> None:
    token = "tok-Echo/42"
    # The token twice, once across the 4 KiB cut, once JSON-escaped.
    echoed = b"x" * 4085 + b"Bearer " + token.encode() + b' {"auth":"tok-Echo\\/42"}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=echoed)

    destination = HttpDestination("http://h/", transport=httpx.MockTransport(handler))
    with pytest.raises(PermanentDeliveryError) as caught:
        await destination.deliver(b"{}", {"Authorization": f"Bearer {token}"})
    assert b"tok-" not in caught.value.body
    assert caught.value.body.endswith(b"Bearer [red")  # redacted, then cut at 4 KiB
    assert redact(b'{"auth":"tok-Echo\\/42"}', f"Bearer {token}") == b'{"auth":"[redacted]"}'


class _Endpoint:
    """A real HTTP/1.1 endpoint on 127.0.0.1 that answers every request with ``answer``
    (status line, headers, body) and keeps each request's head and body."""

    def __init__(self, answer: bytes, *, delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api/"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0)  # the handlers see the end of their streams

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                self.requests.append((head, await reader.readexactly(length)))
                await asyncio.sleep(self.delay_s)
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _answer(status: str, body: bytes = b"", *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in (*headers, f"content-length: {len(body)}"))
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


@pytest.mark.parametrize("client", HTTP_CLIENTS)
async def test_both_clients_post_the_same_request_and_read_the_answer_alike(client: str) -> None:
    """Each client against a real endpoint: the body and headers as given, on one pooled
    connection; 2xx returned; Retry-After and the redacted refusal as the policy says."""
    endpoint = _Endpoint(_answer("202 Accepted"))
    async with endpoint as base_url:
        destination = HttpDestination(base_url, client=client)
        try:
            for _ in range(2):
                status = await destination.deliver(
                    b'{"events":[1]}', {"Authorization": "Bearer t", "Idempotency-Key": "k1"}
                )
                assert status == 202
            endpoint.answer = _answer("503 Service Unavailable", b"", "Retry-After: 7")
            with pytest.raises(BackpressureError) as busy:
                await destination.deliver(b"{}", {"Authorization": "Bearer t"})
            assert (busy.value.retry_after, busy.value.status) == (7.0, 503)
            endpoint.answer = _answer("400 Bad Request", b'{"echo":"Bearer tok-9"}')
            with pytest.raises(PermanentDeliveryError) as refused:
                await destination.deliver(b"{}", {"Authorization": "Bearer tok-9"})
            assert refused.value.body == b'{"echo":"Bearer [redacted]"}'
        finally:
            await destination.aclose()
    head, body = endpoint.requests[0]
    assert head.startswith(b"POST /api/codex/analytics-events/events HTTP/1.1\r\n")
    assert body == b'{"events":[1]}'
    lines = head.lower().split(b"\r\n")
    assert b"authorization: bearer t" in lines
    assert b"idempotency-key: k1" in lines
    assert not any(line.startswith(b"cookie") for line in lines)


@pytest.mark.parametrize("client", HTTP_CLIENTS)
async def test_both_clients_gzip_when_asked(client: str) -> None:
    endpoint = _Endpoint(_answer("200 OK"))
    async with endpoint as base_url:
        destination = HttpDestination(base_url, gzip_body=True, client=client)
        try:
            await destination.deliver(b'{"events":[2]}', {})
        finally:
            await destination.aclose()
    head, body = endpoint.requests[0]
    assert b"content-encoding: gzip" in head.lower().split(b"\r\n")
    assert gzip.decompress(body) == b'{"events":[2]}'


@pytest.mark.parametrize("client", HTTP_CLIENTS)
async def test_both_clients_time_out_and_fail_to_connect_as_retryable_errors(client: str) -> None:
    endpoint = _Endpoint(_answer("200 OK"), delay_s=5.0)
    async with endpoint as base_url:
        destination = HttpDestination(base_url, timeout_s=0.2, client=client)
        try:
            with pytest.raises(RetryableDeliveryError, match="Timeout") as slow:
                await destination.deliver(b"{}", {"Authorization": "Bearer SECRET"})
        finally:
            await destination.aclose()
    assert "SECRET" not in str(slow.value)
    # Nothing listens there any more.
    destination = HttpDestination(base_url, client=client)
    try:
        with pytest.raises(RetryableDeliveryError, match="Connect") as refused:
            await destination.deliver(b"{}", {"Authorization": "Bearer SECRET"})
    finally:
        await destination.aclose()
    assert "SECRET" not in str(refused.value)


async def test_an_aiohttp_request_leaves_no_cycle_that_holds_its_body() -> None:
    # As the httpx test below: the sink runs the cyclic collector rarely, so a cycle
    # through a request would keep its body (a whole batch) alive.
    endpoint = _Endpoint(_answer("200 OK"))
    async with endpoint as base_url:
        destination = HttpDestination(base_url, client="aiohttp")
        try:
            await destination.deliver(b"{}", {})  # the session and its connection
            gc.collect()
            gc.disable()
            try:
                for _ in range(3):
                    await destination.deliver(b'{"events":[1]}', {"Authorization": "Bearer t"})
                assert gc.collect() == 0
            finally:
                gc.enable()
        finally:
            await destination.aclose()


def test_an_unknown_http_client_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown HTTP client"):
        HttpDestination("http://h/", client="requests")
    with pytest.raises(SinkConfigError, match="ANALYTICS_HTTP_CLIENT"):
        SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h", "ANALYTICS_HTTP_CLIENT": "curl"})
    assert SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h"}).http_client == "aiohttp"


def test_events_url_strips_every_trailing_slash() -> None:
    assert (
        events_url("https://chatgpt.com/backend-api/")
        == "https://chatgpt.com/backend-api/codex/analytics-events/events"
    )
    assert events_url("http://h") == "http://h/codex/analytics-events/events"


async def test_capture_appends_lines_with_mode_0600_and_ignores_headers(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    destination = CaptureDestination(str(path), fsync=True)
    assert destination.prepare() is None
    assert path.read_bytes() == b""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    await destination.deliver(b'{"events":[1]}', {"Authorization": "Bearer SECRET"})
    await destination.deliver(b'{"events":[2]}', {})
    assert path.read_bytes() == b'{"events":[1]}\n{"events":[2]}\n'


async def test_capture_failures_are_retryable_errors(tmp_path: Path) -> None:
    destination = CaptureDestination(str(tmp_path / "missing" / "c.jsonl"))
    assert isinstance(destination.prepare(), FileNotFoundError)
    with pytest.raises(CaptureWriteError, match="failed to capture analytics events"):
        await destination.deliver(b"{}", {})
    (tmp_path / "missing").mkdir()
    await destination.deliver(b"{}", {})
    assert (tmp_path / "missing" / "c.jsonl").read_bytes() == b"{}\n"


def test_settings_require_a_base_url_or_a_capture_file() -> None:
    with pytest.raises(SinkConfigError, match="ANALYTICS_BASE_URL is not set"):
        SinkSettings.from_env({})
    with pytest.raises(SinkConfigError, match="http"):
        SinkSettings.from_env({"ANALYTICS_BASE_URL": "chatgpt.com"})
    with pytest.raises(SinkConfigError, match="ANALYTICS_BATCH_MAX_EVENTS"):
        SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h", "ANALYTICS_BATCH_MAX_EVENTS": "0"})


def test_settings_defaults_and_capture_mode() -> None:
    http = SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h/"})
    assert (http.mode, http.limits.max_events, http.limits.max_bytes, http.limits.max_wait_ms) == (
        "http",
        500,
        1024 * 1024,
        1000,
    )
    assert http.http_timeout_s == 10
    assert not http.http_gzip
    assert http.retry.max_elapsed_s is None
    capture = SinkSettings.from_env(
        {"CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": "/tmp/x.jsonl", "ANALYTICS_BASE_URL": "http://h"}
    )
    assert capture.mode == "capture"  # the capture file wins: HTTP is never used
    empty = SinkSettings.from_env(
        {"CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": "", "ANALYTICS_BASE_URL": "http://h"}
    )
    assert empty.mode == "http"  # an empty value counts as unset, as upstream


async def test_a_delivered_request_leaves_no_cycle_that_holds_its_body() -> None:
    # httpx 0.28 binds each response's stream back to the response; the request, body
    # and all, then waited for the cyclic collector, which the sink runs rarely.
    destination = HttpDestination(
        "http://endpoint.test/", transport=httpx.MockTransport(lambda _: httpx.Response(200))
    )
    gc.collect()
    gc.disable()
    try:
        assert await destination.deliver(b'{"events":[1]}', {}) == 200
        left = [o for o in gc.get_objects() if isinstance(o, httpx.Response | httpx.Request)]
    finally:
        gc.enable()
        await destination.aclose()
    assert left == []
