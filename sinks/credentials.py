"""Where the sink finds the secret token for an account (design.md §6; a PROPOSAL of ours).

Tokens never travel through Kafka: a fact names only the account, the auth kind and
the FedRAMP flag. The sink resolves the token here, from one of three sources, tried
in order:

1. ``EnvCredentials``: one account from ``ANALYTICS_BEARER_TOKEN``,
   ``ANALYTICS_ACCOUNT_ID`` and ``ANALYTICS_FEDRAMP``. It is also the *default*
   credential for events whose route names no account (single-tenant mode).
2. ``SecretsDirCredentials``: a directory with one file per account (the file name is
   the account id; the content is the token, or a JSON object with ``access_token``
   and optionally ``auth_kind`` and ``is_fedramp``), re-read when a file changes, as
   a mounted Kubernetes secret does.
3. ``AuthJsonCredentials``: a Codex ``auth.json`` under ``CODEX_HOME``, re-read when
   it changes. It holds one login; its account is read from ``tokens.account_id``
   or the ID token's claims.

``Credential`` hides its token from ``repr`` and ``str``; nothing in this package logs
one.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

#: The auth kinds upstream counts as a ChatGPT login (delivery.md §3.2, Profile S).
CHATGPT_KINDS: frozenset[str] = frozenset({"chatgpt", "chatgpt_tokens"})
_ID_TOKEN_CLAIMS = "https://api.openai.com/auth"


@dataclass(frozen=True, slots=True)
class Credential:
    """What the sink needs to send one account's events. ``access_token`` is secret."""

    auth_kind: str
    account_id: str | None
    access_token: str = field(repr=False)
    is_fedramp: bool = False
    source: str = ""

    def __str__(self) -> str:
        return repr(self)


class CredentialProvider(Protocol):
    def lookup(self, account_id: str) -> Credential | None:
        """The credential of ``account_id``, or ``None`` when this source has none."""

    def default(self) -> Credential | None:
        """The credential for events whose route names no account (single-tenant)."""


class EnvCredentials:
    """A single account from the environment: the single-tenant default."""

    def __init__(self, credential: Credential | None) -> None:
        self._credential = credential

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvCredentials:
        from codex_analytics.runtime.env import env_bool, env_str

        token = env_str(env, "ANALYTICS_BEARER_TOKEN")
        if token is None:
            return cls(None)
        return cls(
            Credential(
                auth_kind="chatgpt",
                account_id=env_str(env, "ANALYTICS_ACCOUNT_ID"),
                access_token=token,
                is_fedramp=env_bool(env, "ANALYTICS_FEDRAMP"),
                source="environment",
            )
        )

    def lookup(self, account_id: str) -> Credential | None:
        cred = self._credential
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        return self._credential

    def __repr__(self) -> str:
        return f"EnvCredentials(configured={self._credential is not None})"


class _FileCache:
    """Parsed file contents, re-parsed when the file's (mtime, size, inode) changes.

    ``os.stat`` follows symlinks, so the atomic ``..data`` swap of a Kubernetes secret
    volume is seen as a change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int, int], Credential | None]] = {}

    def get(self, path: Path, parse: Callable[[bytes], Credential | None]) -> Credential | None:
        try:
            st = os.stat(path)
        except OSError:
            with self._lock:
                self._entries.pop(str(path), None)
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            hit = self._entries.get(str(path))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            credential = parse(path.read_bytes())
        except (OSError, ValueError):
            credential = None  # unreadable or malformed: no credential (counted by the gate)
        with self._lock:
            self._entries[str(path)] = (stamp, credential)
        return credential


class SecretsDirCredentials:
    """One file per account in a directory; re-read when a file changes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._cache = _FileCache()

    def lookup(self, account_id: str) -> Credential | None:
        # An account id is a file name here: refuse anything that could leave the dir.
        if not account_id or "/" in account_id or "\0" in account_id or account_id in (".", ".."):
            return None
        return self._cache.get(
            self._dir / account_id, lambda raw: _parse_secret_file(raw, account_id)
        )

    def default(self) -> Credential | None:
        return None

    def __repr__(self) -> str:
        return f"SecretsDirCredentials({str(self._dir)!r})"


def _parse_secret_file(raw: bytes, account_id: str) -> Credential | None:
    text = raw.strip()
    if not text:
        return None
    if text.startswith(b"{"):
        obj = orjson.loads(text)
        token = obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str) or not token:
            return None
        kind = obj.get("auth_kind") or "chatgpt"
        return Credential(
            auth_kind=str(kind),
            account_id=account_id,
            access_token=token,
            is_fedramp=obj.get("is_fedramp") is True,
            source="secrets-dir",
        )
    return Credential(
        auth_kind="chatgpt",
        account_id=account_id,
        access_token=text.decode("utf-8"),
        source="secrets-dir",
    )


class AuthJsonCredentials:
    """The login in a Codex ``$CODEX_HOME/auth.json``; re-read when it changes."""

    def __init__(self, codex_home: str | os.PathLike[str]) -> None:
        self._path = Path(codex_home) / "auth.json"
        self._cache = _FileCache()

    def _current(self) -> Credential | None:
        return self._cache.get(self._path, _parse_auth_json)

    def lookup(self, account_id: str) -> Credential | None:
        cred = self._current()
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        return None

    def __repr__(self) -> str:
        return f"AuthJsonCredentials({str(self._path)!r})"


def _parse_auth_json(raw: bytes) -> Credential | None:
    obj = orjson.loads(raw)
    if not isinstance(obj, dict):
        return None
    tokens = obj.get("tokens")
    if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        # An API-key login (``OPENAI_API_KEY`` only) is not a ChatGPT login: the gate
        # skips it, so there is nothing to resolve.
        return None
    claims = _jwt_claims(tokens.get("id_token")).get(_ID_TOKEN_CLAIMS, {})
    if not isinstance(claims, dict):
        claims = {}
    account = tokens.get("account_id") or claims.get("chatgpt_account_id")
    mode = obj.get("auth_mode")
    kind = "chatgpt_tokens" if mode == "chatgptAuthTokens" else "chatgpt"
    return Credential(
        auth_kind=kind,
        account_id=account if isinstance(account, str) and account else None,
        access_token=tokens["access_token"],
        is_fedramp=claims.get("chatgpt_account_is_fedramp") is True,
        source="auth.json",
    )


def _jwt_claims(token: object) -> dict[str, Any]:
    """The payload of a JWT, unverified (only routing hints are read from it)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class CredentialChain:
    """The first source that knows an account wins; the default comes from the first
    source that has one."""

    def __init__(self, sources: Sequence[CredentialProvider]) -> None:
        self._sources = tuple(sources)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CredentialChain:
        from codex_analytics.runtime.env import env_str

        sources: list[CredentialProvider] = [EnvCredentials.from_env(env)]
        secrets_dir = env_str(env, "ANALYTICS_SECRETS_DIR")
        if secrets_dir is not None:
            sources.append(SecretsDirCredentials(secrets_dir))
        codex_home = env_str(env, "CODEX_HOME")
        if codex_home is not None:
            sources.append(AuthJsonCredentials(codex_home))
        return cls(sources)

    def lookup(self, account_id: str) -> Credential | None:
        for source in self._sources:
            found = source.lookup(account_id)
            if found is not None:
                return found
        return None

    def default(self) -> Credential | None:
        for source in self._sources:
            found = source.default()
            if found is not None:
                return found
        return None

    def __repr__(self) -> str:
        return f"CredentialChain({list(self._sources)!r})"
