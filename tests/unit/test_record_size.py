"""The one record-size limit: what derives from it, and dead letters cut to fit it."""

from __future__ import annotations

from codex_analytics.contract import DEFAULT_MAX_FACT_BYTES, DEFAULT_MAX_RECORD_BYTES
from codex_analytics.runtime.deadletter import (
    ORIGINAL_BYTES,
    ORIGINAL_KEY_BYTES,
    TRUNCATED,
    dead_letter,
    fit,
)
from codex_analytics.runtime.kafka import TopicSettings, producer_options
from codex_analytics.runtime.record_size import (
    RECORD_FRAMING_BYTES,
    max_request_bytes,
    record_bytes,
)
from producers.client.settings import ClientSettings
from producers.gateway.settings import GatewaySettings
from producers.publishing.transport import KafkaFactTransport
from streams.settings import StreamSettings

_BROKER_DEFAULT_MESSAGE_MAX = 1_048_588


def letter(value: bytes, key: bytes | None = b"inst-1", detail: str = "why"):  # type: ignore[no-untyped-def]
    return dead_letter(
        value,
        key,
        reason="too_large",
        stage="decode",
        topic="t",
        partition=0,
        offset=1,
        detail=detail,
    )


def test_the_defaults_work_together_and_under_kafkas_broker_default() -> None:
    assert TopicSettings().max_record_bytes == DEFAULT_MAX_RECORD_BYTES
    assert DEFAULT_MAX_FACT_BYTES == DEFAULT_MAX_RECORD_BYTES
    assert producer_options()["max_request_size"] == max_request_bytes(DEFAULT_MAX_RECORD_BYTES)
    assert max_request_bytes(DEFAULT_MAX_RECORD_BYTES) <= _BROKER_DEFAULT_MESSAGE_MAX


def test_one_setting_moves_every_limit() -> None:
    env = {"ANALYTICS_MAX_RECORD_BYTES": "65536"}
    settings = StreamSettings.from_env(env)
    assert settings.max_record_bytes == settings.topics.max_record_bytes == 65536
    assert GatewaySettings.from_env(env).max_record_bytes == 65536
    assert ClientSettings.from_env(env).max_record_bytes == 65536
    transport = KafkaFactTransport("127.0.0.1:9", "facts", max_record_bytes=65536)
    assert transport.max_record_bytes == 65536
    assert producer_options(65536)["max_request_size"] == 65536 + RECORD_FRAMING_BYTES


def test_record_bytes_counts_key_value_and_headers() -> None:
    assert record_bytes(b"ab", b"cde", [("h", b"xy")]) == 2 + 3 + 1 + 2
    assert record_bytes(None, None) == 0


def test_a_dead_letter_that_fits_is_left_alone() -> None:
    small = letter(b"v" * 100)
    assert fit(small, 4096) is small


def test_a_dead_letter_over_the_limit_keeps_the_head_of_its_value_and_says_so() -> None:
    big = letter(b"v" * 10_000, detail="d" * 400)
    cut = fit(big, 4096)
    assert cut.size <= 4096
    headers = dict(cut.headers)
    assert headers[TRUNCATED] == b"true"
    assert headers[ORIGINAL_BYTES] == b"10000"
    assert ORIGINAL_KEY_BYTES not in headers
    assert headers["error.detail"] == b"d" * 400  # its headers are kept when there is room
    assert big.value.startswith(cut.value)
    assert len(cut.value) > 3000


def test_a_huge_key_and_headers_are_cut_too_even_at_the_smallest_limit() -> None:
    big = letter(b"v" * 5000, key=b"k" * 5000, detail="d" * 5000)
    cut = fit(big, 1024)
    assert cut.size <= 1024
    assert dict(cut.headers)[ORIGINAL_KEY_BYTES] == b"5000"
    assert cut.key is not None
    assert (b"k" * 5000).startswith(cut.key)


def test_the_error_path_is_capped_like_the_detail() -> None:
    made = dead_letter(
        b"{}", None, reason="r", stage="decode", topic="t", partition=0, offset=0, path="p" * 9000
    )
    assert len(dict(made.headers)["error.path"]) == 512
