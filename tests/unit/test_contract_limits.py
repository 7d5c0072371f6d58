"""The contract's string limits (docs/contract.md, "Limits") and bounded error texts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from codex_analytics.contract import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    DecodeError,
    DecodeReason,
    decode_fact,
    fact_from_json,
)
from codex_analytics.contract.errors import MAX_DETAIL_CHARS, MAX_PATH_SEGMENT_CHARS
from codex_analytics.simulator.fact_builder import FactBuilder
from tests.cli import ROOT

Fact = dict[str, Any]


def _set(fact: Fact, path: str, value: Any) -> Fact:
    *parents, last = path.split(".")
    node: Any = fact
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return fact


ID, NAME = MAX_ID_CHARS, MAX_NAME_CHARS
INIT = "payload.params.clientInfo"

# (case, fact, dotted path of a bounded string, its limit)
CASES: list[tuple[str, Callable[[FactBuilder], Fact], str, int]] = [
    ("instance id", FactBuilder.token_usage, "source.instance_id", ID),
    ("fact id", FactBuilder.token_usage, "fact_id", ID),
    ("originator", FactBuilder.token_usage, "source.originator", NAME),
    ("runtime", FactBuilder.token_usage, "source.runtime.runtime_os_version", NAME),
    ("turn id", FactBuilder.token_usage, "payload.turn_id", ID),
    ("client name", FactBuilder.initialize, f"{INIT}.name", NAME),
    ("client version", FactBuilder.initialize, f"{INIT}.version", NAME),
    ("product client id", FactBuilder.initialize, "payload.product_client_id", ID),
    ("request id", lambda b: b.turn_start_request(request_id="r"), "payload.request_id", ID),
    ("thread id", FactBuilder.thread_response, "payload.result.thread.id", ID),
    ("model", FactBuilder.thread_response, "payload.result.model", NAME),
    ("method", FactBuilder.turn_completed, "payload.method", NAME),
    ("connector id", FactBuilder.app_used, "payload.app.connector_id", ID),
    ("app name", FactBuilder.app_used, "payload.app.app_name", NAME),
    ("subagent client", FactBuilder.subagent_thread_started, "payload.client_name", NAME),
]


@pytest.mark.parametrize(("name", "build", "path", "limit"), CASES, ids=[c[0] for c in CASES])
def test_a_string_at_its_limit_passes_and_one_more_character_is_too_long(
    name: str, build: Callable[[FactBuilder], Fact], path: str, limit: int
) -> None:
    at_limit = _set(build(FactBuilder()), path, "x" * limit)
    fact_from_json(at_limit)
    over = _set(build(FactBuilder()), path, "é" * (limit + 1))
    with pytest.raises(DecodeError) as caught:
        fact_from_json(over)
    assert caught.value.reason is DecodeReason.TOO_LONG
    assert caught.value.path == path
    assert caught.value.detail == f"{limit + 1} characters exceeds the limit of {limit}"


def test_subagent_source_other_name_is_bounded() -> None:
    fact = FactBuilder().subagent_thread_started(subagent_source={"other": "n" * MAX_NAME_CHARS})
    fact_from_json(fact)
    fact["payload"]["subagent_source"]["other"] += "n"
    with pytest.raises(DecodeError) as caught:
        fact_from_json(fact)
    assert caught.value.reason is DecodeReason.TOO_LONG
    assert caught.value.path == "payload.subagent_source.other"


def test_the_limits_are_far_above_every_spec_vector() -> None:
    """Every string of every vector is at most 76 characters: a tenth of the id limit."""
    longest = 0

    def walk(value: Any) -> None:
        nonlocal longest
        if isinstance(value, str):
            longest = max(longest, len(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for line in (ROOT / "tests" / "data" / "spec_vectors.jsonl").read_bytes().splitlines():
        for fact in orjson.loads(line).get("facts", []):
            walk(fact)
            decode_fact(orjson.dumps(fact))
    assert 0 < longest * 10 < MAX_ID_CHARS < MAX_NAME_CHARS


def test_an_unknown_subagent_tag_of_500_kb_gives_a_short_error() -> None:
    tag = "t" * 500_000
    fact = FactBuilder().subagent_thread_started(subagent_source={tag: {}})
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(fact))
    err = caught.value
    assert err.reason is DecodeReason.UNKNOWN_ENUM_VALUE
    assert err.path == "payload.subagent_source"  # the tag is the caller's text, not a path
    assert len(str(err)) < 200
    thread = FactBuilder().thread_response(source={"subAgent": {tag: {}}})
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(thread))
    assert caught.value.path == "payload.result.thread.source.subAgent"
    assert len(str(caught.value)) < 200


def test_every_decode_error_is_bounded_whatever_it_quotes() -> None:
    err = DecodeError(DecodeReason.INTERNAL, "k" * 10_000, "d" * 1_000_000)
    err.within("x" * 10_000).within(3).within("payload")
    assert len(err.detail) == MAX_DETAIL_CHARS
    assert err.detail.endswith("\u2026")
    assert err.path.startswith("payload[3].xxx")
    assert len(err.path) <= 3 * MAX_PATH_SEGMENT_CHARS
    assert len(str(err)) < 1000
