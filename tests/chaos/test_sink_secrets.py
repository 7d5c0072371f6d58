"""Chaos: the sink's secrets (issue #16, items 4, 7 and 9), through the real
``codex-analytics sink worker`` process, a real broker and the recording receiver.

- A secret file that cannot be read for a while (chmod 000, then restored) loses no
  event of its account: the batch waits and is delivered once the file reads again.
- Tokens that are not valid header values (a control character, non-ASCII) neither
  crash the sink nor leak: that account's events are dead-lettered as
  ``invalid_credentials``, the other accounts' events are delivered, and the token is
  in no log, no topic and no request.
- ``Retry-After: 0`` or an HTTP date in the past does not remove the backoff: the
  policy's minimum backoff still spaces the requests, and the retry lines are
  rate-limited.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from codex_analytics.contract import EventRecord, encode_event_record, route_key
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.devtools.receiver import Answer, Receiver
from tests.integration.sink_helpers import (
    SinkRun,
    event_json,
    event_records,
    token_for,
    with_route,
)
from tests.integration.stream_helpers import collect

PARTITIONS = 6  # one per account in the busiest test


@pytest.fixture
def sink_run(kafka_bootstrap: str, new_sink_run: Callable[[str], SinkRun]) -> SinkRun:
    run = new_sink_run(kafka_bootstrap)
    run.partitions = PARTITIONS
    return run


# -- helpers -------------------------------------------------------------------------


def _partition_of(account: str) -> int:
    key = route_key(AuthRoute(kind="chatgpt", account_id=account))
    return int(DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS))))


def _accounts(*names: str) -> list[str]:
    """One account id per name, each on a partition of its own (so that a lane retrying
    one account never holds another's events back)."""
    chosen: list[str] = []
    used: set[int] = set()
    for name in names:
        for n in range(1000):
            candidate = f"acct-{name}-{n}"
            partition = _partition_of(candidate)
            if partition not in used:
                used.add(partition)
                chosen.append(candidate)
                break
    assert len(chosen) == len(names), "not enough partitions for one account each"
    return chosen


def _events_of(account: str, facts: int = 30, seed: int = 1) -> list[EventRecord]:
    route = AuthRoute(kind="chatgpt", account_id=account)
    return with_route(event_records(facts, instances=3, accounts=1, seed=seed), route)


def _received(receiver: Receiver, account: str) -> list[bytes]:
    """The events of ``account`` in accepted requests, a repeated key counted once."""
    seen: set[str | None] = set()
    events: list[bytes] = []
    for request in receiver.accepted():
        if request.headers.get("chatgpt-account-id") != account:
            continue
        if request.idempotency_key in seen:
            continue
        seen.add(request.idempotency_key)
        events.extend(orjson.dumps(e) for e in request.events)
    return sorted(events)


def _without_file_permission_override() -> None:  # pragma: no cover - runs in the child
    """Run in the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from
    the bounding set, so that the sink, run as root here, is refused a file of mode 000
    as any process in a container without those capabilities is."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _obeying_file_modes() -> Callable[[], None] | None:
    """A ``preexec_fn`` by which a root sink loses the right to read unreadable files."""
    return _without_file_permission_override if os.geteuid() == 0 else None


def _with_secrets(run: SinkRun, *names: str) -> list[str]:
    """Accounts (:func:`_accounts`), each with a good secret file."""
    accounts = _accounts(*names)
    for account in accounts:
        run.add_account(account)
    return accounts


async def _wait_until(predicate: Callable[[], bool], *, within: float) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _all_delivered(
    receiver: Receiver, account: str, records: list[EventRecord], *, within: float
) -> bool:
    """Whether every event of ``records`` reached the receiver under ``account``, each
    once (repeats of a key folded), within ``within`` seconds."""
    sent = sorted(event_json(r) for r in records)
    return await _wait_until(lambda: _received(receiver, account) == sent, within=within)


# -- item 4: a secret file that cannot be read for a while -----------------------------


async def test_a_secret_file_unreadable_for_a_while_loses_no_event(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    flaky, steady = _with_secrets(sink_run, "flaky", "steady")
    flaky_records, steady_records = _events_of(flaky, seed=1), _events_of(steady, seed=2)
    await sink_run.create_topics()
    secret = sink_run.secrets_dir / flaky
    with sink_run.process(preexec_fn=_obeying_file_modes()) as proc:
        secret.chmod(0)  # a rotation gone wrong: the file is there, and unreadable
        try:
            await sink_run.publish(flaky_records + steady_records)
            # The other account flows meanwhile, so the sink has read the flaky batch too.
            assert await _all_delivered(receiver, steady, steady_records, within=40), (
                sink_run.log_text()
            )
            await asyncio.sleep(1.0)  # the flaky account's batch is tried meanwhile
            assert _received(receiver, flaky) == []
        finally:
            secret.chmod(0o600)  # restored: the same file, the same mtime, size and inode
        assert await _all_delivered(receiver, flaky, flaky_records, within=20), sink_run.log_text()
        assert proc.poll() is None
    dead = await collect(sink_run.bootstrap, sink_run.dlq, want=1, within=1, settle=0)
    assert dead.raw == []
    # It was the file that failed (a read error, retried), not the account that was absent.
    assert f"account {flaky}: secret file {secret} could not be read" in sink_run.log_text()


# -- item 7: tokens that are not valid header values -----------------------------------

#: Distinct pieces of each bad token: none may appear anywhere, whatever escaping a
#: message would apply to the character between them.
BAD_TOKEN_PARTS = {
    "newline": ("sekret-nl-LEFT-7c1", "sekret-nl-RIGHT-9e2"),
    "nul-json": ("sekret-nul-LEFT-4a7", "sekret-nul-RIGHT-2b8"),
    "utf8": ("sekret-utf-LEFT-5d3", "sekret-utf-RIGHT-8f6"),
}


def _bad_secret_file(kind: str) -> bytes:
    left, right = BAD_TOKEN_PARTS[kind]
    if kind == "newline":
        return f"{left}\n{right}\n".encode()
    if kind == "nul-json":
        return orjson.dumps({"access_token": f"{left}\x00{right}"})
    return f"{left}\u00fc{right}".encode()


async def test_tokens_that_are_not_header_values_are_dead_lettered_and_never_leak(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    kinds = list(BAD_TOKEN_PARTS)
    *bad_accounts, good, echo = _accounts(*kinds, "good", "echo")
    bad = dict(zip(kinds, bad_accounts, strict=True))
    for account in (good, echo):
        sink_run.add_account(account)
    for kind, account in bad.items():
        (sink_run.secrets_dir / account).write_bytes(_bad_secret_file(kind))
    sink_run.env_overrides.update(ANALYTICS_CREDENTIAL_WAIT_S="1")
    # An endpoint that refuses one account's uploads and echoes the request's headers,
    # its token with them, in the body (which the sink logs and dead-letters).
    receiver.fail_when(
        lambda body, headers: (
            Answer(400, orjson.dumps(headers))
            if headers.get("chatgpt-account-id") == echo
            else None
        )
    )
    bad_records = [r for i, a in enumerate(bad.values()) for r in _events_of(a, 20, seed=i + 3)]
    echo_records = _events_of(echo, 20, seed=8)
    good_records = _events_of(good, seed=9)
    await sink_run.create_topics()
    await sink_run.publish(bad_records + echo_records + good_records)

    with sink_run.process() as proc:
        assert await _all_delivered(receiver, good, good_records, within=40), sink_run.log_text()
        want = len(bad_records) + len(echo_records)
        dead = await collect(sink_run.bootstrap, sink_run.dlq, want=want, within=30, settle=0.5)
        assert proc.poll() is None, sink_run.log_text()  # up all along: no crash, no restart
    assert proc.returncode == 0, sink_run.log_text()

    # The bad accounts' events, each once, dead-lettered with the reason...
    by_reason: dict[bytes, list[bytes]] = {}
    for raw, headers in zip(dead.raw, dead.headers, strict=True):
        by_reason.setdefault(headers["error.reason"], []).append(raw)
    assert sorted(by_reason.pop(b"invalid_credentials")) == sorted(
        encode_event_record(r) for r in bad_records
    )
    assert sorted(by_reason.pop(b"http_400")) == sorted(
        encode_event_record(r) for r in echo_records
    )
    assert by_reason == {}
    assert all(_received(receiver, account) == [] for account in bad.values())
    # ...a log line names each account and its file...
    log = sink_run.log_text()
    for account in bad.values():
        assert f"account {account}" in log
        assert str(sink_run.secrets_dir / account) in log
    # ...and no piece of any bad token is anywhere, nor the echoed one in what we keep.
    events = await collect(sink_run.bootstrap, sink_run.events, want=10**9, within=3, settle=0)
    kept: dict[str, bytes] = {
        "sink log": log.encode(),
        "dead letters": _record_bytes(dead.records_raw),
        "events topic": _record_bytes(events.records_raw),
    }
    sent = b"\n".join(
        repr(r.headers).encode() + r.body + r.path.encode() for r in receiver.requests
    )
    for parts in BAD_TOKEN_PARTS.values():
        for part in parts:
            for place, text in {**kept, "receiver": sent}.items():
                assert part.encode() not in text, f"{part} in the {place}"
    for place, text in kept.items():
        assert token_for(echo).encode() not in text, f"the echoed token in the {place}"
    assert b"[redacted]" in kept["dead letters"]  # the echo was there, and redacted


def _record_bytes(records: list[Any]) -> bytes:
    """Keys, values and headers of Kafka records, as one searchable text."""
    return b"\n".join(
        b"%s %s %s" % (r.key or b"", r.value or b"", repr(r.headers).encode()) for r in records
    )


# -- item 9: Retry-After that asks for no wait at all ----------------------------------

PAST_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


async def test_retry_after_zero_or_in_the_past_keeps_the_minimum_backoff(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    zero, past = _with_secrets(sink_run, "zero", "past")
    minimum_s = 0.2
    sink_run.env_overrides.update(ANALYTICS_RETRY_INITIAL_MS="200", ANALYTICS_RETRY_MAX_MS="1000")
    answers = {
        zero: Answer(503, b"busy", {"Retry-After": "0"}),
        past: Answer(429, b"slow down", {"Retry-After": PAST_DATE}),
    }
    failing = True
    receiver.fail_when(
        lambda body, headers: (
            answers.get(headers.get("chatgpt-account-id", "")) if failing else None
        )
    )
    zero_records, past_records = _events_of(zero, 10, seed=4), _events_of(past, 10, seed=5)
    await sink_run.create_topics()
    await sink_run.publish(zero_records + past_records)

    def requests_of(account: str, since: float, until: float) -> int:
        return sum(
            1
            for r in receiver.requests
            if r.headers.get("chatgpt-account-id") == account and since <= r.at < until
        )

    with sink_run.process() as proc:
        assert await _wait_until(
            lambda: all(requests_of(a, 0, float("inf")) for a in (zero, past)), within=40
        ), sink_run.log_text()
        window_s = 3.0
        since = time.monotonic()
        await asyncio.sleep(window_s)
        until = time.monotonic()
        counts = {a: requests_of(a, since, until) for a in (zero, past)}
        failing = False
        for records, account in ((zero_records, zero), (past_records, past)):
            assert await _all_delivered(receiver, account, records, within=20), sink_run.log_text()
        assert proc.poll() is None

    # One lane per account: its attempts are at least the minimum backoff apart.
    most = int(window_s / minimum_s) + 1
    for account, count in counts.items():
        assert 1 <= count <= most, (account, counts)
    # Hundreds of retries before the fix, each with its line: now a few lines in all.
    retry_lines = [line for line in sink_run.log_text().splitlines() if "; retry " in line]
    assert len(retry_lines) <= 6, retry_lines
