"""The ingest gateway under hostile input and faults (issue #16, items 2 and 12 and the
shutdown deadline), through the real ``codex-analytics gateway`` process on a real broker.

Each test reproduces a fault of the old gateway: a body of tiny lines that cost a GB of
memory and seconds of a blocked event loop, concurrent bodies that multiplied it, a
record the producer refuses answered "retry" (503) and flipping readiness, and a SIGTERM
that waited for an unreachable broker.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers.gateway.service import Gateway, GatewaySettings
from producers.publishing.transport import KafkaFactTransport
from tests.integration.gateway_helpers import gateway_process

MIB = 1024 * 1024
#: What the issue asks of the gateway's whole process while it refuses hostile bodies.
RSS_LIMIT_KB = 300 * 1024


def facts(count: int, seed: int = 1) -> list[bytes]:
    config = GeneratorConfig(instances=3, seed=seed, duplicate_rate=0)
    return [orjson.dumps(f) for f in SessionGenerator(config).facts(count)]


async def probe_health(base: str, stop: asyncio.Event) -> float:
    """Poll ``/livez`` until ``stop``; return the slowest answer (s). A probe with no
    answer within 5 s counts as 5 s."""
    slowest = 0.0
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                assert (await client.get("/livez")).status_code == 200
                took = time.perf_counter() - started
            except httpx.TimeoutException:
                took = 5.0
            slowest = max(slowest, took)
            await asyncio.sleep(0.05)
    return slowest


async def post_while_probing(
    base: str, bodies: list[bytes], headers: dict[str, str] | None = None
) -> tuple[list[httpx.Response], float]:
    """POST ``bodies`` concurrently while ``/livez`` is polled; the answers and the
    slowest health answer."""
    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(base, stop))
    await asyncio.sleep(0.1)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/facts", content=body, headers=headers) for body in bodies)
            )
    finally:
        stop.set()
    return list(answers), await prober


def test_a_body_of_tiny_lines_is_refused_cheaply(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """Item 2: 16 MiB of ``0`` lines (8 M lines), alone and four at once. The old gateway
    parsed every line, held a result per line and answered with all of them: GBs of
    memory and an event loop blocked for many seconds."""
    with gateway_process(kafka_bootstrap, unique_name("facts"), tmp_path) as gateway:
        tiny = b"0\n" * (8 * MIB)
        answers, slowest = asyncio.run(post_while_probing(gateway.base, [tiny]))
        peak_one = gateway.memory_kb()
        (answer,) = answers
        assert answer.status_code == 413, answer.text[:300]
        assert answer.json()["error"] == "too_many_lines"
        assert len(answer.content) < 4096
        assert slowest < 1.0, f"/livez took {slowest:.2f} s"

        answers, slowest = asyncio.run(post_while_probing(gateway.base, [tiny] * 4))
        peak_four = gateway.memory_kb()
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {413, 429}, statuses
        assert all(len(a.content) < 4096 for a in answers)
        assert slowest < 1.0, f"/livez took {slowest:.2f} s"
        print(f"gateway VmHWM after one 16 MiB body {peak_one} kB, after four {peak_four} kB")
        assert peak_four < RSS_LIMIT_KB, f"gateway peak RSS {peak_four} kB"

        # The same as one JSON document: refused on its values, before parsing.
        document = b"[" + b"{}," * (5 * MIB) + b"{}]"
        answer = httpx.post(
            f"{gateway.base}/v1/facts",
            content=document,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 413, answer.text[:300]
        assert answer.json()["error"] == "too_many_values"
        assert gateway.memory_kb() < RSS_LIMIT_KB
        elements = b"[" + b"{}," * 20_000 + b"{}]"  # few values, more envelopes than allowed
        answer = httpx.post(
            f"{gateway.base}/v1/facts",
            content=elements,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413, answer.text[:300]
        assert answer.json()["error"] == "too_many_lines"

        # Still serving: a small good batch goes through.
        good = b"\n".join(facts(5))
        assert httpx.post(f"{gateway.base}/v1/facts", content=good).status_code == 200


def oversized_instance_line(size: int = 600_000) -> bytes:
    """A fact the contract takes (under the 900 KiB line limit) whose record does not
    fit: its instance id is also the record's key, so key and value pass 1.2 MB."""
    fact = orjson.loads(facts(1, seed=7)[0])
    fact["source"]["instance_id"] = "i" * size
    return orjson.dumps(fact)


