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

from .errors import InvalidCredentialError, UnreadableCredentialError

#: The auth kinds upstream counts as a ChatGPT login (delivery.md §3.2, Profile S).
CHATGPT_KINDS: frozenset[str] = frozenset({"chatgpt", "chatgpt_tokens"})
_ID_TOKEN_CLAIMS = "https://api.openai.com/auth"
#: What a token or an account id may hold to travel in a header: visible ASCII, no
#: space (RFC 9110 field-vchar without obs-text; RFC 6750's b64token is a subset).
_HEADER_SAFE = re.compile(r"[!-~]+")


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


@dataclass(frozen=True, slots=True)
class Credential:
    """What the sink needs to send one account's events. ``access_token`` is secret.

    Built only from values that can go in a header as they are: otherwise
    :class:`CredentialProblem`, whose text names the field, never its value."""

    auth_kind: str
    account_id: str | None
    access_token: str = field(repr=False)
    is_fedramp: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        problem = header_value_problem(self.access_token)
        if problem is not None:
            raise CredentialProblem(f"its access token {problem}")
        if self.account_id is not None:
            problem = header_value_problem(self.account_id)
            if problem is not None:
                raise CredentialProblem(f"its account id {problem}")

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
    """A single account from the environment: the single-tenant default. A token or an
    account id that cannot go in a header is that account's configuration error: its
    lookups raise ``InvalidCredentialError`` (the process keeps serving the others)."""

    def __init__(self, credential: Credential | None, *, problem: str | None = None) -> None:
        self._credential = credential
        self._problem = problem
        self._account_id: str | None = None
        self._since = time.monotonic()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvCredentials:
        from codex_analytics.runtime.env import env_bool, env_str

        token = env_str(env, "ANALYTICS_BEARER_TOKEN")
        if token is None:
            return cls(None)
        account_id = env_str(env, "ANALYTICS_ACCOUNT_ID")
        try:
            credential = Credential(
                auth_kind="chatgpt",
                account_id=account_id,
                access_token=token,
                is_fedramp=env_bool(env, "ANALYTICS_FEDRAMP"),
                source="environment",
            )
        except CredentialProblem as problem:
            invalid = cls(None, problem=str(problem))
            invalid._account_id = account_id
            return invalid
        return cls(credential)

    def _invalid(self) -> InvalidCredentialError:
        return InvalidCredentialError(
            f"account {self._account_id or '(single-tenant default)'}: the credential in "
            f"ANALYTICS_BEARER_TOKEN / ANALYTICS_ACCOUNT_ID cannot be sent: {self._problem}",
            since=self._since,
        )

    def lookup(self, account_id: str) -> Credential | None:
        if self._problem is not None and account_id == self._account_id:
            raise self._invalid()
        cred = self._credential
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        if self._problem is not None:
            raise self._invalid()
        return self._credential

    @property
    def configured(self) -> bool:
        """Whether ``ANALYTICS_BEARER_TOKEN`` was set (valid or not)."""
        return self._credential is not None or self._problem is not None

    def __repr__(self) -> str:
        if self._problem is not None:
            return "EnvCredentials(configured=True, invalid=True)"
        return f"EnvCredentials(configured={self.configured})"


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
        obj = _json(text)
        token = obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str):
            raise CredentialProblem("its JSON has no access_token string")
        kind = obj.get("auth_kind") or "chatgpt"
        return Credential(
            auth_kind=str(kind),
            account_id=account_id,
            access_token=token,
            is_fedramp=obj.get("is_fedramp") is True,
            source="secrets-dir",
        )
    try:
        token = text.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialProblem("it is not UTF-8 text") from None
    return Credential(
        auth_kind="chatgpt", account_id=account_id, access_token=token, source="secrets-dir"
    )


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CredentialProblem("it is not valid JSON") from None


class AuthJsonCredentials:
    """The login in a Codex ``$CODEX_HOME/auth.json``; re-read when it changes."""

    def __init__(self, codex_home: str | os.PathLike[str]) -> None:
        self._path = Path(codex_home) / "auth.json"
        self._cache = _FileCache()

    def lookup(self, account_id: str) -> Credential | None:
        # One login for whichever account it is: while the file cannot be read or
        # parsed, no account can be told absent from it.
        cred = self._cache.get(self._path, _parse_auth_json, account=account_id)
        return cred if cred is not None and cred.account_id == account_id else None

    def default(self) -> Credential | None:
        return None

    def __repr__(self) -> str:
        return f"AuthJsonCredentials({str(self._path)!r})"


def _parse_auth_json(raw: bytes) -> Credential | None:
    obj = _json(raw)
    if not isinstance(obj, dict):
        raise CredentialProblem("it is not a JSON object")
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
