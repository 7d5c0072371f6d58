"""Every command's ``--help`` lists every environment variable the command reads.

What a command reads is observed, not declared: its settings loaders run against an
environment that records every name looked up, and each recorded name must appear in
the command's ``environment variables`` paragraph.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from codex_analytics.cli import dlq_cmd, offsets_cmd, receiver_cmd, replay_cmd, topics_cmd
from codex_analytics.cli.main import build_parser
from codex_analytics.cli.settings_catalog import catalog
from codex_analytics.runtime.config import FACTS_PER_RECORD
from codex_analytics.runtime.kafka import BOOTSTRAP, KafkaCluster, TopicSettings
from producers.gateway.settings import GatewaySettings
from sinks.credentials import CredentialChain
from sinks.settings import SinkSettings
from streams.settings import StreamSettings

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^  ([A-Z][A-Z0-9_]+)(?: or ([A-Z][A-Z0-9_]+))? \(", re.MULTILINE)
#: Readers that are not commands of the console script.
OTHER_READERS = {"client library", "./dev"}


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.looked_up: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_up.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.looked_up.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.looked_up.add(key)
        return super().__contains__(key)


def _receiver(env: Mapping[str, str]) -> None:
    flags = dict.fromkeys(
        ("addr", "store", "fail_status", "fail_first", "fail_every", "retry_after", "delay")
    )
    receiver_cmd.read_settings(argparse.Namespace(**flags), env)


def _offsets(env: Mapping[str, str]) -> None:
    args = argparse.Namespace(group=None, topic=None, service=None, action="show")
    offsets_cmd._targets(args, env)


Loader = Callable[[Mapping[str, str]], object]
_PUBLISH: list[Loader] = [
    TopicSettings.from_env,
    FACTS_PER_RECORD.read,  # codex_analytics/cli/publish.py reads it by name
    KafkaCluster.configured,
]
#: What each command's run() reads, through the same functions.
READS: dict[str, list[Loader]] = {
    "stream worker": [StreamSettings.from_env, KafkaCluster.configured],
    "sink worker": [SinkSettings.from_env, CredentialChain.from_env, KafkaCluster.configured],
    "gateway": [GatewaySettings.from_env, KafkaCluster.configured],
    "produce": _PUBLISH,
    "generate": _PUBLISH,
    "demo": [TopicSettings.from_env, KafkaCluster.configured],
    "smoke plugin": [KafkaCluster.configured],
    "replay": [StreamSettings.from_env, replay_cmd._batch_limits, KafkaCluster.configured],
    "offsets": [_offsets, KafkaCluster.configured],
    "dlq": [lambda env: dlq_cmd.read_settings("facts", env), KafkaCluster.configured],
    "topics plan": [topics_cmd._plan, KafkaCluster.configured],
    "receiver": [_receiver],
    "broker": [BOOTSTRAP.read],  # only to say that it starts a broker anyway
}


def _commands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{path} {name}".strip()
                yield command, sub
                yield from _commands(sub, command)


COMMANDS = dict(_commands(build_parser()))


def _listed(help_text: str) -> set[str]:
    section = help_text.partition("\nenvironment variables")[2]
    return {name for match in NAME.findall(section) for name in match if name}


@pytest.mark.parametrize("command", sorted(READS))
def test_help_lists_every_variable_the_command_reads(command: str) -> None:
    env = RecordingEnv({"ANALYTICS_BASE_URL": "http://h", "KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    for load in READS[command]:
        load(env)
    listed = _listed(COMMANDS[command].format_help())
    assert env.looked_up, command
    assert not env.looked_up - listed, f"{command} --help misses {env.looked_up - listed}"


def test_every_reader_is_a_command() -> None:
    readers = {reader for v in catalog() for reader in v.used_by}
    assert not readers - set(COMMANDS) - OTHER_READERS
    assert set(READS) <= set(COMMANDS)


def test_a_command_reading_nothing_lists_nothing() -> None:
    assert "environment variables" not in COMMANDS["reduce"].format_help()


@pytest.mark.parametrize("service", ["stream", "sink"])
def test_worker_help_from_the_console(service: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codex_analytics.cli.main", service, "worker", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    settings = StreamSettings.from_env if service == "stream" else SinkSettings.from_env
    env = RecordingEnv({"ANALYTICS_BASE_URL": "http://h"})
    settings(env)
    assert env.looked_up <= _listed(result.stdout)
    for drifted in ("ANALYTICS_STATE_RETENTION_HOURS", "ANALYTICS_STREAM_STATE_CACHE"):
        assert (drifted in result.stdout) == (service == "stream")