def test_a_record_the_producer_refuses_is_a_4xx_for_its_line_only(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """Item 12, as the issue found it: a 600 KB instance id. The old gateway answered 503
    + Retry-After ("send it again", for ever) and flipped /readyz to 503, while the
    lines before it were already published."""
    topic = unique_name("facts")
    good = facts(4, seed=3)
    body = b"\n".join([good[0], good[1], oversized_instance_line(), good[2], good[3]])
    with gateway_process(kafka_bootstrap, topic, tmp_path) as gateway:
        answer = httpx.post(f"{gateway.base}/v1/facts", content=body, timeout=30)
        assert answer.status_code == 207, answer.text[:500]
        doc = answer.json()
        assert (doc["accepted"], doc["rejected"]) == (4, 1)
        (rejection,) = doc["results"]
        assert (rejection["line"], rejection["status"]) == (3, "rejected")
        assert "Retry-After" not in answer.headers
        assert httpx.get(f"{gateway.base}/readyz").status_code == 200
        alone = httpx.post(f"{gateway.base}/v1/facts", content=oversized_instance_line())
        assert alone.status_code in (400, 413), alone.text[:500]  # never 503
        assert httpx.get(f"{gateway.base}/readyz").status_code == 200
    values = asyncio.run(read_from_start(kafka_bootstrap, topic, want=4, within=15, settle=0.5))
    assert sorted(r.value for r in values) == sorted(good)


async def test_a_broker_refusal_names_its_lines_and_leaves_readiness_alone(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """Item 12 without relying on a long instance id (which the contract may refuse
    one day): a real refusal by the producer's size check, lowered to 65 KiB (the
    transport's record limit of 64 KiB plus framing), of a
    fact that passes the codec with a large payload field. Nothing published: 413."""
    topic = unique_name("facts")
    settings = GatewaySettings(addr="127.0.0.1:0", facts_topic=topic, publish_timeout_s=5.0)
    transport = KafkaFactTransport(kafka_bootstrap, topic, max_record_bytes=64 * 1024)
    gateway = Gateway(settings, transport)
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http:
            deadline = time.monotonic() + 20
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never ready"
                await asyncio.sleep(0.1)
            big = orjson.loads(facts(1, seed=4)[0])
            big["payload"]["blob"] = "x" * (100 * 1024)
            answer = await http.post("/v1/facts", content=orjson.dumps(big))
            assert answer.status_code == 413, answer.text[:500]
            (rejection,) = answer.json()["results"]
            assert (rejection["line"], rejection["reason"]) == (1, "record_too_large")
            assert "MessageSizeTooLarge" in rejection["detail"]
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert 'codex_gateway_rejected_facts_total{reason="record_too_large"} 1.0' in metrics
            assert "codex_gateway_publish_failures_total 0.0" in metrics
    finally:
        await gateway.stop()


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_ends_the_gateway_in_time_while_the_broker_is_gone(
    tmp_path: Path, unique_name: Callable[[str], str], signals: int
) -> None:
    """The shutdown deadline: the broker goes away, a request waits for acks (publish
    timeout 30 s), and SIGTERM arrives. The old gateway waited for that request (and
    for the producer's flush) before exiting, and ignored a second SIGTERM."""
    shutdown_s = 2.0
    broker = EmbeddedBroker(log_path=str(tmp_path / "broker.log"))
    bootstrap = broker.start()
    try:
        with gateway_process(
            bootstrap,
            unique_name("facts"),
            tmp_path,
            ANALYTICS_GATEWAY_PUBLISH_TIMEOUT_S="30",
            ANALYTICS_SHUTDOWN_TIMEOUT_S=str(shutdown_s),
        ) as gateway:
            broker.stop()
            posting = subprocess.Popen(  # a client waiting for its answer, elsewhere
                [
                    sys.executable,
                    "-c",
                    "import httpx, sys; a = httpx.post(sys.argv[1], content=sys.stdin.buffer.read(),"
                    " timeout=60); print(a.status_code, a.json().get('resend'))",
                    f"{gateway.base}/v1/facts",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert posting.stdin is not None
            posting.stdin.write(b"\n".join(facts(20)))
            posting.stdin.close()
            _wait_for_a_body(gateway.base)  # the request is in flight, unacknowledged
            time.sleep(0.3)
            started = time.monotonic()
            gateway.proc.send_signal(signal.SIGTERM)
            if signals == 2:
                time.sleep(0.2)
                gateway.proc.send_signal(signal.SIGTERM)
            within = shutdown_s + 5 if signals == 1 else 1.5
            try:
                status = gateway.proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {within:g} s after {signals} SIGTERM")
            took = time.monotonic() - started
            print(f"gateway exited {took:.2f} s after {signals} SIGTERM (status {status})")
            if signals == 2:
                assert status == 128 + signal.SIGTERM
                posting.kill()
                return
            assert status == 0
            # The request in flight was answered, not cut off: resend all of it.
            assert posting.stdout is not None
            assert posting.wait(timeout=10) == 0
            assert posting.stdout.read().decode().strip().split(maxsplit=1) == ["503", "[[1, 20]]"]
    finally:
        broker.stop()


def _wait_for_a_body(base: str, within: float = 30.0) -> None:
    """Until the gateway has read a request body (a client process may take seconds to
    start on a loaded machine)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{base}/metrics", timeout=2).text
        for line in metrics.splitlines():
            if line.startswith("codex_gateway_body_bytes_total ") and float(line.split()[1]) > 0:
                return
        time.sleep(0.05)
    pytest.fail(f"no request body read within {within:g} s")
