"""Agent-identity request auth (profile-j.md §6): ``Authorization: AgentAssertion <…>``.

Upstream (``codex-rs/agent-identity`` ``authorization_header_for_agent_task``) signs a
fresh assertion for every request: an Ed25519 signature, by the agent's private key, of
``<agent_runtime_id>:<task_id>:<timestamp>`` (RFC 3339, whole seconds, UTC ``Z``); the
envelope ``{agent_runtime_id, signature, task_id, timestamp}`` (keys sorted, the
signature in standard base64) is sent as URL-safe base64 without padding. An assertion
carries its time, so one made in advance goes stale: the sink holds the key and signs
at every attempt.

The key material is upstream's ``AgentIdentityAuthRecord`` (``login/src/auth/storage.rs``):
``agent_runtime_id``, ``agent_private_key`` (base64 PKCS#8 DER) and ``task_id``, plus
the optional ``account_id`` and ``chatgpt_account_is_fedramp``. Upstream registers the
run's task with the backend when the record has none; the sink does not (it would call
the auth API with the key), so a record without a ``task_id`` is refused.

The private key never leaves :class:`AgentIdentityKey`: its repr shows the runtime id
only, and no message here quotes the key or an assertion.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_private_key

#: The ``Authorization`` scheme of an agent assertion.
SCHEME = "AgentAssertion"


class AgentIdentityProblem(ValueError):
    """Why key material cannot sign, in words that never quote it."""


@dataclass(frozen=True, slots=True)
class AgentIdentityKey:
    """A registered agent's signing material for one task. Secret: the key is hidden
    from ``repr``, and the record's fields are checked when it is built."""

    agent_runtime_id: str
    task_id: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    #: The account the record names (upstream's ``account_id``), if any.
    account_id: str | None = None
    is_fedramp: bool = False

    def authorization(self, now: datetime | None = None) -> str:
        """A freshly signed ``AgentAssertion <assertion>`` header value."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        timestamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = f"{self.agent_runtime_id}:{self.task_id}:{timestamp}".encode()
        signature = base64.b64encode(self.private_key.sign(payload)).decode()
        envelope = orjson.dumps(
            {
                "agent_runtime_id": self.agent_runtime_id,
                "signature": signature,
                "task_id": self.task_id,
                "timestamp": timestamp,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return f"{SCHEME} {base64.urlsafe_b64encode(envelope).rstrip(b'=').decode()}"


def agent_identity_from_json(obj: Any) -> AgentIdentityKey:
    """An :class:`AgentIdentityKey` from upstream's record as JSON; a problem that names
    the field at fault, never its value."""
    if not isinstance(obj, dict):
        raise AgentIdentityProblem("its agent identity is not a JSON object")
    runtime_id = _required_text(obj, "agent_runtime_id")
    task_id = obj.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise AgentIdentityProblem(
            "its agent identity has no task_id (the sink signs for a registered task; "
            "it does not register one)"
        )
    account = obj.get("account_id")
    if account is not None and not isinstance(account, str):
        raise AgentIdentityProblem("its agent identity's account_id is not a string")
    fedramp = obj.get("chatgpt_account_is_fedramp", False)
    if not isinstance(fedramp, bool):
        raise AgentIdentityProblem(
            "its agent identity's chatgpt_account_is_fedramp is not true or false"
        )
    return AgentIdentityKey(
        agent_runtime_id=runtime_id,
        task_id=task_id,
        private_key=_private_key(_required_text(obj, "agent_private_key")),
        account_id=account or None,
        is_fedramp=fedramp,
    )


def _required_text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise AgentIdentityProblem(f"its agent identity has no {key}")
    return value


def _private_key(text: str) -> Ed25519PrivateKey:
    try:
        der = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AgentIdentityProblem("its agent_private_key is not base64") from None
    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        # The library's text could describe the key: only the fact is kept.
        raise AgentIdentityProblem("its agent_private_key is not a PKCS#8 private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AgentIdentityProblem("its agent_private_key is not an Ed25519 key")
    return key
