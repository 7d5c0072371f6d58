"""The start banner: one log line per process that says what it runs with.

A log shipper gets one JSON object (``logger`` ``codex_analytics.start``) with the
service, its version, what it connects to (Kafka, topics, group, partitions, addresses,
mode) and ``settings``: every variable the command reads, as it reads it (parsed, or its
default). A secret is never shown: ``"<set>"`` when it is set, left out when it is not.
A URL loses its user and password. On a terminal the banner is one readable line and
``settings`` is left out (``--help`` lists them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from codex_analytics import __version__
from codex_analytics.runtime import config, kafka, kafka_security
from codex_analytics.runtime.config import Setting, reads
from codex_analytics.runtime.logs import BANNER_LOGGER, HIDDEN_ON_TERMINAL

#: What a secret that is set shows as.
SET = "<set>"

#: The kernel's declarations every service may read (Kafka, security, shared settings).
KERNEL_SETTINGS = (kafka.SETTINGS, kafka_security.SETTINGS, config.SETTINGS)


def readings_for(command: str, *declared: Iterable[Setting[Any, Any]]) -> list[Setting[Any, Any]]:
    """How ``command`` reads each variable among ``declared`` (modules' ``SETTINGS``):
    the first declaration or variant whose readers include it, one per name."""
    found: dict[str, Setting[Any, Any]] = {}
    for settings in declared:
        for setting in settings:
            if setting.name not in found and any(reads(r, command) for r in setting.used_by):
                found[setting.name] = setting
    return list(found.values())


def settings_in_effect(
    settings: Iterable[Setting[Any, Any]], env: Mapping[str, str]
) -> dict[str, Any]:
    """Each variable's value as its reader gets it; secrets as :data:`SET` or absent."""
    shown: dict[str, Any] = {}
    for setting in settings:
        if setting.secret:
            if setting.raw(env) is not None:
                shown[setting.name] = SET
            continue
        try:
            value = setting.read(env)
        except ValueError:  # the service refused it before it got here
            continue
        shown[setting.name] = without_userinfo(value) if isinstance(value, str) else value
    return shown


def without_userinfo(text: str) -> str:
    """``text`` with the user and password of a URL removed (``https://u:p@h/`` ->
    ``https://h/``); anything else unchanged."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=host))
    except ValueError:
        return "<unparsable URL>"


def log_banner(
    command: str,
    summary: str,
    declared: Iterable[Setting[Any, Any]],
    *,
    cluster: kafka.KafkaCluster | None = None,
    env: Mapping[str, str] | None = None,
    **fields: Any,
) -> None:
    """Log the banner of ``command`` (``"sink worker"``; its first word is the service):
    ``summary`` is the message (one readable line), ``cluster`` and ``fields`` what it
    connects to; ``settings`` are the variables it reads among the kernel's and
    ``declared`` (its service's ``SETTINGS``), from ``env`` (the process environment by
    default)."""
    readings = readings_for(command, *KERNEL_SETTINGS, declared)
    where = (
        {"kafka": cluster.bootstrap, "kafka_protocol": cluster.security.protocol}
        if cluster is not None
        else {}
    )
    logging.getLogger(BANNER_LOGGER).info(
        summary,
        extra={
            "service": command.split()[0],
            "version": __version__,
            **where,
            **fields,
            "settings": settings_in_effect(readings, os.environ if env is None else env),
            HIDDEN_ON_TERMINAL: ("settings",),
        },
    )
