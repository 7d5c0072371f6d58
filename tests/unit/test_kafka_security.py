"""Kafka security settings: validation, the aiokafka options they build, the variables
they hand to child processes, Faust's translation of them, and secrets kept out of
reprs, logs and errors. No broker: TLS and SASL against real endpoints are in
tests/integration/test_kafka_security.py."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from codex_analytics.runtime.errors import ConfigError
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.kafka_connection import classify
from codex_analytics.runtime.kafka_security import KafkaSecurity, Secret, TokenFile
from streams.faust_adapter.credentials import broker_credentials
from tests.pki import Pki, make_pki

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(PASSWORD + "\n")
    return path


def _env(**variables: str | Path) -> dict[str, str]:
    return {f"KAFKA_{name.upper()}": str(value) for name, value in variables.items()}


def test_plaintext_by_default() -> None:
    security = KafkaSecurity.from_env({})
    assert security == KafkaSecurity()
    assert security.client_options() == {"security_protocol": "PLAINTEXT"}


def test_tls_builds_a_verifying_context(pki: Pki) -> None:
    security = KafkaSecurity.from_env(_env(security_protocol="ssl", ssl_ca_file=pki.ca))
    options = security.client_options()
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the CA file's, not the system's


def test_without_a_ca_file_the_system_cas_are_used() -> None:
    context = KafkaSecurity.from_env(_env(security_protocol="SSL")).ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0 or context.get_ca_certs() == []


def test_hostname_checking_can_be_turned_off_verification_cannot(pki: Pki) -> None:
    env = _env(security_protocol="SSL", ssl_ca_file=pki.ca, ssl_check_hostname="false")
    context = KafkaSecurity.from_env(env).ssl_context()
    assert not context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_an_encrypted_client_key_with_its_password_file_loads(pki: Pki) -> None:
    env = _env(
        security_protocol="SSL",
        ssl_ca_file=pki.ca,
        ssl_cert_file=pki.client_cert,
        ssl_key_file=pki.client_key_encrypted,
        ssl_key_password_file=pki.client_key_password,
    )
    assert KafkaSecurity.from_env(env).ssl_context().verify_mode is ssl.CERT_REQUIRED


def test_scram_over_tls(pki: Pki, password_file: Path) -> None:
    env = _env(
        security_protocol="sasl_ssl",
        ssl_ca_file=pki.ca,
        sasl_mechanism="scram-sha-512",
        sasl_username="alice",
        sasl_password_file=password_file,
    )
    options = KafkaSecurity.from_env(env).client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "alice"
    assert options["sasl_plain_password"] == PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_the_password_file_is_read_when_a_client_is_built(password_file: Path) -> None:
    env = _env(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password_file=password_file,
    )
    security = KafkaSecurity.from_env(env)
    password_file.write_text("rotated\n")
    assert security.client_options()["sasl_plain_password"] == "rotated"


async def test_the_oauth_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    env = _env(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_file=token,
    )
    provider = KafkaSecurity.from_env(env).client_options()["sasl_oauth_token_provider"]
    assert isinstance(provider, TokenFile)
    assert await provider.token() == "first-token"
    token.write_text("second-token-longer\n")
    assert await provider.token() == "second-token-longer"
    token.unlink()  # a failure is raised, not cached
    with pytest.raises(ConfigError, match=f"KAFKA_SASL_OAUTH_TOKEN_FILE={token}: cannot read"):
        await provider.token()
    token.write_text("third\n")
    assert await provider.token() == "third"
    assert "third" not in repr(provider)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"security_protocol": "SASL_SSL"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"},
            "KAFKA_SASL_MECHANISM=SCRAM-SHA-256 needs KAFKA_SASL_USERNAME",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "a"},
            "needs exactly one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "a",
                "sasl_password": PASSWORD,
                "sasl_password_file": "/etc/hostname",
            },
            "needs exactly one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_FILE",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
            "KAFKA_SASL_MECHANISM must be one of plain, scram-sha-256, scram-sha-512, oauthbearer",
        ),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "a", "sasl_password": PASSWORD},
            "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {"ssl_ca_file": "/etc/hostname"},
            "KAFKA_SSL_CA_FILE is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS",
        ),
        (
            {"security_protocol": "SSL", "ssl_ca_file": "/no/such/ca.pem"},
            "KAFKA_SSL_CA_FILE must be an existing file: '/no/such/ca.pem' does not exist",
        ),
        (
            {"security_protocol": "SSL", "ssl_ca_file": "/etc/hostname"},
            "KAFKA_SSL_CA_FILE=/etc/hostname: not a PEM CA certificate",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "a",
                "sasl_password_file": "/no/such/password",
            },
            "KAFKA_SASL_PASSWORD_FILE must be an existing file: '/no/such/password' does not exist",
        ),
        ({"security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of plaintext, ssl"),
    ],
)
def test_incomplete_or_contradictory_settings_name_the_variable(
    variables: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValueError) as raised:
        KafkaSecurity.from_env(_env(**variables))
    assert expected in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_key_password_problem_names_the_files_not_the_password(pki: Pki, tmp_path: Path) -> None:
    encrypted = _env(
        security_protocol="SSL",
        ssl_cert_file=pki.client_cert,
        ssl_key_file=pki.client_key_encrypted,
    )
    with pytest.raises(ConfigError, match="the key is encrypted: set KAFKA_SSL_KEY_PASSWORD_FILE"):
        KafkaSecurity.from_env(encrypted)
    wrong = tmp_path / "wrong-password"
    wrong.write_text(PASSWORD)
    with pytest.raises(ConfigError) as raised:
        KafkaSecurity.from_env({**encrypted, "KAFKA_SSL_KEY_PASSWORD_FILE": str(wrong)})
    assert str(raised.value) == (
        f"KAFKA_SSL_CERT_FILE={pki.client_cert}, KAFKA_SSL_KEY_FILE={pki.client_key_encrypted}: "
        "cannot load the key (wrong password in KAFKA_SSL_KEY_PASSWORD_FILE)"
    )


def test_the_environment_describes_the_cluster_and_reads_back(
    pki: Pki, password_file: Path
) -> None:
    env = _env(
        bootstrap_servers="broker-1:9093,broker-2:9093",
        security_protocol="SASL_SSL",
        ssl_ca_file=pki.ca,
        ssl_check_hostname="false",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password_file=password_file,
        producer_idempotence="true",
        compression="zstd",
    )
    cluster = KafkaCluster.from_env(env)
    described = cluster.environment()
    assert KafkaCluster.from_env(described) == cluster
    assert described["KAFKA_SASL_PASSWORD_FILE"] == str(password_file)
    assert PASSWORD not in repr(described)


def test_a_password_value_is_passed_on_but_never_shown() -> None:
    env = _env(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password=PASSWORD,
    )
    cluster = KafkaCluster.from_env(env, bootstrap="b:9092")
    described = cluster.environment()
    assert described["KAFKA_SASL_PASSWORD"] == PASSWORD
    assert PASSWORD not in repr(described)
    assert PASSWORD not in repr(cluster)
    assert PASSWORD not in repr(cluster.security)
    assert repr(Secret(PASSWORD)) == "'***'"


def test_an_embedded_brokers_cluster_says_plaintext_and_nothing_else() -> None:
    assert KafkaCluster("127.0.0.1:9092").environment() == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_PRODUCER_IDEMPOTENCE": "false",
        "KAFKA_COMPRESSION": "none",
    }


def test_a_local_stack_passes_its_cluster_not_the_parents_kafka_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    from codex_analytics.devtools.localstack import LocalStack, private_topics

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CA_FILE", str(pki.ca))
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "parent")
    stack = LocalStack(
        KafkaCluster("127.0.0.1:1"),  # an embedded broker's cluster
        tmp_path,
        private_topics("t", 1),
        run_id="t",
        capture_path=tmp_path / "events.jsonl",
    )
    for service in stack.services:
        kafka = {k: v for k, v in service.env.items() if k.startswith("KAFKA_")}
        assert kafka == KafkaCluster("127.0.0.1:1").environment()


def test_a_child_process_inherits_no_kafka_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from codex_analytics.devtools.localstack import child_env

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    env = child_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert {k: v for k, v in env.items() if k.startswith("KAFKA_")} == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"
    }


@pytest.mark.parametrize(
    ("compression", "idempotence"),
    [("none", False), ("gzip", True), ("lz4", False), ("zstd", True)],
)
async def test_producer_options_carry_compression_and_idempotence(
    compression: str, idempotence: bool
) -> None:
    env = _env(compression=compression, producer_idempotence=str(idempotence).lower())
    options = KafkaCluster.from_env(env, bootstrap="b:9092").producer_options()
    assert options["enable_idempotence"] is idempotence
    assert options.get("compression_type") == (None if compression == "none" else compression)
    assert options["acks"] == "all"  # idempotence requires it
    # aiokafka accepts them (it checks that the codec is installed)
    await AIOKafkaProducer(**options).stop()


def _clusters(pki: Pki, password_file: Path, token: Path) -> dict[str, KafkaCluster]:
    sasl = {"sasl_username": "alice", "sasl_password_file": password_file}
    kinds = {
        "ssl": _env(security_protocol="SSL", ssl_ca_file=pki.ca),
        "mtls": _env(
            security_protocol="SSL",
            ssl_ca_file=pki.ca,
            ssl_cert_file=pki.client_cert,
            ssl_key_file=pki.client_key,
        ),
        "plain": _env(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", **sasl),
        "scram": _env(
            security_protocol="SASL_SSL", ssl_ca_file=pki.ca, sasl_mechanism="SCRAM-SHA-256", **sasl
        ),
        "oauth": _env(
            security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_file=token
        ),
    }
    return {
        name: KafkaCluster.from_env(env, bootstrap="127.0.0.1:1") for name, env in kinds.items()
    }


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("oauth-token-value")
    return path


@pytest.mark.parametrize("kind", ["ssl", "mtls", "plain", "scram", "oauth"])
def test_faust_gets_the_options_every_other_client_gets(
    kind: str, pki: Pki, password_file: Path, token: Path
) -> None:
    cluster = _clusters(pki, password_file, token)[kind]
    faust_options = dict(credentials_to_aiokafka_auth(broker_credentials(cluster)))
    ours = cluster.security.client_options()
    assert faust_options.keys() <= ours.keys() | {"ssl_context"}
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username"):
        assert faust_options.get(key) == ours.get(key)
    assert faust_options.get("sasl_plain_password") == ours.get("sasl_plain_password")
    assert (faust_options.get("ssl_context") is None) == (ours.get("ssl_context") is None)
    if kind == "oauth":
        assert isinstance(faust_options["sasl_oauth_token_provider"], TokenFile)
    assert PASSWORD not in repr(broker_credentials(cluster))


def test_faust_gets_nothing_for_plaintext() -> None:
    assert broker_credentials(KafkaCluster("b:9092")) is None


def test_the_stream_apps_producer_is_idempotent_and_compresses_as_configured() -> None:
    from streams.faust_adapter.app import StreamApp
    from streams.settings import StreamSettings

    cluster = KafkaCluster("127.0.0.1:1", idempotence=True, compression="zstd")

    async def build() -> dict[str, Any]:
        app = StreamApp(StreamSettings.from_env({}), cluster, partitions=1)
        producer = app._app.producer
        return {**producer._settings_default(), **producer._settings_extra()}

    settings = asyncio.run(build())
    assert settings["enable_idempotence"] is True
    assert settings["compression_type"] == "zstd"


async def test_no_client_shows_the_password_in_a_repr_a_log_or_an_error(
    pki: Pki, password_file: Path, token: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of client, built from clusters with a password set, started against
    a closed port: the password is in no repr, no log record, no error text."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for cluster in _clusters(pki, password_file, token).values():
        texts += [repr(cluster), repr(cluster.client_options()), repr(cluster.environment())]
        clients: list[Any] = [
            AIOKafkaProducer(**cluster.producer_options()),
            AIOKafkaConsumer(**cluster.consumer_options()),
            AIOKafkaAdminClient(**cluster.client_options()),
        ]
        for client in clients:
            texts.append(repr(client))
            try:
                await client.start()
            except Exception as exc:  # refused: nothing listens on port 1
                texts += [str(exc), repr(exc), classify(cluster, exc).line]
            finally:
                await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    texts += [record.getMessage() for record in caplog.records]
    assert texts
    for text in texts:
        assert PASSWORD not in text
        assert "oauth-token-value" not in text


def test_the_environment_never_holds_a_files_content(pki: Pki, password_file: Path) -> None:
    cluster = KafkaCluster.from_env(
        _env(
            security_protocol="SASL_SSL",
            ssl_ca_file=pki.ca,
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password_file=password_file,
        ),
        bootstrap="b:9093",
    )
    values = "\n".join(cluster.environment().values())
    assert PASSWORD not in values
    assert os.fspath(password_file) in values


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    return error


@pytest.mark.parametrize(
    ("exc", "what", "permanent"),
    [
        (
            ssl.SSLError(
                1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
            ),
            "TLS refused: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
            "required (the broker requires a client certificate: set KAFKA_SSL_CERT_FILE)",
            True,
        ),
        (
            _verify_error(62, "Hostname mismatch, certificate is not valid for 'b'."),
            "TLS handshake failed: certificate verify failed: Hostname mismatch, certificate "
            "is not valid for 'b'. (KAFKA_SSL_CHECK_HOSTNAME=false skips this check)",
            True,
        ),
        (ConnectionRefusedError(111, "refused"), "unreachable (connection refused)", False),
        (TimeoutError(), "no answer in time", False),
        (KeyError("v"), "SASL authentication failed for user alice (SCRAM-SHA-512)", True),
        (
            ConfigError("KAFKA_SASL_OAUTH_TOKEN_FILE=/t: cannot read it (No such file)"),
            "KAFKA_SASL_OAUTH_TOKEN_FILE=/t: cannot read it (No such file)",
            False,
        ),
    ],
)
def test_classify(exc: BaseException, what: str, permanent: bool) -> None:
    security = KafkaSecurity(
        "SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="alice", sasl_password=Secret("x")
    )
    failure = classify(KafkaCluster("b:9093", security=security), exc, "b:9093")
    assert (failure.line, failure.permanent) == (f"Kafka at b:9093: {what}", permanent)
