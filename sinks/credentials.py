"""Where the sink finds the secret credential of an account (design.md §6; a PROPOSAL of ours).

Secrets never travel through Kafka: a fact names only the account, the auth kind and
the FedRAMP flag. The sink resolves the credential here, from one of three sources,
tried in order:

1. ``EnvCredentials``: one account from ``ANALYTICS_AUTH_KIND``, its secret
   (``ANALYTICS_BEARER_TOKEN``, ``ANALYTICS_AGENT_IDENTITY`` or
   ``ANALYTICS_AUTH_HEADERS``, each also as a ``_FILE`` re-read when it changes),
   ``ANALYTICS_ACCOUNT_ID`` and ``ANALYTICS_FEDRAMP``. It is also the *default*
   credential for events whose route names no account (single-tenant mode).
2. ``SecretsDirCredentials``: a directory with one file per account (the file name is
   the account id; the content is the token, or a JSON object: ``auth_kind`` and what
   that kind needs, see :func:`credential_from_json`), re-read when a file changes,
   as a mounted Kubernetes secret does.
3. ``AuthJsonCredentials``: a Codex ``auth.json`` under ``CODEX_HOME``, re-read when
   it changes. It holds one login, of the mode upstream resolves
   (``login/src/auth/manager.rs`` ``resolved_mode``): ChatGPT tokens (the account from
   ``tokens.account_id`` or the ID token's claims), an API key (``OPENAI_API_KEY``), a
   personal access token, an agent-identity record or a Bedrock key. A login that is
   not a ChatGPT one names no account of its own here, so it is also the default.

What a credential holds (Profile J, profile-j.md §6): a bearer token (a ChatGPT access
token, an API key, a personal access token), an agent's signing key
(:mod:`sinks.agent_identity`), or a map of external headers; a Bedrock login holds
nothing the sink may send with.

What a lookup can answer (issue #16): a credential; ``None`` when the source genuinely
has none for the account (no file, an API-key login), which the auth gate skips as
upstream does; or a :class:`~sinks.errors.CredentialError` when the credential is
there but cannot be used now: the file could not be read (EACCES, EIO, EMFILE during a
rotation...) or holds no token that can travel in a header. Those are retried by the
delivery step, re-read every time, and dead-lettered if they last; nothing here caches
a failure (an earlier version cached a failed read as "no token" until the file
changed, and every batch of the account was skipped and committed).

``Credential`` checks its token and account id when it is built (visible ASCII only:
a control or non-ASCII character once leaked through the HTTP client's error text, or
crashed the sink); it hides its token from ``repr`` and ``str``, and no message here
quotes a secret, not even in part.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from .agent_identity import AgentIdentityKey, AgentIdentityProblem, agent_identity_from_json
from .errors import CredentialError, InvalidCredentialError, UnreadableCredentialError

#: The auth kinds upstream counts as a ChatGPT login (delivery.md §3.2, Profile S).
CHATGPT_KINDS: frozenset[str] = frozenset({"chatgpt", "chatgpt_tokens"})
_ID_TOKEN_CLAIMS = "https://api.openai.com/auth"
#: What a token or an account id may hold to travel in a header: visible ASCII, no
#: space (RFC 9110 field-vchar without obs-text; RFC 6750's b64token is a subset).
_HEADER_SAFE = re.compile(r"[!-~]+")
#: An external header's name (RFC 9110 token) and value (visible ASCII, inner blanks).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[!-~]+(?:[ \t]+[!-~]+)*")
#: Headers an external header map may not set: the sink's own and the message framing.
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "idempotency-key",
    }
)


class CredentialProblem(ValueError):
    """Why a secret cannot be a credential, in words that never quote it."""


def header_value_problem(value: str) -> str | None:
    """What keeps ``value`` out of an HTTP header (without quoting it), or ``None``."""
    if _HEADER_SAFE.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if not value.isascii():
        return "holds a non-ASCII character"
    return "holds a control character or a space"


def _header_problem(name: str, value: str) -> str | None:
    """What keeps an external header out of a request (never quoting its value)."""
    if not _HEADER_NAME.fullmatch(name):
        return "has a header name that is not an HTTP token"
    if name.lower() in _RESERVED_HEADERS:
        return f"sets {name.lower()}, which the sink sets itself"
    if not _HEADER_VALUE.fullmatch(value):
        return f"has a value of {name} that is not visible ASCII"
    return None


@dataclass(frozen=True, slots=True)
class Credential:
    """What the sink needs to send one account's events. Every material field is
    secret: ``access_token`` (a ChatGPT token, an API key or a personal access token),
    ``agent_identity`` (a signing key) and ``headers`` (external header values).

    Built only from values that can go in a header as they are: otherwise
    :class:`CredentialProblem`, whose text names the field, never its value. Which
    material authenticates a Profile J request: its own kind's, else what it holds
    (:func:`sinks.auth.request_headers`); a Bedrock login holds none."""

    auth_kind: str
    account_id: str | None
    access_token: str | None = field(default=None, repr=False)
    is_fedramp: bool = False
    source: str = ""
    agent_identity: AgentIdentityKey | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.access_token is not None:
            problem = header_value_problem(self.access_token)
            if problem is not None:
                what = {"api_key": "API key", "personal_access_token": "personal access token"}
                raise CredentialProblem(f"its {what.get(self.auth_kind, 'access token')} {problem}")
        if self.account_id is not None:
            problem = header_value_problem(self.account_id)
            if problem is not None:
                raise CredentialProblem(f"its account id {problem}")
        for name, value in self.headers:
            problem = _header_problem(name, value)
            if problem is not None:
                raise CredentialProblem(f"its headers map {problem}")

    @property
    def can_authenticate(self) -> bool:
        """Whether it holds anything to authenticate a request with."""
        return bool(self.headers) or self.agent_identity is not None or bool(self.access_token)

    def __str__(self) -> str:
        return repr(self)


class CredentialProvider(Protocol):
    def lookup(self, account_id: str) -> Credential | None:
        """The credential of ``account_id``, or ``None`` when this source has none.
        Raises ``CredentialError`` when it has one that cannot be used now."""

    def default(self) -> Credential | None:
        """The credential for events whose route names no account (single-tenant)."""


class _FailingSince:
    """When each failing source (a file, the secrets directory) began to fail, until it
    works again: the start of an outage, shared by every batch that meets it. Not a
    cache: the source is tried again every time. Keys are files that exist and the
    directories that hold them, never a name an event made up, and they are capped all
    the same (past the cap an outage starts with each batch: slower, never unbounded)."""

    MAX_KEYS = 4096

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def failing(self, key: str) -> float:
        since = self._since.get(key)
        if since is None:
            since = time.monotonic()
            if len(self._since) < self.MAX_KEYS:
                self._since[key] = since
        return since

    def working(self, key: str) -> None:
        self._since.pop(key, None)


class EnvCredentials:
    """A single account from the environment: the single-tenant default. A secret that
    cannot be sent is that account's configuration error: its lookups raise
    ``InvalidCredentialError`` (the process keeps serving the others). A secret given
    as a ``_FILE`` is read again whenever the file changes, like a secret file."""

    def __init__(
        self,
        credential: Credential | None,
        *,
        problem: str | None = None,
        secret_file: tuple[Path, Callable[[bytes], Credential]] | None = None,
        account_id: str | None = None,
        names: str = "ANALYTICS_BEARER_TOKEN / ANALYTICS_ACCOUNT_ID",
    ) -> None:
        self._credential = credential
        self._problem = problem
        self._secret_file = secret_file
        self._cache = _FileCache()
        self._account_id = account_id if credential is None else credential.account_id
        self._names = names
        self._since = time.monotonic()
        self._file_account: str | None = None
        if secret_file is not None and account_id is None:
            with contextlib.suppress(CredentialError):
                self._current()  # learn the account the file names, if it does

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvCredentials:
        """The single account the environment describes, or none. Variables that do not
        fit together (a kind without its secret, a secret of another kind, a secret and
        its ``_FILE``) are a ``ConfigError`` at start; a secret that cannot be sent is
        the account's error at lookup (as a bad ``ANALYTICS_BEARER_TOKEN`` always was)."""
        from codex_analytics.runtime.errors import ConfigError

        from .settings import (
            ACCOUNT_ID,
            AGENT_IDENTITY,
            AGENT_IDENTITY_FILE,
            AUTH_HEADERS,
            AUTH_HEADERS_FILE,
            AUTH_KIND,
            BEARER_TOKEN,
            BEARER_TOKEN_FILE,
            FEDRAMP,
        )

        pairs = {
            "token": (BEARER_TOKEN, BEARER_TOKEN_FILE),
            "agent_identity": (AGENT_IDENTITY, AGENT_IDENTITY_FILE),
            "headers": (AUTH_HEADERS, AUTH_HEADERS_FILE),
        }
        given: dict[str, tuple[str, str | None, str | None]] = {}
        for material, (value_setting, file_setting) in pairs.items():
            value, path = value_setting.read(env), file_setting.read(env)
            if value is not None and path is not None:
                raise ConfigError(
                    f"set one of {value_setting.name} and {file_setting.name}, not both"
                )
            if value is not None or path is not None:
                name = value_setting.name if path is None else file_setting.name
                given[material] = (name, value, path)
        kind = AUTH_KIND.read(env)
        if kind is None:
            if not given:
                return cls(None)
            kind = next((m for m in ("agent_identity", "headers") if m in given), "chatgpt")
        needed = {"agent_identity": "agent_identity", "headers": "headers"}.get(kind, "token")
        if kind == "bedrock_api_key":
            needed = ""
        for material, (name, _, _) in given.items():
            if material != needed:
                raise ConfigError(f"{name} is set but {AUTH_KIND.name}={kind} does not use it")
        if needed and needed not in given:
            value_setting, file_setting = pairs[needed]
            raise ConfigError(
                f"{AUTH_KIND.name}={kind} needs {value_setting.name} or {file_setting.name}"
            )
        account_id = ACCOUNT_ID.read(env)
        is_fedramp = FEDRAMP.read(env)

        def build(raw: bytes) -> Credential:
            return _env_credential(kind, needed, raw, account_id, is_fedramp)

        if not needed:
            return cls(build(b""))
        name, value, path = given[needed]
        names = f"{name} / {ACCOUNT_ID.name}"
        if path is not None:
            return cls(None, secret_file=(Path(path), build), account_id=account_id, names=names)
        assert value is not None
        try:
            return cls(build(value.encode()), names=names)
        except CredentialProblem as problem:
            return cls(None, problem=str(problem), account_id=account_id, names=names)

    def _invalid(self) -> InvalidCredentialError:
        return InvalidCredentialError(
            f"account {self._account_id or '(single-tenant default)'}: the credential in "
            f"{self._names} cannot be sent: {self._problem}",
            since=self._since,
        )

    def _current(self) -> Credential | None:
        if self._problem is not None:
            raise self._invalid()
        if self._secret_file is None:
            return self._credential
        path, parse = self._secret_file
        label = self._account_id or self._file_account or "(single-tenant default)"
        found = self._cache.get(path, parse, account=label)
        if found is None:  # the file went away: an outage, not "no credential"
            raise self._cache.unreadable(
                str(path),
                f"account {label}: secret file {path}",
                FileNotFoundError(errno.ENOENT, "No such file"),
            )
        self._file_account = found.account_id
        return found

    def lookup(self, account_id: str) -> Credential | None:
        # Only the configured account (or, for a secret file that names it, as an agent
        # identity record does, the account the file named when last read) is asked
        # about: a broken secret must not hold up other accounts' lookups.
        account = self._account_id or self._file_account
        if account is None or account_id != account:
            return None
        cred = self._current()
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        return self._current()

    @property
    def configured(self) -> bool:
        """Whether a single account is configured (valid or not)."""
        return (
            self._credential is not None
            or self._problem is not None
            or self._secret_file is not None
        )

    def __repr__(self) -> str:
        if self._problem is not None:
            return "EnvCredentials(configured=True, invalid=True)"
        if self._secret_file is not None:
            return f"EnvCredentials(configured=True, file={str(self._secret_file[0])!r})"
        return f"EnvCredentials(configured={self.configured})"


