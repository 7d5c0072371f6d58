"""The guardian review event of both contracts: its own keys decoded, the flattened
guardian params passed through, and a bad head key named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from codex_analytics.contract import DecodeError, DecodeReason, event_from_json
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S, ContractId

CLIENT = {
    "product_client_id": "codex-tui",
    "client_name": "codex-tui",
    "client_version": "1.0.0",
    "rpc_transport": "stdio",
    "experimental_api_enabled": None,
}
RUNTIME = {
    "codex_rs_version": "0.1.0",
    "runtime_os": "macos",
    "runtime_os_version": "15.3.1",
    "runtime_arch": "aarch64",
}
#: contract -> the keys its guardian event puts before the flattened params.
HEADS: dict[ContractId, dict[str, Any]] = {
    CONTRACT_S: {"app_server_client": CLIENT, "runtime": RUNTIME},
    CONTRACT_J: {"session_id": "session-1", "app_server_client": CLIENT, "runtime": RUNTIME},
}


def guardian_event(contract: ContractId, **changes: Any) -> dict[str, Any]:
    params = {**HEADS[contract], "thread_id": "thread-1", "review_id": "review-1", **changes}
    return {
        "event_type": "codex_guardian_review",
        "event_params": {k: v for k, v in params.items() if v != "drop"},
    }


@pytest.mark.parametrize("contract", [CONTRACT_S, CONTRACT_J])
def test_the_head_is_decoded_and_the_params_pass_through(contract: ContractId) -> None:
    wire = guardian_event(contract, unknown_later_key=[1])
    event = event_from_json(wire, contract)
    params = event.event_params  # type: ignore[union-attr]
    assert params["runtime"].runtime_os == "macos"
    assert params["unknown_later_key"] == [1]
    assert wire["event_params"]["runtime"] == RUNTIME  # the caller's JSON is not rewritten


@pytest.mark.parametrize(
    ("contract", "changes", "reason", "path"),
    [
        (CONTRACT_S, {"runtime": "drop"}, DecodeReason.MISSING_KEY, "event_params.runtime"),
        (
            CONTRACT_S,
            {"app_server_client": {**CLIENT, "rpc_transport": "pigeon"}},
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "event_params.app_server_client.rpc_transport",
        ),
        (CONTRACT_J, {"session_id": "drop"}, DecodeReason.MISSING_KEY, "event_params.session_id"),
        (CONTRACT_J, {"session_id": 7}, DecodeReason.WRONG_TYPE, "event_params.session_id"),
        (CONTRACT_J, {"runtime": None}, DecodeReason.WRONG_TYPE, "event_params.runtime"),
    ],
)
def test_a_bad_head_key_is_named(
    contract: ContractId, changes: dict[str, Any], reason: DecodeReason, path: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        event_from_json(guardian_event(contract, **changes), contract)
    assert (caught.value.reason, caught.value.path) == (reason, path)
