"""The auth gate, request headers and credential sources of the sink."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract.facts import AuthRoute
from sinks.auth import Admitted, Skipped, SkipReason, admit, request_headers
from sinks.credentials import (
    AuthJsonCredentials,
    Credential,
    CredentialChain,
    CredentialProblem,
    EnvCredentials,
    SecretsDirCredentials,
    header_value_problem,
)
from sinks.errors import CredentialError, InvalidCredentialError, UnreadableCredentialError

TOKEN = "tok-Secret-123"


def env_chain(**env: str) -> CredentialChain:
    return CredentialChain.from_env(env)


def test_a_chatgpt_route_with_a_known_account_is_admitted(tmp_path: Path) -> None:
    (tmp_path / "acct-1").write_text(TOKEN + "\n")
    chain = env_chain(ANALYTICS_SECRETS_DIR=str(tmp_path))
    decision = admit(AuthRoute(kind="chatgpt", account_id="acct-1"), chain)
    assert isinstance(decision, Admitted)
    assert decision.credential.access_token == TOKEN
    assert request_headers(decision, "k" * 32) == {
        "Authorization": f"Bearer {TOKEN}",
        "chatgpt-account-id": "acct-1",
        "Content-Type": "application/json",
        "Idempotency-Key": "k" * 32,
    }


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (AuthRoute(), SkipReason.NO_AUTH),
        (AuthRoute(kind="api_key", account_id="acct-1"), SkipReason.NOT_CHATGPT_LOGIN),
        (AuthRoute(kind="agent_identity", account_id="acct-1"), SkipReason.NOT_CHATGPT_LOGIN),
        (AuthRoute(kind="chatgpt", account_id="acct-unknown"), SkipReason.NO_TOKEN),
        (AuthRoute(kind="chatgpt_tokens"), SkipReason.NO_TOKEN),
        (AuthRoute(kind="api_key"), SkipReason.NOT_CHATGPT_LOGIN),
    ],
)
def test_the_gate_skips_with_the_upstream_reasons(
    tmp_path: Path, route: AuthRoute, reason: SkipReason
) -> None:
    (tmp_path / "acct-1").write_text(TOKEN)
    assert admit(route, env_chain(ANALYTICS_SECRETS_DIR=str(tmp_path))) == Skipped(reason)


def test_single_tenant_default_takes_routes_without_an_account() -> None:
    chain = env_chain(ANALYTICS_BEARER_TOKEN=TOKEN, ANALYTICS_ACCOUNT_ID="solo")
    decision = admit(AuthRoute(), chain)
    assert isinstance(decision, Admitted)
    assert decision.account_id == "solo"
    assert not decision.is_fedramp
    # ...but not another account's route, and not an API-key login.
    assert admit(AuthRoute(kind="chatgpt", account_id="other"), chain) == Skipped(
        SkipReason.NO_TOKEN
    )
    assert admit(AuthRoute(kind="api_key"), chain) == Skipped(SkipReason.NOT_CHATGPT_LOGIN)


def test_a_token_without_an_account_id_is_skipped() -> None:
    chain = env_chain(ANALYTICS_BEARER_TOKEN=TOKEN)
    assert admit(AuthRoute(), chain) == Skipped(SkipReason.NO_ACCOUNT_ID)


def test_fedramp_comes_from_the_route_or_the_credential() -> None:
    chain = env_chain(
        ANALYTICS_BEARER_TOKEN=TOKEN, ANALYTICS_ACCOUNT_ID="solo", ANALYTICS_FEDRAMP="true"
    )
    decision = admit(AuthRoute(), chain)
    assert isinstance(decision, Admitted)
    assert request_headers(decision, "k")["X-OpenAI-Fedramp"] == "true"
    plain = env_chain(ANALYTICS_BEARER_TOKEN=TOKEN, ANALYTICS_ACCOUNT_ID="solo")
    routed = admit(AuthRoute(kind="chatgpt", account_id="solo", is_fedramp=True), plain)
    assert isinstance(routed, Admitted)
    assert routed.is_fedramp


def test_secret_files_are_re_read_when_they_change(tmp_path: Path) -> None:
    source = SecretsDirCredentials(tmp_path)
    assert source.lookup("acct-1") is None
    path = tmp_path / "acct-1"
    path.write_text("first")
    first = source.lookup("acct-1")
    assert first is not None
    assert first.access_token == "first"
    path.write_bytes(orjson.dumps({"access_token": "second-longer", "is_fedramp": True}))
    os.utime(path, ns=(1, 2))  # a different mtime even on coarse clocks
    second = source.lookup("acct-1")
    assert second is not None
    assert second.access_token == "second-longer"
    assert second.is_fedramp
    path.unlink()
    assert source.lookup("acct-1") is None


@pytest.mark.parametrize("account", ["", ".", "..", "../etc/passwd", "a/b"])
def test_secret_lookups_never_leave_the_directory(tmp_path: Path, account: str) -> None:
    assert SecretsDirCredentials(tmp_path / "sub").lookup(account) is None


def _jwt(claims: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"e30.{payload}.sig"


def test_auth_json_gives_the_login_and_reads_the_account_from_the_id_token(tmp_path: Path) -> None:
    id_token = _jwt(
        {
            "https://api.openai.com/auth": {
                "chatgpt_account_id": "acct-jwt",
                "chatgpt_account_is_fedramp": True,
            }
        }
    )
    (tmp_path / "auth.json").write_bytes(
        orjson.dumps(
            {
                "OPENAI_API_KEY": None,
                "tokens": {"id_token": id_token, "access_token": TOKEN, "refresh_token": "r"},
                "last_refresh": "2026-11-01T00:00:00Z",
            }
        )
    )
    source = AuthJsonCredentials(tmp_path)
    found = source.lookup("acct-jwt")
    assert found is not None
    assert (found.access_token, found.auth_kind, found.is_fedramp) == (TOKEN, "chatgpt", True)
    assert source.lookup("acct-other") is None


def test_an_api_key_auth_json_resolves_nothing(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_bytes(orjson.dumps({"OPENAI_API_KEY": "sk-x", "tokens": None}))
    assert AuthJsonCredentials(tmp_path).lookup("anything") is None


def test_a_malformed_auth_json_is_invalid_not_absent(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("{not json")
    with pytest.raises(InvalidCredentialError, match=r"auth.json holds no token.*not valid JSON"):
        AuthJsonCredentials(tmp_path).lookup("acct")


def test_sources_are_tried_in_order(tmp_path: Path) -> None:
    (tmp_path / "solo").write_text("from-dir")
    chain = env_chain(
        ANALYTICS_BEARER_TOKEN="from-env",
        ANALYTICS_ACCOUNT_ID="solo",
        ANALYTICS_SECRETS_DIR=str(tmp_path),
    )
    found = chain.lookup("solo")
    assert found is not None
    assert found.access_token == "from-env"


def test_tokens_stay_out_of_reprs_and_strings(tmp_path: Path) -> None:
    credential = Credential("chatgpt", "acct", TOKEN, source="test")
    chain = env_chain(
        ANALYTICS_BEARER_TOKEN=TOKEN, ANALYTICS_ACCOUNT_ID="a", ANALYTICS_SECRETS_DIR=str(tmp_path)
    )
    decision = admit(AuthRoute(), chain)
    for text in (repr(credential), str(credential), repr(chain), repr(decision), str(decision)):
        assert TOKEN not in text
    assert repr(EnvCredentials(credential)) == "EnvCredentials(configured=True)"


# -- issue #16: unusable credentials are errors, never "no token", never cached --------

BAD_TOKENS = {
    "newline": "tok-LEFT\ntok-RIGHT",
    "carriage return": "tok-LEFT\rtok-RIGHT",
    "nul": "tok-LEFT\x00tok-RIGHT",
    "delete": "tok-LEFT\x7ftok-RIGHT",
    "space": "tok-LEFT tok-RIGHT",
    "non-ascii": "tok-LEFT\u00fctok-RIGHT",
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_credential_takes_only_header_safe_values_and_never_quotes_them(token: str) -> None:
    with pytest.raises(CredentialProblem) as raised:
        Credential("chatgpt", "acct", token)
    assert "tok-LEFT" not in str(raised.value)
    assert "tok-RIGHT" not in str(raised.value)
    with pytest.raises(CredentialProblem, match="account id"):
        Credential("chatgpt", token, "tok-ok")
    assert header_value_problem(token) is not None
    assert header_value_problem("eyJh.eyJ-_~+/=") is None


@pytest.mark.parametrize(
    "content",
    [
        b"tok-LEFT\ntok-RIGHT\n",
        "tok-LEFT\u00fctok-RIGHT".encode(),
        b"tok-LEFT\xfctok-RIGHT",  # not UTF-8
        orjson.dumps({"access_token": "tok-LEFT\u0000tok-RIGHT"}),
        orjson.dumps({"access_token": None}),
        b'{"access_token": "tok-LEFT',  # torn JSON
        b"  \n",
    ],
    ids=["newline", "non-ascii", "not-utf8", "json-nul", "json-no-token", "torn-json", "empty"],
)
def test_a_secret_file_without_a_usable_token_is_invalid_not_absent(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "acct-1").write_bytes(content)
    chain = env_chain(ANALYTICS_SECRETS_DIR=str(tmp_path))
    with pytest.raises(InvalidCredentialError) as raised:
        admit(AuthRoute(kind="chatgpt", account_id="acct-1"), chain)
    message = str(raised.value)
    assert message.startswith(f"account acct-1: secret file {tmp_path / 'acct-1'} ")
    assert "tok-LEFT" not in message
    assert "tok-RIGHT" not in message
    assert raised.value.reason == "invalid_credentials"


def test_a_read_error_is_retried_on_every_lookup_never_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "acct-1"
    path.write_text(TOKEN)
    source = SecretsDirCredentials(tmp_path)
    real_read = Path.read_bytes
    failures = [OSError(24, "Too many open files"), PermissionError(13, "Permission denied")]

    def flaky_read(self: Path) -> bytes:
        if failures:
            raise failures.pop(0)
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", flaky_read)
    with pytest.raises(UnreadableCredentialError, match=r"could not be read.*Too many open") as a:
        source.lookup("acct-1")
    with pytest.raises(UnreadableCredentialError, match="Permission denied") as b:
        source.lookup("acct-1")
    assert a.value.since == b.value.since  # one outage, however many batches meet it
    assert a.value.reason == "credentials_unreadable"
    found = source.lookup("acct-1")  # the same file, unchanged: read again, and it works
    assert found is not None
    assert found.access_token == TOKEN
    failures.append(OSError(5, "Input/output error"))
    assert source.lookup("acct-1") == found  # a parsed file is cached; no read needed


def test_a_later_outage_starts_its_own_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acct-1").write_text("not valid\n token")
    source = SecretsDirCredentials(tmp_path)
    with pytest.raises(InvalidCredentialError) as first:
        source.lookup("acct-1")
    (tmp_path / "acct-1").write_text(TOKEN)
    os.utime(tmp_path / "acct-1", ns=(1, 2))
    assert source.lookup("acct-1") is not None
    (tmp_path / "acct-1").write_text("not valid\n again")
    os.utime(tmp_path / "acct-1", ns=(3, 4))
    with pytest.raises(InvalidCredentialError) as second:
        source.lookup("acct-1")
    assert second.value.since > first.value.since


def test_a_missing_secrets_directory_is_unreadable_not_absent(tmp_path: Path) -> None:
    source = SecretsDirCredentials(tmp_path / "unmounted")
    with pytest.raises(UnreadableCredentialError, match=r"secrets directory .*unmounted") as a:
        source.lookup("acct-1")
    with pytest.raises(UnreadableCredentialError) as b:
        source.lookup("acct-2")
    assert a.value.since == b.value.since  # one outage: the directory's, whatever the name
    (tmp_path / "unmounted").mkdir()
    assert source.lookup("acct-1") is None  # now a genuinely absent account
    (tmp_path / "unmounted").rmdir()
    with pytest.raises(UnreadableCredentialError) as c:
        source.lookup("acct-1")
    assert c.value.since > a.value.since  # a new outage, with a clock of its own


def test_a_name_too_long_for_a_file_is_an_absent_account(tmp_path: Path) -> None:
    assert SecretsDirCredentials(tmp_path).lookup("a" * 300) is None


@pytest.mark.parametrize("name", ["..data", ".hidden", "subdir"])
def test_hidden_names_and_directories_are_no_credential(tmp_path: Path, name: str) -> None:
    (tmp_path / "subdir").mkdir()
    (tmp_path / "..data").mkdir()
    assert SecretsDirCredentials(tmp_path).lookup(name) is None


def test_an_invalid_environment_token_fails_its_account_only() -> None:
    chain = env_chain(ANALYTICS_BEARER_TOKEN="tok-LEFT\u00fctok-RIGHT", ANALYTICS_ACCOUNT_ID="solo")
    for lookup in (lambda: chain.lookup("solo"), chain.default):
        with pytest.raises(InvalidCredentialError, match=r"account solo: .*non-ASCII") as raised:
            lookup()
        assert "tok-LEFT" not in str(raised.value)
    assert chain.lookup("other") is None
    assert "tok-" not in repr(chain)


def test_an_unusable_credential_is_not_a_gate_skip(tmp_path: Path) -> None:
    """A file that is there but unusable raises through the gate (the delivery step
    retries it); it never falls through to a later source or to ``no_token``."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "acct-1").write_text("bad token")
    (tmp_path / "auth.json").write_bytes(
        orjson.dumps({"tokens": {"access_token": TOKEN, "account_id": "acct-1"}})
    )
    chain = env_chain(ANALYTICS_SECRETS_DIR=str(tmp_path / "secrets"), CODEX_HOME=str(tmp_path))
    with pytest.raises(CredentialError):
        admit(AuthRoute(kind="chatgpt", account_id="acct-1"), chain)
