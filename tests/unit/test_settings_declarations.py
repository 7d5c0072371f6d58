"""Settings declared once: the declaration model, and that the code, the README table and
the declarations agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codex_analytics.cli.settings_catalog import catalog
from codex_analytics.cli.settings_table import END, README, START, render_table, splice
from codex_analytics.runtime.config import (
    LOG_LEVEL,
    choice,
    declare,
    integer,
    number,
    text,
)
from codex_analytics.runtime.kafka import KafkaCluster, TopicSettings
from producers.client.settings import DEFAULT_BOOTSTRAP, ClientSettings
from producers.gateway.settings import GatewaySettings
from sinks.settings import SinkSettings
from streams.settings import StreamSettings

ROOT = Path(__file__).resolve().parents[2]
#: Where variables are read (and, in tests, set): every Python file of the repository.
SOURCE_DIRS = ("codex_analytics", "producers", "streams", "sinks", "bench", "tests")
VARIABLE = re.compile(r"\b(?:ANALYTICS|KAFKA|CODEX)_[A-Z0-9_]*[A-Z0-9]\b")


def test_a_setting_reads_its_text_or_its_default() -> None:
    count = declare("X_COUNT", integer(minimum=1), 5, help="h", used_by=("t",))
    assert count.read({}) == 5
    assert count.read({"X_COUNT": "  "}) == 5  # blank counts as unset
    assert count.read({"X_COUNT": " 7 "}) == 7
    assert count.read({"X_COUNT": "1e3"}) == 1000
    with pytest.raises(ValueError, match=r"^X_COUNT must be at least 1, got '0'$"):
        count.read({"X_COUNT": "0"})
    with pytest.raises(ValueError, match=r"^X_COUNT must be a whole number, got '1.5'$"):
        count.read({"X_COUNT": "1.5"})
    with pytest.raises(ValueError, match=r"^X_COUNT must be a number, got 'many'$"):
        count.read({"X_COUNT": "many"})


def test_aliases_are_read_when_the_name_is_unset() -> None:
    path = declare("X_PATH", text("path"), None, help="h", used_by=("t",), aliases=("X_P",))
    assert path.read({}) is None
    assert path.read({"X_P": "b"}) == "b"
    assert path.read({"X_PATH": "a", "X_P": "b"}) == "a"
    assert path.read({"X_PATH": "", "X_P": "b"}) == "b"  # empty counts as unset


def test_a_secret_is_never_echoed_in_an_error() -> None:
    pin = declare("X_PIN", integer(minimum=0), None, help="h", used_by=("t",), secret=True)
    with pytest.raises(ValueError, match="X_PIN") as raised:
        pin.read({"X_PIN": "hunter2"})
    assert "hunter2" not in str(raised.value)


def test_a_variant_reads_the_same_name_another_way() -> None:
    base = declare("X_LEVEL", text(), "WARNING", help="h", used_by=("a",), default_note="n")
    loud = base.variant(used_by=("b",), default="INFO")
    strict = base.variant(used_by=("c",), kind=choice("debug", "info"))
    assert (loud.name, loud.base, loud.read({}), loud.shown_default()) == (
        "X_LEVEL",
        base,
        "INFO",
        "`INFO`",
    )
    assert strict.read({"X_LEVEL": "Info"}) == "info"
    with pytest.raises(ValueError, match="X_LEVEL must be one of debug, info; got 'warning'"):
        strict.read({"X_LEVEL": "warning"})
    assert base.shown_default() == "`WARNING` (n)"


def test_shown_defaults() -> None:
    def shown(default: object, note: str = "") -> str:
        return declare(
            "X", number(minimum=0), default, help="", used_by=(), default_note=note
        ).shown_default()

    assert shown(None) == "unset"
    assert shown(None, "twice the horizon") == "twice the horizon"
    assert shown(300.0) == "`300`"
    assert shown(0, "for ever") == "`0` (for ever)"
    assert shown(False) == "`false`"


def test_historic_error_messages_are_kept() -> None:
    with pytest.raises(
        ValueError, match=r"^ANALYTICS_TOPIC_PARTITIONS must be an integer, got 'x'$"
    ):
        TopicSettings.from_env({"ANALYTICS_TOPIC_PARTITIONS": "x"})
    with pytest.raises(ValueError, match=r"^ANALYTICS_TOPIC_PARTITIONS must be at least 1$"):
        TopicSettings.from_env({"ANALYTICS_TOPIC_PARTITIONS": "0"})
    with pytest.raises(ValueError, match="ANALYTICS_LOG_LEVEL must be one of debug, info"):
        SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h", "ANALYTICS_LOG_LEVEL": "loud"})
    with pytest.raises(ValueError, match="ANALYTICS_STREAM_STORE must be one of memory, rocksdb"):
        StreamSettings.from_env({"ANALYTICS_STREAM_STORE": "disk"})


def test_each_setting_has_one_default() -> None:
    """A dataclass's field defaults are the declarations' defaults: settings built in code
    equal settings read from an empty environment."""
    assert TopicSettings.from_env({}) == TopicSettings()
    assert StreamSettings.from_env({}) == StreamSettings(topics=TopicSettings())
    assert GatewaySettings.from_env({}) == GatewaySettings()
    assert ClientSettings.from_env({}) == ClientSettings(kafka=KafkaCluster(DEFAULT_BOOTSTRAP))
    sink = SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h"})
    built = SinkSettings(
        topics=TopicSettings(),
        mode="http",
        base_url="http://h",
        capture_file=None,
        limits=sink.limits,
        retry=sink.retry,
    )
    assert sink == built
    assert StreamSettings.from_env({}).log_level == LOG_LEVEL.default


def test_the_readme_table_is_the_generated_one() -> None:
    readme = README.read_text(encoding="utf-8")
    assert START in readme
    assert END in readme
    assert splice(readme, render_table()) == readme, (
        "README.md's configuration table is stale: run "
        "python -m codex_analytics.cli.settings_table --write"
    )


def test_every_variable_named_in_the_code_is_declared_once() -> None:
    variables = catalog()  # raises on a name declared twice
    declared = {name for v in variables for name in v.declaration.names}
    assert len(declared) == sum(len(v.declaration.names) for v in variables)
    named: dict[str, Path] = {}
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for name in VARIABLE.findall(path.read_text(encoding="utf-8")):
                named.setdefault(name, path.relative_to(ROOT))
    undeclared = {name: str(path) for name, path in named.items() if name not in declared}
    assert not undeclared, f"read or set but not declared: {undeclared}"
