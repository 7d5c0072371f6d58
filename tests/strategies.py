"""Hypothesis strategies producing valid wire-form facts, derived from the models' hints.

The strategy for a model is built from the same type hints the decoder is compiled
from, so the property tests follow the schema as it changes. Values the hints cannot
express (plugin keys, SubAgentSource, error_type, method-specific params) have explicit
strategies below.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st

from codex_analytics.contract import facts as F
from codex_analytics.contract.schema import Unsigned

text = st.text(max_size=12)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_object = st.dictionaries(text, json_value, max_size=3)
uuid_text = st.uuids().map(str)

subagent_source = st.one_of(
    st.sampled_from(["review", "compact", "memory_consolidation"]),
    st.fixed_dictionaries(
        {
            "thread_spawn": st.fixed_dictionaries(
                {"parent_thread_id": uuid_text, "depth": st.integers(0, 5)}
            )
        }
    ),
    st.fixed_dictionaries({"other": text}),
)
segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
plugin_key = st.builds(lambda n, m: f"{n}@{m}", segment, segment)


def _with_extras(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Upstream objects may carry keys the pipeline does not read: add some."""
    extras = st.dictionaries(
        st.text(alphabet="xyz_", min_size=1, max_size=6).map(lambda k: "x_" + k),
        json_value,
        max_size=2,
    )
    return st.builds(lambda b, e: {**e, **b}, base, extras)


def _user_input() -> st.SearchStrategy[dict[str, Any]]:
    return _with_extras(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image", "localImage", "skill", "mention"])}
        )
    )


def _thread() -> st.SearchStrategy[dict[str, Any]]:
    source = st.one_of(
        st.sampled_from(["cli", "vscode", "exec", "appServer", "unknown"]),
        st.fixed_dictionaries({"custom": text}),
        st.fixed_dictionaries({"subAgent": subagent_source}),
    )
    return _with_extras(
        st.fixed_dictionaries(
            {
                "id": text,
                "ephemeral": st.booleans(),
                "createdAt": st.integers(-(2**40), 2**40),
                "source": source,
            }
        )
    )


def _turn(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return _with_extras(st.fixed_dictionaries({"id": text, **fields}))


maybe_i64 = st.none() | st.integers(-(2**40), 2**40)

client_request = st.one_of(
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.just("turn/start"),
            "params": _with_extras(
                st.fixed_dictionaries(
                    {"threadId": text, "input": st.lists(_user_input(), max_size=3)}
                )
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.just("turn/steer"),
            "params": _with_extras(
                st.fixed_dictionaries(
                    {
                        "threadId": text,
                        "expectedTurnId": text,
                        "input": st.lists(_user_input(), max_size=3),
                    }
                )
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.sampled_from(["thread/list", "model/list"]),
            "params": json_object,
        }
    ),
)
client_response = st.one_of(
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.sampled_from(["thread/start", "thread/resume", "thread/fork"]),
            "result": _with_extras(st.fixed_dictionaries({"thread": _thread(), "model": text})),
        }
    ),
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.just("turn/start"),
            "result": _with_extras(st.fixed_dictionaries({"turn": _turn()})),
        }
    ),
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.just("turn/steer"),
            "result": _with_extras(st.fixed_dictionaries({"turnId": text})),
        }
    ),
    st.fixed_dictionaries(
        {
            "request_id": st.integers(0, 2**31) | text,
            "method": st.just("config/read"),
            "result": json_object,
        }
    ),
)
error_response = st.fixed_dictionaries(
    {
        "request_id": st.integers(0, 2**31) | text,
        "error": _with_extras(
            st.fixed_dictionaries({"code": st.integers(-40000, 0), "message": text})
        ),
        "error_type": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"turn_steer": st.sampled_from(list(get_args(F.TurnSteerRejection)))}
            ),
            st.fixed_dictionaries({"input": st.sampled_from(["empty", "too_large"])}),
        ),
    }
)
server_notification = st.one_of(
    st.fixed_dictionaries(
        {
            "method": st.just("turn/started"),
            "params": _with_extras(
                st.fixed_dictionaries({"threadId": text, "turn": _turn(startedAt=maybe_i64)})
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "method": st.just("turn/completed"),
            "params": _with_extras(
                st.fixed_dictionaries(
                    {
                        "threadId": text,
                        "turn": _turn(
                            status=st.sampled_from(list(get_args(F.TurnStatus))),
                            error=st.none()
                            | _with_extras(st.fixed_dictionaries({"codexErrorInfo": json_value})),
                            completedAt=maybe_i64,
                            durationMs=maybe_i64,
                        ),
                    }
                )
            ),
        }
    ),
    st.fixed_dictionaries({"method": st.just("item/started"), "params": json_object}),
)
initialize = st.fixed_dictionaries(
    {
        "params": _with_extras(
            st.fixed_dictionaries(
                {
                    "clientInfo": _with_extras(
                        st.fixed_dictionaries({"name": text, "version": text})
                    )
                },
                optional={
                    "capabilities": st.none()
                    | _with_extras(
                        st.fixed_dictionaries({}, optional={"experimentalApi": st.booleans()})
                    )
                },
            )
        ),
        "product_client_id": text,
        "runtime": st.fixed_dictionaries(
            dict.fromkeys(
                ("codex_rs_version", "runtime_os", "runtime_os_version", "runtime_arch"), text
            )
        ),
        "rpc_transport": st.sampled_from(list(get_args(F.RpcTransport))),
    }
)
guardian_review = _with_extras(
    st.fixed_dictionaries({"thread_id": text, "turn_id": text, "review_id": text})
)

#: Protocol payload kinds: explicit strategies. Custom kinds: derived from hints.
_EXPLICIT_PAYLOADS: dict[str, st.SearchStrategy[Any]] = {
    "initialize": initialize,
    "client_request": client_request,
    "client_response": client_response,
    "error_response": error_response,
    "server_notification": server_notification,
    "guardian_review": guardian_review,
}
_FIELD_OVERRIDES: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (F.PluginTelemetryMetadata, "plugin_id"): plugin_key,
    (F.SubagentThreadStartedPayload, "subagent_source"): subagent_source,
    (F.TurnResolvedConfigPayload, "session_source"): json_value,
}
_TYPE_OVERRIDES: dict[Any, st.SearchStrategy[Any]] = {
    F.SandboxPolicy: _with_extras(
        st.fixed_dictionaries({"type": st.sampled_from(list(get_args(F.SandboxPolicyType)))})
    ),
}


