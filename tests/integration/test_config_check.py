"""``codex-analytics config check`` as a process: its lines and exit statuses, ``--connect``
against the real embedded broker and a real HTTP endpoint on 127.0.0.1 (and against a
closed port, within its deadline), ``--bind``; and the services' own start warning
about a misspelled variable."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from codex_analytics.devtools.broker import free_port
from codex_analytics.runtime.config import LOG_LEVEL
from codex_analytics.runtime.http import serve
from codex_analytics.runtime.kafka import BOOTSTRAP
from producers.gateway.settings import ADDR as GATEWAY_ADDR
from sinks.settings import BASE_URL, BATCH_MAX_EVENTS, BEARER_TOKEN, CAPTURE_FILE, SECRETS_DIR
from streams.settings import HEALTH_ADDR

CLI = str(Path(sys.executable).with_name("codex-analytics"))
OURS = ("ANALYTICS_", "KAFKA_", "CODEX_")
MISSPELT = BATCH_MAX_EVENTS.name.replace("ANALYTICS_", "ANALYTICS_SINK_").replace("EVENTS", "EVNTS")
TOKEN = "tok-NEVER-SHOWN-42"


def environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update(settings)
    return env


def check(*args: str, env: Mapping[str, str], within: float = 30) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [CLI, "config", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, time.monotonic() - started


def test_a_clean_environment_exits_0(tmp_path: Path) -> None:
    env = environment(
        **{BOOTSTRAP.name: "kafka:9092", BASE_URL.name: "https://example.com/backend-api/"}
    )
    status, out, _ = check(env=env)
    assert status == 0, out
    assert (
        "ok      KAFKA_BOOTSTRAP_SERVERS = 'kafka:9092' [gateway, stream worker, sink worker]"
        in out
    )
    assert out.splitlines()[-1] == (
        "config check of gateway, stream worker, sink worker: 0 error(s), 0 warning(s)"
    )


def test_every_mistake_is_a_line_and_exit_2(tmp_path: Path) -> None:
    env = environment(
        **{
            LOG_LEVEL.name: "LOUD",
            HEALTH_ADDR.name: "bad",
            SECRETS_DIR.name: str(tmp_path / "missing"),
            MISSPELT: "1000",
            BATCH_MAX_EVENTS.name: "1e400",
            BEARER_TOKEN.name: TOKEN,
            BASE_URL.name: "https://example.com/",
        }
    )
    status, out, _ = check(env=env)
    assert status == 2, out
    lines = out.splitlines()
    expected = [
        f"error   unknown variable {MISSPELT} is ignored; did you mean {BATCH_MAX_EVENTS.name}?",
        f"error   {LOG_LEVEL.name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; "
        "got 'LOUD' [gateway, stream worker]",
        f"error   {HEALTH_ADDR.name} must be HOST:PORT: no port number in 'bad' [stream worker]",
        f"error   {SECRETS_DIR.name} must be an existing directory: "
        f"'{tmp_path / 'missing'}' does not exist [sink worker]",
        f"error   {BATCH_MAX_EVENTS.name} must be a finite number, got '1e400' [sink worker]",
        f"ok      {BEARER_TOKEN.name} = (secret, not shown) [sink worker]",
        "warning KAFKA_BOOTSTRAP_SERVERS is not set: an embedded, memory-only broker is started "
        "(everything on it is lost when the service stops) [gateway, stream worker, sink worker]",
    ]
    for line in expected:
        assert line in lines, out
    assert lines[-1].endswith(": 6 error(s), 1 warning(s)"), out  # the sink's log level too
    assert TOKEN not in out


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server on 127.0.0.1 that records the headers of what it is sent."""
    seen: list[dict[str, str]] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    served = await serve(app, "127.0.0.1:0")
    try:
        yield f"http://127.0.0.1:{served.port}/backend-api/", seen
    finally:
        await served.close()


async def test_connect_reaches_the_broker_and_the_endpoint_without_a_token(
    kafka_bootstrap: str, endpoint: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = endpoint
    env = environment(
        **{BOOTSTRAP.name: kafka_bootstrap, BASE_URL.name: url, BEARER_TOKEN.name: TOKEN}
    )
    status, out, _ = await asyncio.to_thread(check, "sink", "--connect", env=env)
    assert status == 0, out
    lines = out.splitlines()
    assert any(
        line.startswith(
            f"ok      {BOOTSTRAP.name}: Kafka at {kafka_bootstrap} answered (1 broker(s))"
        )
        for line in lines
    ), out
    assert (
        f"ok      {BASE_URL.name}: {url} answered HTTP 404 (no token sent) [sink worker]" in lines
    )
    assert len(seen) == 1
    assert "Authorization" not in seen[0]
    assert TOKEN not in str(seen[0])


def test_connect_and_bind_fail_within_the_deadline(tmp_path: Path) -> None:
    closed = free_port("127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = environment(
            **{
                BOOTSTRAP.name: f"127.0.0.1:{closed}",
                BASE_URL.name: f"http://127.0.0.1:{closed}/",
                GATEWAY_ADDR.name: f"127.0.0.1:{busy}",
                CAPTURE_FILE.name: str(tmp_path / "no-dir" / "events.jsonl"),
            }
        )
        status, out, took = check(
            "gateway", "sink", "--connect", "--bind", "--timeout", "3", env=env
        )
    assert status == 2, out
    lines = out.splitlines()
    refused = [line for line in lines if line.startswith(f"error   {BOOTSTRAP.name}: Kafka at ")]
    assert len(refused) == 1, out
    # The host and the cause, which aiokafka logs rather than raises (ECONNREFUSED).
    assert refused[0].startswith(f"error   {BOOTSTRAP.name}: Kafka at 127.0.0.1:{closed}: ")
    assert "unreachable (connection refused)" in refused[0]
    assert refused[0].endswith(" [gateway, sink worker]")
    assert any(
        line.startswith(f"error   {BASE_URL.name}: http://127.0.0.1:{closed}/ unreachable: ")
        for line in lines
    ), out
    assert any(
        line.startswith(f"error   {GATEWAY_ADDR.name}: cannot listen on 127.0.0.1:{busy}: ")
        for line in lines
    ), out
    assert any(line.startswith(f"error   {CAPTURE_FILE.name}: its directory ") for line in lines)
    assert took < 3 + 10, took  # the deadline, plus a start-up on a loaded machine


@pytest.mark.parametrize("service", [["gateway"], ["stream", "worker"], ["sink", "worker"]])
def test_a_service_warns_about_a_misspelled_variable_at_start(
    service: list[str], tmp_path: Path
) -> None:
    env = environment(
        **{
            BOOTSTRAP.name: f"127.0.0.1:{free_port('127.0.0.1')}",  # nobody: it need not get far
            GATEWAY_ADDR.name: "127.0.0.1:0",
            CAPTURE_FILE.name: str(tmp_path / "events.jsonl"),
            MISSPELT: TOKEN,
        }
    )
    process = subprocess.Popen(
        [CLI, *service], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert process.stderr is not None
    try:
        first = process.stderr.readline()  # the warning comes before anything else
    finally:
        process.kill()
        process.wait(timeout=10)
        process.stderr.close()
    line = orjson.loads(first)
    assert (line["level"], line["logger"]) == ("warning", "codex_analytics.config")
    assert (line["variable"], line["suggestion"]) == (MISSPELT, BATCH_MAX_EVENTS.name)
    assert TOKEN not in first.decode()
