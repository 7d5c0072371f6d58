"""Logs a log shipper can use, from real service processes with JSON logs: every line a
JSON object, one start banner with what the process runs with and no secret, repeated
warnings rate-limited with counts that add up, and a capture-mode sink without
credentials that says why it skips events."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from codex_analytics.contract.facts import AuthRoute
from codex_analytics.runtime.banner import SET
from codex_analytics.runtime.kafka import ensure_topics
from codex_analytics.simulator.fact_builder import FactBuilder
from tests.cli import run_cli

from .gateway_helpers import gateway_process
from .sink_helpers import SinkRun, event_records, with_route
from .stream_helpers import StreamRun, collect, produce

pytestmark = pytest.mark.integration

GATEWAY_TOKEN = "gateway-token-Zq9-never-logged"
#: Declared secrets, set in the environment of every process here: a banner shows each
#: one its command reads as "<set>", and no value appears in any line. (Kafka's SASL
#: and key passwords belong here too once they are declared.)
SECRET_ENV = {"ANALYTICS_GATEWAY_TOKEN": GATEWAY_TOKEN}


def assert_no_secret(text: str, banner: dict[str, Any], *also: str) -> None:
    for value in (*SECRET_ENV.values(), *also):
        assert value not in text
    for name in SECRET_ENV:
        assert banner["settings"].get(name, SET) == SET, name


BANNER = "codex_analytics.start"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a service's stderr, each a JSON object (or the test fails)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line[:300]!r}")
        assert isinstance(entry, dict), line
        assert {"ts", "level", "logger", "message"} <= set(entry), line
        lines.append(entry)
    return lines


def banner_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    (banner,) = [line for line in lines if line["logger"] == BANNER]
    assert banner["version"]
    return banner


def standing_for(lines: list[dict[str, Any]]) -> int:
    """How many occurrences rate-limited lines stand for: each itself and ``repeated``."""
    return sum(1 + line["repeated"] for line in lines)


def stop(proc: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


async def test_gateway_and_stream_log_json_banners_and_a_thousand_drops_in_a_few_lines(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    run = StreamRun(
        bootstrap=kafka_bootstrap,
        prefix=unique_name("logs"),
        log_dir=tmp_path,
        partitions=2,
        extra_env=SECRET_ENV,
    )
    builder = FactBuilder("inst-logs")
    # Compactions of threads the instance never opened: each one a drop upstream warns of.
    drops = [orjson.dumps(builder.compaction(thread_id=f"t{i}")) for i in range(1000)]
    bad = [b"not json %d" % i for i in range(20)]
    # Created first: the producer below must not create the facts topic its own way.
    await ensure_topics(kafka_bootstrap, {run.facts: 2, run.events: 2, run.dlq: 2})
    with (
        run.worker() as proc,
        gateway_process(
            kafka_bootstrap,
            run.facts,
            tmp_path,
            **SECRET_ENV,
        ) as gateway,
    ):
        # The drops through the gateway (its banner and token are checked below), the
        # undecodable records straight onto the topic (the gateway would refuse them).
        async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as client:
            answer = await client.post(
                "/v1/facts",
                content=b"\n".join(drops),
                headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"},
            )
        assert answer.status_code == 200, answer.text
        await produce(kafka_bootstrap, run.facts, bad, keys=[b"k"] * len(bad))
        letters = await collect(kafka_bootstrap, run.dlq, want=len(bad), within=60, settle=0)
        assert len(letters.raw) == len(bad), run.log_text()
        await asyncio.gather(asyncio.to_thread(stop, proc), asyncio.to_thread(stop, gateway.proc))

    gateway_log = gateway.log.read_text()
    banner = banner_of(json_lines(gateway_log))
    assert_no_secret(gateway_log, banner)
    assert (banner["service"], banner["facts_topic"]) == ("gateway", run.facts)
    assert banner["addr"] == gateway.base.removeprefix("http://")
    assert banner["auth"] == "bearer token"
    assert banner["settings"]["ANALYTICS_GATEWAY_TOKEN"] == SET

    log = run.log_text()
    lines = json_lines(log)

    banner = banner_of(lines)
    assert banner["service"] == "stream"
    assert banner["kafka"] == kafka_bootstrap
    assert (banner["facts_topic"], banner["facts_dlq_topic"]) == (run.facts, run.dlq)
    assert (banner["partitions"], banner["group"]) == (2, f"{run.prefix}-stream")
    assert banner["settings"]["ANALYTICS_STREAM_APP_ID"] == f"{run.prefix}-stream"
    assert banner["settings"]["ANALYTICS_STREAM_BATCH_MAX_RECORDS"] == 2000  # a default
    assert_no_secret(log, banner)

    dropped = [
        line for line in lines if line.get("reason") == "compaction_missing_thread_connection"
    ]
    assert 2 <= len(dropped) <= 4, dropped  # the first at once, the rest counted
    assert standing_for(dropped) == len(drops)
    assert dropped[0]["instance_id"] == "inst-logs"
    assert dropped[0]["message"] == (
        "dropping compaction analytics event: missing thread connection metadata"
    )
    dead = [line for line in lines if line["message"] == "fact sent to the dead-letter topic"]
    assert 1 <= len(dead) <= 3, dead
    assert standing_for(dead) == len(bad)
    assert {line["reason"] for line in dead} == {"not_json"}
    assert dead[0]["dead_letter_topic"] == run.dlq
    # Fields are fields: no structured detail is serialized into a message of ours.
    ours = [line for line in lines if line["logger"].startswith("codex_analytics")]
    assert not [line for line in ours if "{" in line["message"]]
    (totals,) = [line for line in lines if line["message"] == "stream totals"]
    assert totals["records"] == len(drops) + len(bad)

    # A one-shot job too: replay's banner and result are JSON lines off a terminal.
    replay = await asyncio.to_thread(
        run_cli,
        "replay", "--from", "earliest", "--capture", str(tmp_path / "replay.jsonl"),
        env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ANALYTICS_FACTS_TOPIC": run.facts,
             **SECRET_ENV},
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    lines = json_lines(replay.stderr)
    banner = banner_of(lines)
    assert banner["service"] == "replay"
    assert_no_secret(replay.stderr, banner)
    report = [line for line in lines if line["logger"] == "codex_analytics.report"]
    result = report[-1]  # after its progress lines
    assert (result["records"], result["dead_letters"]) == (len(drops) + len(bad), {"not_json": 20})


async def test_sink_banners_hide_tokens_and_a_capture_sink_without_credentials_says_so(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    token = "sekret-token-acct-1-Zq9"
    records = event_records(800, accounts=1)
    half = len(records) // 2
    no_token = with_route(records[:half], AuthRoute(kind="chatgpt", account_id="acct-1"))
    no_auth = with_route(records[half:], AuthRoute())
    assert len(no_token) > 100

    def capture_sink(name: str, **env: str) -> SinkRun:
        run = SinkRun(
            bootstrap=kafka_bootstrap,
            prefix=unique_name(name),
            tmp=tmp_path / name,
            partitions=2,
            env_overrides={
                "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": str(tmp_path / f"{name}.jsonl"),
                "ANALYTICS_SECRETS_DIR": "",  # none
                **SECRET_ENV,
                "ANALYTICS_BATCH_MAX_EVENTS": "10",  # many batches: many skips
                **env,
            },
        )
        run.tmp.mkdir()
        return run

    bare = capture_sink("bare")  # no credentials: every event skipped
    keyed = capture_sink("keyed", ANALYTICS_BEARER_TOKEN=token, ANALYTICS_ACCOUNT_ID="acct-1")
    for run in (bare, keyed):
        await run.create_topics()
        await run.publish([*no_token, *no_auth])

    async def all_committed(run: SinkRun) -> bool:
        return sum(o or 0 for o in (await run.committed()).values()) == len(records)

    with bare.process() as bare_proc, keyed.process() as keyed_proc:
        for run in (bare, keyed):
            done = False
            for _ in range(300):
                done = await all_committed(run)
                if done:
                    break
                await asyncio.sleep(0.1)
            assert done, run.log_text()
        await asyncio.gather(
            asyncio.to_thread(stop, bare_proc), asyncio.to_thread(stop, keyed_proc)
        )

    # Without credentials: a warning at start that names the way out, then the skips
    # counted per reason, not one line per batch.
    lines = json_lines(bare.log_text())
    banner = banner_of(lines)
    assert (banner["service"], banner["mode"], banner["credentials"]) == ("sink", "capture", [])
    assert banner["events_topic"] == bare.events
    assert banner["settings"]["ANALYTICS_SINK_GROUP"] == f"{bare.prefix}-sink"
    assert "ANALYTICS_BEARER_TOKEN" not in banner["settings"]  # unset: not even "<set>"
    assert_no_secret(bare.log_text(), banner, token)
    (warning,) = [line for line in lines if "without credentials" in line["message"]]
    assert warning["level"] == "warning"
    assert "ANALYTICS_CAPTURE_IGNORES_AUTH=true" in warning["message"]
    skipped = [line for line in lines if line["message"].startswith("events skipped by the auth")]
    by_reason = {
        reason: [line for line in skipped if line["reason"] == reason]
        for reason in ("no_token", "no_auth")
    }
    assert sum(line["events"] for line in by_reason["no_token"]) == len(no_token)
    assert sum(line["events"] for line in by_reason["no_auth"]) == len(no_auth)
    # The first skip of each reason at once; the rest held, then logged at the stop (or
    # a minute after the first, on a machine that slow).
    assert all(2 <= len(found) <= 3 for found in by_reason.values()), skipped
    assert by_reason["no_token"][1]["repeated"] > 0
    assert standing_for(by_reason["no_token"]) >= -(-len(no_token) // 10)  # batches
    assert not (tmp_path / "bare.jsonl").read_bytes()  # nothing captured

    # With a token: it shows as "<set>", and is nowhere in the log or the capture file.
    log = keyed.log_text()
    banner = banner_of(json_lines(log))
    assert_no_secret(log, banner, token)
    assert banner["settings"]["ANALYTICS_BEARER_TOKEN"] == SET
    assert banner["settings"]["ANALYTICS_ACCOUNT_ID"] == "acct-1"
    assert banner["credentials"] == ["EnvCredentials(configured=True)"]
    assert "without credentials" not in log
    captured = (tmp_path / "keyed.jsonl").read_bytes()
    assert captured.count(b'"event_type"') == len(records)
    assert token.encode() not in captured