def wire_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy of valid wire values for a type hint."""
    if tp in _TYPE_OVERRIDES:
        return _TYPE_OVERRIDES[tp]
    if tp is str:
        return text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**63 - 1)
    if tp is Any:
        return json_value
    origin = get_origin(tp)
    if origin is Annotated:
        base, *markers = get_args(tp)
        return st.integers(0, 2**64 - 1) if Unsigned in markers else wire_for(base)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin is Union or origin is types.UnionType:
        return st.one_of([st.none() if a is type(None) else wire_for(a) for a in get_args(tp)])
    if origin is list:
        return st.lists(wire_for(get_args(tp)[0]), max_size=3)
    if origin is dict:
        return json_object
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        for f in dataclasses.fields(tp):
            if f.metadata.get("wire", True) is False:
                continue
            override = _FIELD_OVERRIDES.get((tp, f.name))
            strategy = override if override is not None else wire_for(hints[f.name])
            key = f.metadata.get("key", f.name)
            (optional if f.metadata.get("absent_ok") else required)[key] = strategy
        return st.fixed_dictionaries(required, optional=optional)
    raise TypeError(f"no strategy for {tp!r}")


def payload_for(kind: str) -> st.SearchStrategy[Any]:
    explicit = _EXPLICIT_PAYLOADS.get(kind)
    return explicit if explicit is not None else wire_for(F.PAYLOAD_TYPES[kind])


@st.composite
def fact_json(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    """One valid fact envelope in wire form."""
    kind = kind or draw(st.sampled_from(F.FACT_KINDS))
    auth = st.fixed_dictionaries(
        {},
        optional={
            "kind": st.none() | st.sampled_from(list(get_args(F.AuthKind))),
            "account_id": st.none() | text,
            "is_fedramp": st.booleans(),
        },
    )
    source = st.fixed_dictionaries(
        {
            "instance_id": st.text(min_size=1, max_size=12),
            "originator": text,
            "runtime": wire_for(F.RuntimeMetadata),
        },
        optional={"auth": auth},
    )
    return {
        "envelope_version": 1,
        "fact_id": draw(text),
        "source": draw(source),
        "seq": draw(st.integers(0, 2**64 - 1)),
        "observed_at_ms": draw(st.integers(0, 2**64 - 1)),
        "kind": kind,
        "connection_id": draw(st.integers(0, 2**64 - 1))
        if kind in F.CONNECTION_SCOPED_KINDS
        else None,
        "payload": draw(payload_for(kind)),
    }