def _env_credential(
    kind: str, material: str, raw: bytes, account_id: str | None, is_fedramp: bool
) -> Credential:
    """The single account's credential from its secret's text (a variable or a file)."""
    if material == "token":
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CredentialProblem("it is not UTF-8 text") from None
        return Credential(kind, account_id, token, is_fedramp=is_fedramp, source="environment")
    if not material:
        return Credential(kind, account_id, is_fedramp=is_fedramp, source="environment")
    obj = _json(raw)
    if material == "agent_identity":
        try:
            agent = agent_identity_from_json(obj)
        except AgentIdentityProblem as problem:
            raise CredentialProblem(str(problem)) from None
        return Credential(
            kind,
            account_id or agent.account_id,
            is_fedramp=is_fedramp or agent.is_fedramp,
            source="environment",
            agent_identity=agent,
        )
    return Credential(
        kind,
        account_id,
        is_fedramp=is_fedramp,
        source="environment",
        headers=_headers_from_json(obj),
    )


#: ``stat`` errors that mean the file is not there (a name too long for a file cannot
#: be one either): no credential, as upstream.
_NO_SUCH_FILE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})


class _FileCache:
    """Secret files, read and parsed again when their (mtime, ctime, size, inode)
    changes; only a file that parsed is kept. ``os.stat`` follows symlinks, so the
    atomic ``..data`` swap of a Kubernetes secret volume is seen as a change.

    A missing file is ``None`` (no credential); a file that cannot be read raises
    ``UnreadableCredentialError`` and one that holds no usable token
    ``InvalidCredentialError``, every time until it is fixed: no failure is cached.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int, int, int], Credential | None]] = {}
        self.failing = _FailingSince()

    def get(
        self,
        path: Path,
        parse: Callable[[bytes], Credential | None],
        *,
        account: str,
        directory: str | None = None,
    ) -> Credential | None:
        """The credential in ``path`` for ``account`` (for messages). ``directory`` names
        the folder when its absence is an outage rather than "no credential"."""
        key = str(path)
        try:
            st = os.stat(path)
        except OSError as err:
            if err.errno not in _NO_SUCH_FILE:
                # The directory failed us (search permission, I/O), whatever the name:
                # its outage, so that names the events make up add no key.
                raise self.unreadable(
                    str(path.parent), f"account {account}: secret file {path}", err
                ) from None
            searched = os.path.isdir(path.parent)
            if directory is not None and not searched:
                raise self.unreadable(
                    str(path.parent),
                    f"account {account}: {directory} {path.parent}",
                    FileNotFoundError(errno.ENOENT, "missing or not a directory"),
                ) from None
            self._forget(path, parent_searched=searched)
            return None
        if not stat.S_ISREG(st.st_mode):
            self._forget(path, parent_searched=True)  # a directory or a device: no token
            return None
        stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            self._works(path)
            return hit[1]
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise self.unreadable(key, f"account {account}: secret file {path}", err) from None
        try:
            credential = parse(raw)
        except ValueError as err:
            # Our parsers raise CredentialProblem, whose words never quote the secret;
            # any other ValueError's text might, so only its type is kept.
            why = str(err) if isinstance(err, CredentialProblem) else type(err).__name__
            raise InvalidCredentialError(
                f"account {account}: secret file {path} holds no token that can be sent: {why}",
                since=self.failing.failing(key),
            ) from None
        with self._lock:
            self._entries[key] = (stamp, credential)
        self._works(path)
        return credential

    def unreadable(self, key: str, what: str, err: OSError) -> UnreadableCredentialError:
        return UnreadableCredentialError(
            f"{what} could not be read ({type(err).__name__}: {err.strerror or 'error'})",
            since=self.failing.failing(key),
        )

    def _forget(self, path: Path, *, parent_searched: bool) -> None:
        """``path`` holds no file. Its outage is over, and its directory's too when the
        directory was there to search (a missing one is the caller's to judge)."""
        with self._lock:
            self._entries.pop(str(path), None)
        self.failing.working(str(path))
        if parent_searched:
            self.failing.working(str(path.parent))

    def _works(self, path: Path) -> None:
        """``path`` was read: its outage and its directory's, if any, are over, and the
        next one starts its own clock."""
        self.failing.working(str(path))
        self.failing.working(str(path.parent))


class SecretsDirCredentials:
    """One file per account in a directory; re-read when a file changes.

    A missing file means no credential, but a missing secrets directory does not: it is
    a mount gone wrong, so every lookup raises ``UnreadableCredentialError`` until it is
    back (an unmounted secret must not turn every account's events into skips)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._cache = _FileCache()

    def lookup(self, account_id: str) -> Credential | None:
        # An account id is a file name here: refuse anything that could leave the dir,
        # and hidden names (a Kubernetes secret volume keeps its ``..data`` there).
        if not account_id or "/" in account_id or "\0" in account_id or account_id[0] == ".":
            return None
        return self._cache.get(
            self._dir / account_id,
            lambda raw: _parse_secret_file(raw, account_id),
            account=account_id,
            directory="secrets directory",
        )

    def default(self) -> Credential | None:
        return None

    def __repr__(self) -> str:
        return f"SecretsDirCredentials({str(self._dir)!r})"


@dataclass(frozen=True, slots=True)
class SecretsSurvey:
    """What a secrets directory holds, as a configuration check reports it: how many
    accounts have a usable token, and why the others cannot be used (never a token)."""

    usable: int
    problems: tuple[str, ...]


def survey_secrets_dir(directory: str | os.PathLike[str]) -> SecretsSurvey:
    """Read every account file of ``directory`` the way the sink does (hidden names and
    subdirectories are no accounts); an unreadable directory is one problem."""
    source = SecretsDirCredentials(directory)
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        return SecretsSurvey(0, (f"{directory} cannot be listed ({err.strerror or err})",))
    usable = 0
    problems: list[str] = []
    for name in names:
        try:
            found = source.lookup(name)
        except (InvalidCredentialError, UnreadableCredentialError) as err:
            problems.append(str(err))
            continue
        usable += found is not None
    return SecretsSurvey(usable, tuple(problems))


def _parse_secret_file(raw: bytes, account_id: str) -> Credential:
    text = raw.strip()
    if not text:
        raise CredentialProblem("it is empty")
    if text.startswith(b"{"):
        return credential_from_json(_json(text), account_id, source="secrets-dir")
    try:
        token = text.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialProblem("it is not UTF-8 text") from None
    return Credential(
        auth_kind="chatgpt", account_id=account_id, access_token=token, source="secrets-dir"
    )


#: The key of a JSON credential that holds each bearer kind's token (``access_token``
#: is accepted for every kind, as before Profile J).
_TOKEN_KEYS = {"api_key": "api_key", "personal_access_token": "personal_access_token"}


def credential_from_json(obj: Any, account_id: str | None, *, source: str) -> Credential:
    """A credential from its JSON form (a secret file; PROPOSAL): ``auth_kind`` and the
    material that kind needs, of which ``access_token`` serves every bearer kind:

    * ``chatgpt`` / ``chatgpt_tokens``: ``access_token``;
    * ``api_key``: ``api_key`` (or ``access_token``);
    * ``personal_access_token``: ``personal_access_token`` (or ``access_token``);
    * ``agent_identity``: ``agent_identity``, upstream's record (``agent_runtime_id``,
      ``agent_private_key``, ``task_id``, optionally ``chatgpt_account_is_fedramp``);
    * ``headers``: ``headers``, an object of header names to values, sent as given;
    * ``bedrock_api_key``: nothing (a Bedrock login sends nothing).

    Without ``auth_kind`` the kind is the one whose material is there, as upstream
    resolves an ``auth.json`` (``personal_access_token``, ``agent_identity``,
    ``headers``, ``api_key``, else ``chatgpt``). ``is_fedramp`` is optional."""
    if not isinstance(obj, dict):
        raise CredentialProblem("its JSON is not an object")
    kind = obj.get("auth_kind") or _kind_of(obj)
    if not isinstance(kind, str):
        raise CredentialProblem("its auth_kind is not a string")
    token = obj.get(_TOKEN_KEYS.get(kind, "access_token"))
    if token is None:
        token = obj.get("access_token")
    if token is not None and not isinstance(token, str):
        raise CredentialProblem("its token is not a string")
    agent: AgentIdentityKey | None = None
    if obj.get("agent_identity") is not None:
        try:
            agent = agent_identity_from_json(obj["agent_identity"])
        except AgentIdentityProblem as problem:
            raise CredentialProblem(str(problem)) from None
    headers = _headers_from_json(obj.get("headers"))
    if token is None and agent is None and not headers and kind != "bedrock_api_key":
        raise CredentialProblem(f"its JSON has no access_token string (nor what {kind} needs)")
    return Credential(
        auth_kind=kind,
        account_id=account_id,
        access_token=token,
        is_fedramp=obj.get("is_fedramp") is True or (agent is not None and agent.is_fedramp),
        source=source,
        agent_identity=agent,
        headers=headers,
    )


def _kind_of(obj: dict[str, Any]) -> str:
    for key in ("personal_access_token", "agent_identity", "headers", "api_key"):
        if obj.get(key) is not None:
            return key
    return "chatgpt"


def _headers_from_json(obj: Any) -> tuple[tuple[str, str], ...]:
    if obj is None:
        return ()
    if not isinstance(obj, dict) or not obj:
        raise CredentialProblem("its headers are not a non-empty JSON object")
    if not all(isinstance(value, str) for value in obj.values()):
        raise CredentialProblem("its headers map has a value that is not a string")
    return tuple(obj.items())


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CredentialProblem("it is not valid JSON") from None


class AuthJsonCredentials:
    """The login in a Codex ``$CODEX_HOME/auth.json``; re-read when it changes.

    A ChatGPT login is found by its account only (as before Profile J). Any other login
    names no account of its own here (an API key has none; the sink does not ask the
    backend whose a personal access token is), so it is also the default credential:
    the one for routes that name no account, whose kind it then supplies."""

    def __init__(self, codex_home: str | os.PathLike[str]) -> None:
        self._path = Path(codex_home) / "auth.json"
        self._cache = _FileCache()

    def lookup(self, account_id: str) -> Credential | None:
        # One login for whichever account it is: while the file cannot be read or
        # parsed, no account can be told absent from it.
        cred = self._cache.get(self._path, _parse_auth_json, account=account_id)
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        cred = self._cache.get(self._path, _parse_auth_json, account="(default)")
        return cred if cred is not None and cred.auth_kind not in CHATGPT_KINDS else None

    def __repr__(self) -> str:
        return f"AuthJsonCredentials({str(self._path)!r})"


#: ``auth_mode`` as upstream's ``AuthMode`` serializes it -> our auth kind.
_AUTH_MODES = {
    "apikey": "api_key",
    "chatgpt": "chatgpt",
    "chatgptAuthTokens": "chatgpt_tokens",
    "headers": "headers",
    "agentIdentity": "agent_identity",
    "personalAccessToken": "personal_access_token",
    "bedrockApiKey": "bedrock_api_key",
}


def _parse_auth_json(raw: bytes) -> Credential | None:
    obj = _json(raw)
    if not isinstance(obj, dict):
        raise CredentialProblem("it is not a JSON object")
    kind = _auth_json_kind(obj)
    if kind == "api_key":
        key = obj.get("OPENAI_API_KEY")
        if not isinstance(key, str):
            raise CredentialProblem("its API-key login has no OPENAI_API_KEY string")
        return Credential("api_key", None, key, source="auth.json")
    if kind == "personal_access_token":
        pat = obj.get("personal_access_token")
        if not isinstance(pat, str):
            raise CredentialProblem("its personal_access_token is not a string")
        return Credential("personal_access_token", None, pat, source="auth.json")
    if kind == "bedrock_api_key":
        return Credential("bedrock_api_key", None, source="auth.json")
    if kind == "agent_identity":
        try:
            agent = agent_identity_from_json(obj.get("agent_identity"))
        except AgentIdentityProblem as problem:
            # A JWT (upstream's other form) carries no task: the sink cannot use it.
            raise CredentialProblem(str(problem)) from None
        return Credential(
            "agent_identity",
            agent.account_id,
            is_fedramp=agent.is_fedramp,
            source="auth.json",
            agent_identity=agent,
        )
    if kind == "headers":
        raise CredentialProblem("its auth_mode is headers, which upstream never stores there")
    tokens = obj.get("tokens")
    if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        return None  # a ChatGPT login without tokens (logged out): nothing to resolve
    claims = _jwt_claims(tokens.get("id_token")).get(_ID_TOKEN_CLAIMS, {})
    if not isinstance(claims, dict):
        claims = {}
    account = tokens.get("account_id") or claims.get("chatgpt_account_id")
    return Credential(
        auth_kind=kind,
        account_id=account if isinstance(account, str) and account else None,
        access_token=tokens["access_token"],
        is_fedramp=claims.get("chatgpt_account_is_fedramp") is True,
        source="auth.json",
    )


def _auth_json_kind(obj: dict[str, Any]) -> str:
    """The login's kind as upstream resolves it (``AuthDotJson::resolved_mode``): the
    ``auth_mode`` when set, else by the material present, else ChatGPT. Before Profile
    J an ``OPENAI_API_KEY`` next to ChatGPT tokens read as the ChatGPT login; it still
    does when the tokens are there."""
    mode = obj.get("auth_mode")
    if isinstance(mode, str) and mode in _AUTH_MODES:
        return _AUTH_MODES[mode]
    if obj.get("personal_access_token") is not None:
        return "personal_access_token"
    if obj.get("bedrock_api_key") is not None:
        return "bedrock_api_key"
    tokens = obj.get("tokens")
    has_tokens = isinstance(tokens, dict) and isinstance(tokens.get("access_token"), str)
    if obj.get("OPENAI_API_KEY") is not None and not has_tokens:
        return "api_key"
    return "chatgpt"


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
    source that has one. A source that cannot tell (its file unreadable or invalid)
    raises, rather than let a later source or the gate answer in its place."""

    def __init__(self, sources: Sequence[CredentialProvider]) -> None:
        self._sources = tuple(sources)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CredentialChain:
        """The sources the environment names. A secrets directory or ``CODEX_HOME`` that
        is not there at start is a :class:`ConfigError` (a typo or a missing mount: the
        service must not start and skip every event); one that goes away later is an
        outage, retried (see :class:`SecretsDirCredentials`)."""
        from .settings import CODEX_HOME, SECRETS_DIR

        sources: list[CredentialProvider] = [EnvCredentials.from_env(env)]
        secrets_dir = SECRETS_DIR.read(env)
        if secrets_dir is not None:
            sources.append(SecretsDirCredentials(secrets_dir))
        codex_home = CODEX_HOME.read(env)
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

    @property
    def sources(self) -> list[str]:
        """The configured sources, described (never a token): for the start banner."""
        return [
            repr(source)
            for source in self._sources
            if not isinstance(source, EnvCredentials) or source.configured
        ]

    def __repr__(self) -> str:
        return f"CredentialChain({list(self._sources)!r})"
