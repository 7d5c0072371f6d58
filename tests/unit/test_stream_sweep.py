"""The idle sweep's pure part: stamps on stored states and the choice of what to delete."""

from __future__ import annotations

import pytest

from streams.settings import HOUR_MS, StreamSettings
from streams.sweep import STAMP_SIZE, find_idle, stamp, state_of, unstamped, written_before

STATE = b'{"last_seq":3}'


def test_a_stamp_is_a_prefix_that_state_of_takes_off() -> None:
    value = stamp(STATE, 1_700_000_000_000, 5)
    assert len(value) == STAMP_SIZE + len(STATE)
    assert state_of(value) == STATE
    assert state_of(STATE) == STATE  # written before stamps existed
    assert state_of(None) is None


def test_idle_states_of_processed_partitions_are_found_and_the_rest_kept() -> None:
    items = [
        (b"old-0", stamp(STATE, 1_000, 0), None),
        (b"new-0", stamp(STATE, 5_000, 0), None),
        (b"old-1", stamp(STATE, 1_000, 1), None),  # partition 1 is not caught up
        (b"edge-0", stamp(STATE, 4_000, 0), None),  # written at the cutoff: kept
    ]
    found = find_idle(items, cutoff_ms=4_000, partitions={0})
    assert found.idle == [(b"old-0", 0)]
    assert found.kept == 2
    assert found.unstamped == []


def test_unstamped_states_are_reported_where_the_store_knows_their_partition() -> None:
    items = [
        (b"legacy-0", STATE, 0),
        (b"legacy-?", STATE, None),  # no partition known: left alone
        (b"legacy-3", STATE, 3),  # not a processed partition
        (b"\x00end-marker", b"m", 0),  # the changelog's end marker is not a state
    ]
    found = find_idle(items, cutoff_ms=10**12, partitions={0, 1})
    assert found.unstamped == [(b"legacy-0", 0)]
    assert found.idle == []


def test_retention_defaults_to_twice_the_longer_horizon_and_never_below_it() -> None:
    settings = StreamSettings.from_env({"ANALYTICS_DEDUPE_HORIZON_HOURS": "30"})
    assert settings.state_retention_ms == 60 * HOUR_MS
    assert StreamSettings.from_env({}).state_retention_ms == 48 * HOUR_MS
    with pytest.raises(ValueError, match="ANALYTICS_STATE_RETENTION_HOURS must be at least"):
        StreamSettings.from_env({"ANALYTICS_STATE_RETENTION_HOURS": "12"})


def test_written_before_reads_the_stamp_of_a_live_value() -> None:
    assert written_before(stamp(b"{}", 10, 0), 11)
    assert not written_before(stamp(b"{}", 11, 0), 11)
    assert not written_before(None, 11), "already gone: nothing to delete"
    assert not written_before(b"{}", 11), "unstamped: stamped, not deleted"
    assert unstamped(b"{}")
    assert not unstamped(stamp(b"{}", 1, 0))
    assert not unstamped(None)
