"""The configuration check (``codex-analytics config check``) and the settings kinds it
leans on: every mistake of issue #17 item 9 is reported, with the variable and the
reason, all at once, and no secret is ever shown.

Misspelled names are built from the declarations (``..._EVNTS``), so that the test of
declared variables (every ``ANALYTICS_*`` written in the code is declared) stays exact.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from codex_analytics.cli.config_checks import (
    DEFAULT_SERVICES,
    Finding,
    check_environment,
    resolve_commands,
)
from codex_analytics.cli.main import main
from codex_analytics.runtime.config import (
    LOG_LEVEL,
    address,
    broker_list,
    declare,
    directory_path,
    existing_directory,
    file_path,
    http_url,
    integer,
    log_level,
    topic_name,
)
from codex_analytics.runtime.env_names import (
    is_service_link,
    unknown_variables,
    warn_unknown_variables,
)
from codex_analytics.runtime.errors import ConfigError
from codex_analytics.runtime.kafka import BOOTSTRAP
from sinks.settings import BASE_URL, BATCH_MAX_EVENTS, BEARER_TOKEN, CAPTURE_FILE, SECRETS_DIR
from streams.settings import DEDUPE_HORIZON_HOURS, HEALTH_ADDR, STATE_RETENTION_HOURS

MISSPELT = BATCH_MAX_EVENTS.name.replace("ANALYTICS_", "ANALYTICS_SINK_").replace("EVENTS", "EVNTS")
TOKEN = "tok-SECRET-0123456789"
#: A valid environment for the three services: nothing to report but notes.
CLEAN = {BOOTSTRAP.name: "kafka-1:9092,kafka-2:9092", BASE_URL.name: "https://example.com/api/"}


def read(kind_factory: object, raw: str) -> object:
    setting = declare("X_VALUE", kind_factory, None, help="h", used_by=("t",))  # type: ignore[arg-type]
    return setting.read({"X_VALUE": raw})


def errors(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.level == "error"]


# -- Kinds: validated when read, errors naming the variable -----------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("bad", "no port number in 'bad'"),
        ("host:99999", "port out of range"),
        ("host:-1", "port out of range"),
        ("bad host:80", "not a host name"),
        ("", None),  # blank: unset
    ],
)
def test_an_address_is_host_and_port_in_range(raw: str, why: str | None) -> None:
    if why is None:
        assert read(address(), raw) is None
        return
    with pytest.raises(ConfigError, match=rf"^X_VALUE must be HOST:PORT: {why}"):
        read(address(), raw)


@pytest.mark.parametrize("raw", ["127.0.0.1:8080", "0.0.0.0:0", ":9464", "9464", "[::1]:80"])
def test_listen_addresses_that_serve_today_still_read(raw: str) -> None:
    assert read(address(), raw) == raw


@pytest.mark.parametrize("raw", ["kafka:9092", "a:9092, b:9093", "kafka", "[::1]:9092"])
def test_bootstrap_servers(raw: str) -> None:
    assert read(broker_list(), raw) == raw


@pytest.mark.parametrize("raw", ["kafka:x", "a:9092,,b:9092", "kafka:0", ":9092", "a b:9092"])
def test_bad_bootstrap_servers_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^X_VALUE "):
        read(broker_list(), raw)


def test_the_log_level_is_a_logging_name() -> None:
    assert read(log_level(), "info") == "INFO"
    assert read(log_level(), "warn") == "WARN"
    with pytest.raises(ConfigError, match=r"^X_VALUE must be one of DEBUG, .*; got 'LOUD'$"):
        read(log_level(), "LOUD")
    with pytest.raises(ConfigError, match="X_VALUE"):
        read(log_level(), "notset")  # logging knows it, but it logs nothing useful


def test_a_url_needs_a_scheme_a_host_and_a_valid_port_and_hides_its_password() -> None:
    assert (
        read(http_url(), "https://chatgpt.com/backend-api/") == "https://chatgpt.com/backend-api/"
    )
    for bad in ("chatgpt.com/backend-api", "ftp://h/", "https:///path", "http://h:99999/"):
        with pytest.raises(ConfigError, match=r"^X_VALUE must be an http"):
            read(http_url(), bad)
    with pytest.raises(ConfigError) as raised:
        read(http_url(), "https://user:hunter2@h:99999/")
    assert "hunter2" not in str(raised.value)
    assert "***@h" in str(raised.value)
    for userinfo in ("https://user:hunter2@h/", "https://tok-hunter2@h/"):
        with pytest.raises(ConfigError, match="must not hold credentials") as raised:
            read(http_url(), userinfo)
        assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError, match="unparsable") as raised:
        read(http_url(), "https://u:hunter2@[::1")
    assert "hunter2" not in str(raised.value)


def test_paths_must_exist_or_be_creatable(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert read(existing_directory(), str(tmp_path)) == str(tmp_path)
    with pytest.raises(ConfigError, match=r"must be an existing directory: .* does not exist"):
        read(existing_directory(), str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="is not a directory"):
        read(existing_directory(), str(a_file))
    assert read(directory_path(), str(tmp_path / "new" / "deeper"))  # mkdir -p can make it
    assert read(file_path(), str(tmp_path / "later" / "events.jsonl"))  # its dir may come later
    with pytest.raises(ConfigError, match=r"cannot be created: .* is not a directory"):
        read(file_path(), str(a_file / "events.jsonl"))
    with pytest.raises(ConfigError, match="must be a file, not a directory"):
        read(file_path(), str(tmp_path))


def test_a_topic_name_is_one_kafka_accepts() -> None:
    assert read(topic_name(), "analytics.facts_v2-eu") == "analytics.facts_v2-eu"
    for bad in ("facts topic", "facts/dlq", "..", "t" * 250, "événements"):
        with pytest.raises(ConfigError, match=r"^X_VALUE must be a Kafka topic name"):
            read(topic_name(), bad)


@pytest.mark.parametrize("raw", ["inf", "nan", "-inf"])
def test_a_number_must_be_finite(raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^X_VALUE must be a finite number, got '{raw}'$"):
        read(integer(minimum=1), raw)


# -- Unknown variables ---------------------------------------------------------------


def test_an_unknown_variable_gets_the_closest_declared_name() -> None:
    known = {BATCH_MAX_EVENTS.name, LOG_LEVEL.name, BOOTSTRAP.name}
    env = {
        MISSPELT: "1000",
        "ANALYTICS_" + "SOMETHING_ELSE": "1",
        "KAFKA_" + "BOOTSTRAP_SERVER": "k:9092",
        "PATH": "/bin",  # not ours
        "ANALYTICS_" + "BLANK": " ",  # blank: unset
        LOG_LEVEL.name: "info",
    }
    found = {u.name: u.suggestion for u in unknown_variables(env, known)}
    assert found == {
        MISSPELT: BATCH_MAX_EVENTS.name,
        "ANALYTICS_" + "SOMETHING_ELSE": None,
        "KAFKA_" + "BOOTSTRAP_SERVER": BOOTSTRAP.name,
    }


def test_kubernetes_service_links_are_no_misspellings() -> None:
    kafka = "KAFKA_"
    links = {
        kafka + "PORT": "tcp://10.0.0.7:9092",
        kafka + "SERVICE_HOST": "10.0.0.7",
        kafka + "SERVICE_PORT": "9092",
        kafka + "SERVICE_PORT_CLIENT": "9092",
        kafka + "PORT_9092_TCP": "tcp://10.0.0.7:9092",
        kafka + "PORT_9092_TCP_PROTO": "tcp",
        kafka + "PORT_9092_TCP_PORT": "9092",
        kafka + "PORT_9092_TCP_ADDR": "10.0.0.7",
        "CODEX_ANALYTICS_" + "GATEWAY_SERVICE_HOST": "10.0.0.8",
    }
    assert all(is_service_link(name, value) for name, value in links.items())
    assert unknown_variables(links, set()) == []
    # The name alone is not enough: a port written by hand is a misspelled setting.
    assert not is_service_link("ANALYTICS_" + "GATEWAY_PORT", "8080")


def test_services_warn_once_per_unknown_variable_without_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {MISSPELT: TOKEN}
    with caplog.at_level(logging.WARNING, logger="codex_analytics.config"):
        warn_unknown_variables(env, {BATCH_MAX_EVENTS.name}, service="sink worker")
    (record,) = caplog.records
    assert record.getMessage() == (
        f"sink worker: unknown variable {MISSPELT} is ignored; did you mean {BATCH_MAX_EVENTS.name}?"
    )
    assert (record.variable, record.suggestion) == (MISSPELT, BATCH_MAX_EVENTS.name)  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text


# -- The check -------------------------------------------------------------------------


def test_a_clean_environment_has_no_error() -> None:
    findings = check_environment(CLEAN, DEFAULT_SERVICES)
    assert errors(findings) == []
    assert {f.level for f in findings} <= {"ok", "info"}


def test_every_mistake_of_item_9_is_reported_at_once(tmp_path: Path) -> None:
    env = {
        **CLEAN,
        LOG_LEVEL.name: "LOUD",
        HEALTH_ADDR.name: "bad",
        SECRETS_DIR.name: str(tmp_path / "no-such-secrets"),
        MISSPELT: "1000",
        BATCH_MAX_EVENTS.name: "lots",
    }
    findings = check_environment(env, DEFAULT_SERVICES)
    by_subject: dict[str, Finding] = {}
    for finding in findings:
        if finding.level == "error":
            by_subject.setdefault(finding.subject, finding)
    assert set(by_subject) == {
        LOG_LEVEL.name,
        HEALTH_ADDR.name,
        SECRETS_DIR.name,
        MISSPELT,
        BATCH_MAX_EVENTS.name,
    }, errors(findings)
    assert "got 'LOUD'" in by_subject[LOG_LEVEL.name].message
    assert by_subject[HEALTH_ADDR.name].services == ("stream worker",)
    assert "does not exist" in by_subject[SECRETS_DIR.name].message
    assert by_subject[MISSPELT].message.endswith(f"did you mean {BATCH_MAX_EVENTS.name}?")
    assert "must be a number, got 'lots'" in by_subject[BATCH_MAX_EVENTS.name].message
    # The sink's log level is a variant (a stricter kind): its own line, its own reason.
    levels = [f for f in findings if f.subject == LOG_LEVEL.name and f.level == "error"]
    assert {s for f in levels for s in f.services} == set(DEFAULT_SERVICES)
    assert len(levels) == 2  # the gateway's variant fails as the stream's declaration: merged


def test_rules_between_variables_come_from_the_services_readers(tmp_path: Path) -> None:
    env = {
        BOOTSTRAP.name: "k:9092",
        DEDUPE_HORIZON_HOURS.name: "48",
        STATE_RETENTION_HOURS.name: "24",
        LOG_LEVEL.name: "LOUD",  # a bad variable hides no rule: it is read at its default
    }
    found = errors(check_environment(env, ["stream worker", "sink worker"]))
    assert sum(m.startswith(f"{LOG_LEVEL.name} must be one of") for m in found) == 2, found
    assert any(m.startswith(f"{STATE_RETENTION_HOURS.name} must be at least") for m in found), found
    assert any(m.startswith(f"{BASE_URL.name} is not set") for m in found), found


def test_the_secrets_directory_is_surveyed_without_showing_a_token(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "acct-1").write_text(TOKEN + "\n")
    (secrets / "acct-2").write_text('{"access_token": "' + TOKEN + '"}')
    (secrets / "acct-3").write_text(TOKEN + " with a space")
    (secrets / "..data").mkdir()  # a Kubernetes secret volume's own entries: no account
    env = {**CLEAN, SECRETS_DIR.name: str(secrets), BEARER_TOKEN.name: TOKEN}
    findings = check_environment(env, ["sink worker"])
    lines = [f.line() for f in findings]
    assert f"ok      {SECRETS_DIR.name}: 2 account(s) with a usable token [sink worker]" in lines
    (problem,) = errors(findings)
    assert "account acct-3" in problem
    assert "holds a control character or a space" in problem
    assert any(f"{BEARER_TOKEN.name} = (secret, not shown)" in line for line in lines)
    assert TOKEN not in "\n".join(lines)


def test_an_empty_secrets_directory_is_a_warning(tmp_path: Path) -> None:
    env = {**CLEAN, SECRETS_DIR.name: str(tmp_path)}
    (warning,) = [f for f in check_environment(env, ["sink worker"]) if f.level == "warning"]
    assert "holds no token file" in warning.message


def test_the_capture_file_needs_its_directory(tmp_path: Path) -> None:
    env = {BOOTSTRAP.name: "k:9092", CAPTURE_FILE.name: str(tmp_path / "missing" / "e.jsonl")}
    (problem,) = errors(check_environment(env, ["sink worker"]))
    assert problem.startswith(f"{CAPTURE_FILE.name}: its directory ")
    assert "does not exist" in problem
    env[CAPTURE_FILE.name] = str(tmp_path / "e.jsonl")
    assert errors(check_environment(env, ["sink worker"])) == []


def test_an_embedded_broker_is_a_warning_and_replay_needs_a_broker() -> None:
    findings = check_environment({}, ["gateway", "replay"])
    (warning,) = [f for f in findings if f.level == "warning"]
    assert (warning.subject, warning.services) == (BOOTSTRAP.name, ("gateway",))
    assert "memory-only broker" in warning.message
    assert f"{BOOTSTRAP.name} is not set" in errors(findings)


def test_variables_the_checked_services_do_not_read_are_noted() -> None:
    env = {**CLEAN, "ANALYTICS_" + "RECEIVER_ADDR": "127.0.0.1:8090"}
    notes = [f.message for f in check_environment(env, ["gateway"]) if f.level == "info"]
    assert any(
        m.startswith(
            "ANALYTICS_" + "RECEIVER_ADDR is set but not read by gateway (read by receiver"
        )
        for m in notes
    ), notes


def test_the_json_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith(("ANALYTICS_", "KAFKA_", "CODEX_"))]:
        monkeypatch.delenv(name)
    env = {**CLEAN, LOG_LEVEL.name: "LOUD", MISSPELT: "1", BEARER_TOKEN.name: TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["config", "check", "sink", "--format", "json"]) == 2
    out = capsys.readouterr().out
    document = orjson.loads(out)
    assert document["services"] == ["sink worker"]
    assert (document["ok"], document["errors"], document["warnings"]) == (False, 2, 0)
    errors_ = [f for f in document["findings"] if f["level"] == "error"]
    assert [(f["subject"], f["services"]) for f in errors_] == [
        (MISSPELT, []),
        (LOG_LEVEL.name, ["sink worker"]),
    ]
    assert TOKEN not in out
    monkeypatch.delenv(LOG_LEVEL.name)
    monkeypatch.delenv(MISSPELT)
    assert main(["config", "check", "sink", "--format", "json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["ok"] is True


def test_service_names_as_typed() -> None:
    assert resolve_commands([]) == list(DEFAULT_SERVICES)
    assert resolve_commands(["stream", "worker", "sink"]) == ["stream worker", "sink worker"]
    assert resolve_commands(["stream worker", "gateway", "gateway"]) == ["stream worker", "gateway"]
    assert resolve_commands(["offsets", "client"]) == ["offsets", "client library"]
    with pytest.raises(ValueError, match="unknown service 'streem'; choose from: "):
        resolve_commands(["streem"])
