"""A decoded state holds each repeated string once (what the processor's cache holds)."""

from __future__ import annotations

import pytest

from streams.reducer import InstanceState

from .test_reducer_state_packing import INSIDE, STORED


@pytest.mark.parametrize("saved", [STORED, INSIDE], ids=["format 6", "format 5"])
def test_a_decoded_state_shares_its_repeated_strings(saved: bytes) -> None:
    state = InstanceState.from_bytes(saved)
    plain = InstanceState.from_bytes(InstanceState.from_bytes(saved).to_bytes())  # format 3
    for decoded in (state, plain):
        (thread_id,) = decoded.threads
        ((turn_id, turn),) = decoded.turns.items()
        ((dedupe_turn_id, use, _),) = decoded.dedupe
        assert turn.thread_id is thread_id
        assert dedupe_turn_id is turn_id
        assert use is "app"  # noqa: F632 (interned: the very object)
    (connection,) = state.connections.values()
    (other,) = plain.connections.values()
    assert connection.client.product_client_id is other.client.product_client_id
    assert connection.runtime.runtime_os is other.runtime.runtime_os
    assert state.turns[turn_id].resolved_config is not None
    assert plain.turns[turn_id].resolved_config is not None
    assert state.turns[turn_id].resolved_config[2] is plain.turns[turn_id].resolved_config[2]
