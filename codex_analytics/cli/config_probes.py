"""The network half of ``config check``: ``--connect`` reaches the brokers and the
endpoint, ``--bind`` tries the listen addresses. Which variables to try comes from
their kinds (:func:`codex_analytics.cli.config_checks.probed_values`); every try has a
deadline, and none sends a credential."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from codex_analytics.cli.config_checks import Finding, probed_values
from codex_analytics.runtime.broker_probe import BrokerUnreachable, probe_brokers
from codex_analytics.runtime.config import Setting
from codex_analytics.runtime.env import shown_url, split_host_port
from codex_analytics.runtime.kafka import KafkaCluster, TopicSettings

Probed = tuple[Setting[Any, Any], str, tuple[str, ...]]


async def connect_findings(
    env: Mapping[str, str], services: Sequence[str], *, within: float
) -> list[Finding]:
    """One finding per broker list and per URL the services would use, tried at once."""
    tries = [_broker(env, probed, within) for probed in probed_values(env, services, "brokers")]
    tries += [_url(probed, within) for probed in probed_values(env, services, "url")]
    return list(await asyncio.gather(*tries))


async def _broker(env: Mapping[str, str], probed: Probed, within: float) -> Finding:
    """The brokers, reached as the services reach them: with the security settings."""
    setting, bootstrap, services = probed
    try:
        cluster = KafkaCluster.from_env(env, bootstrap=bootstrap)
    except ValueError:
        cluster = KafkaCluster(bootstrap)  # its settings are reported: try the address
    try:
        answer = await probe_brokers(cluster, within=within)
    except BrokerUnreachable as exc:
        return Finding("error", setting.name, f"{setting.name}: {exc}", services)
    try:
        topics = TopicSettings.from_env(env)
        wanted = [topics.facts, topics.events, topics.facts_dlq, topics.events_dlq]
    except ValueError:
        wanted = []  # reported with the variable
    missing = [t for t in wanted if t not in answer.topics]
    held = f"; topics missing (created at start): {', '.join(missing)}" if missing else ""
    return Finding(
        "ok",
        setting.name,
        f"{setting.name}: Kafka at {bootstrap} answered ({answer.brokers} broker(s)){held}",
        services,
    )


async def _url(probed: Probed, within: float) -> Finding:
    """A plain GET of the URL, without a token: any HTTP answer means reachable."""
    import httpx

    setting, url, services = probed
    shown = shown_url(url)
    try:
        async with httpx.AsyncClient(timeout=within, follow_redirects=False) as client:
            response = await asyncio.wait_for(client.get(url), within)
    except (TimeoutError, httpx.TimeoutException):
        return Finding(
            "error",
            setting.name,
            f"{setting.name}: {shown} did not answer within {within:g} s",
            services,
        )
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Finding(
            "error", setting.name, f"{setting.name}: {shown} unreachable: {why}", services
        )
    return Finding(
        "ok",
        setting.name,
        f"{setting.name}: {shown} answered HTTP {response.status_code} (no token sent)",
        services,
    )


def bind_findings(env: Mapping[str, str], services: Sequence[str]) -> list[Finding]:
    """Whether each listen address can be bound now (port 0 always can)."""
    findings = []
    for setting, addr, readers in probed_values(env, services, "listen"):
        host, port = split_host_port(addr)
        if port == 0:
            continue
        problem = _bind(host, port)
        if problem:
            message = f"{setting.name}: cannot listen on {addr}: {problem}"
            findings.append(Finding("error", setting.name, message, readers))
        else:
            message = f"{setting.name}: {addr} can be bound"
            findings.append(Finding("ok", setting.name, message, readers))
    return findings


def _bind(host: str, port: int) -> str:
    """'' when ``host:port`` can be bound as aiohttp binds it (``SO_REUSEADDR``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"{host!r} does not resolve ({exc.strerror or exc})"
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""
