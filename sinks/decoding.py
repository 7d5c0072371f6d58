"""From an events-topic record to a ``SinkRecord``: the only per-record work besides
batching, so it is kept lean (the event's bytes are sliced out, not re-encoded)."""

from __future__ import annotations

import orjson

from codex_analytics.contract import DecodeError, split_event_record

from .batching import SinkRecord

#: A record this large cannot be an event record we produced: dead-letter it unread.
_MAX_RECORD_BYTES = 16 * 1024 * 1024


#: Batch keys by route: a sink sees few distinct routes, over and over.
_route_keys: dict[tuple[str | None, str | None, bool], bytes] = {}


def to_sink_record(
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    *,
    validate_events: bool = False,
) -> SinkRecord:
    """Decode one events-topic record; a record that does not decode carries its error."""
    raw = value or b""
    record = SinkRecord(offset=offset, timestamp_ms=timestamp_ms, raw=raw, key=key)
    try:
        parts = split_event_record(raw, validate_event=validate_events, max_bytes=_MAX_RECORD_BYTES)
    except DecodeError as err:
        record.error = err
        return record
    record.route = parts.route
    # Batches group by the whole route: the Kafka key (account, FedRAMP) decides the
    # partition, and the auth kind, which the gate reads, must be the same in a batch.
    route = parts.route
    fields = (route.kind, route.account_id, route.is_fedramp)
    route_key = _route_keys.get(fields)
    if route_key is None:
        if len(_route_keys) >= 4096:
            _route_keys.clear()
        route_key = _route_keys[fields] = orjson.dumps(route)
    record.route_key = route_key
    record.origin = parts.origin
    record.event_type = parts.event_type
    record.event_json = parts.event_json
    return record
