"""Every command turns a bad setting into one line naming the variable and exit status 2,
before it starts anything (a broker, a service, a file): never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codex_analytics.cli.main import main
from codex_analytics.devtools.receiver import ADDR as RECEIVER_ADDR
from codex_analytics.runtime.config import LOG_LEVEL
from codex_analytics.runtime.kafka import BOOTSTRAP, PARTITIONS
from sinks.settings import BASE_URL, SECRETS_DIR
from sinks.settings import HEALTH_ADDR as SINK_HEALTH_ADDR
from streams.settings import HEALTH_ADDR as STREAM_HEALTH_ADDR

OURS = ("ANALYTICS_", "KAFKA_", "CODEX_")
BROKER = {BOOTSTRAP.name: "127.0.0.1:1"}  # never reached: the command stops before
SINK = {**BROKER, BASE_URL.name: "http://127.0.0.1:1/"}

CASES = [
    (["gateway"], {**BROKER, LOG_LEVEL.name: "LOUD"}, LOG_LEVEL.name),
    (["stream", "worker"], {**BROKER, STREAM_HEALTH_ADDR.name: "bad"}, STREAM_HEALTH_ADDR.name),
    (["stream", "worker"], {BOOTSTRAP.name: "kafka:x"}, BOOTSTRAP.name),
    (["sink", "worker"], {**SINK, SINK_HEALTH_ADDR.name: "h:70000"}, SINK_HEALTH_ADDR.name),
    (["sink", "worker"], {**SINK, SECRETS_DIR.name: "/no/such/secrets"}, SECRETS_DIR.name),
    (["produce", "{tmp}/facts.jsonl"], {PARTITIONS.name: "x"}, PARTITIONS.name),
    (["generate", "--to-kafka", "--facts", "1"], {BOOTSTRAP.name: "k:x"}, BOOTSTRAP.name),
    (
        ["replay", "--from", "earliest", "--capture", "{tmp}/out.jsonl"],
        {**BROKER, LOG_LEVEL.name: "LOUD"},
        LOG_LEVEL.name,
    ),
    (["offsets", "show"], {BOOTSTRAP.name: "k:x"}, BOOTSTRAP.name),
    (
        ["demo", "--facts", "10", "--capture", "{tmp}/demo/c.jsonl"],
        {PARTITIONS.name: "0"},
        PARTITIONS.name,
    ),
    (["smoke", "plugin", "--capture", "{tmp}/c.jsonl"], {BOOTSTRAP.name: "k:x"}, BOOTSTRAP.name),
    (["receiver"], {RECEIVER_ADDR.name: "bad"}, RECEIVER_ADDR.name),
    (["config", "check"], {**SINK, LOG_LEVEL.name: "LOUD"}, LOG_LEVEL.name),
]


@pytest.mark.parametrize(
    ("argv", "env", "variable"), CASES, ids=[" ".join(c[0][:2]) + f" {c[2]}" for c in CASES]
)
def test_a_bad_setting_is_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in os.environ:
        if name.startswith(OURS):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "facts.jsonl").write_text("")
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    out, err = capfd.readouterr()
    said = out if argv[0] == "config" else err  # the check reports on stdout
    assert "Traceback" not in out + err
    problems = [line for line in said.splitlines() if variable in line]
    assert problems, out + err
    if argv[0] != "config":
        assert err.count("\n") == 1, err  # one line, nothing else
        assert not list(tmp_path.rglob("*.log")), "something was started"
