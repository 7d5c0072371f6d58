"""From an events-topic record to a ``SinkRecord``: the only per-record work besides
batching, so it is kept lean (the event's bytes are sliced out, not re-encoded, and no
object is made per record but the ``SinkRecord`` and its origin).

The slice is checked to be one JSON object of its ``event_type`` before it may join a
batch: a body is the events' bytes joined, so one event that is not JSON would make the
whole body unreadable, and every batchmate would be refused with it (HTTP) or lost in an
invalid capture line. That check is the one parse of the event's bytes (one
``orjson.loads``, about 1.5 µs of the 800-byte events); the record's route is looked up
by its bytes and its origin, a few dozen bytes, is the only other part parsed."""

from __future__ import annotations

import orjson

from codex_analytics.contract import (
    AuthRoute,
    DecodeError,
    DecodeReason,
    split_compact_event_record,
    split_event_record,
)

from .batching import SinkRecord

#: A record this large cannot be an event record we produced: dead-letter it unread.
_MAX_RECORD_BYTES = 16 * 1024 * 1024


#: Batch keys by route object: the contract's decoder shares one route object among the
#: records of one route, so a sink looks a key up by the object's id; the entry holds
#: the object, so that no other object can take its id while the entry is there.
_route_keys: dict[int, tuple[AuthRoute, bytes]] = {}
#: Batch keys by route fields, for routes decoded one record at a time (not compact).
_route_keys_by_fields: dict[tuple[str | None, str | None, bool], bytes] = {}


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
    compact = (
        split_compact_event_record(raw)
        if not validate_events and len(raw) <= _MAX_RECORD_BYTES
        else None
    )
    try:
        if compact is not None:
            route, origin, event_type, event_json = compact
        else:
            parts = split_event_record(
                raw, validate_event=validate_events, max_bytes=_MAX_RECORD_BYTES
            )
            route, origin, event_type, event_json = (
                parts.route,
                parts.origin,
                parts.event_type,
                parts.event_json,
            )
        # Validated events were re-encoded from their model; the others are checked.
        error = None if validate_events else _not_an_event(event_json, event_type)
    except DecodeError as err:
        error = err
    if error is not None:
        return SinkRecord(offset, timestamp_ms, raw, key, error=error)
    return SinkRecord(
        offset,
        timestamp_ms,
        raw,
        key,
        route,
        _route_key(route, shared=compact is not None),
        origin,
        event_type,
        event_json,
    )


def _route_key(route: AuthRoute, *, shared: bool) -> bytes:
    """The batch key of ``route``: batches group by the whole route (the Kafka key,
    account and FedRAMP, decides the partition, and the auth kind, which the gate
    reads, must be the same in a batch). ``shared``: a route object of the contract's
    cache, looked up by identity."""
    if shared:
        entry = _route_keys.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
    fields = (route.kind, route.account_id, route.is_fedramp)
    route_key = _route_keys_by_fields.get(fields)
    if route_key is None:
        if len(_route_keys_by_fields) >= 4096:
            _route_keys_by_fields.clear()
        route_key = _route_keys_by_fields[fields] = orjson.dumps(route)
    if shared:
        if len(_route_keys) >= 4096:
            _route_keys.clear()
        _route_keys[id(route)] = (route, route_key)
    return route_key


def _not_an_event(event_json: bytes, event_type: str) -> DecodeError | None:
    """Why the sliced-out event bytes cannot travel in a body, or None when they can."""
    try:
        event = orjson.loads(event_json)
    except orjson.JSONDecodeError as err:
        return DecodeError(DecodeReason.NOT_JSON, "event", f"the event is not JSON: {err}")
    if type(event) is not dict or event.get("event_type") != event_type:
        return DecodeError(DecodeReason.WRONG_TYPE, "event", "the event is not one JSON object")
    return None
