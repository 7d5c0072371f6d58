"""The wire contract every service imports: models, codec, errors, topic names.

Imports nothing but the standard library and orjson (a test checks it), so producers in
any process can use it without pulling in Kafka, Faust or HTTP clients.
"""

from __future__ import annotations

from .codec import (
    BATCH_BODY_OVERHEAD,
    DEFAULT_MAX_FACT_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    ISOLATED_EVENT_TYPES,
    MAX_FACTS_PER_PACK,
    EventRecordParts,
    RecordItem,
    decode_event,
    decode_event_record,
    decode_fact,
    decode_fact_record,
    dumps_kept,
    encode_batch,
    encode_event,
    encode_event_record,
    encode_fact,
    encode_fact_pack,
    event_from_json,
    event_record_from_json,
    fact_from_json,
    fact_to_json,
    join_batch,
    join_fact_pack,
    loads,
    route_key,
    split_event_record,
)
from .errors import ContractError, DecodeError, DecodeReason
from .events import EVENT_MODELS, EVENT_TYPES, TrackEvent
from .facts import (
    CONNECTION_SCOPED_KINDS,
    ENVELOPE_VERSION,
    FACT_KINDS,
    PAYLOAD_TYPES,
    AuthRoute,
    FactEnvelope,
    RuntimeMetadata,
    Source,
)
from .limits import MAX_ID_CHARS, MAX_NAME_CHARS
from .records import EventRecord, Origin
from .topics import EVENTS_DLQ_TOPIC, EVENTS_PATH, EVENTS_TOPIC, FACTS_DLQ_TOPIC, FACTS_TOPIC

__all__ = [
    "BATCH_BODY_OVERHEAD",
    "CONNECTION_SCOPED_KINDS",
    "DEFAULT_MAX_FACT_BYTES",
    "DEFAULT_MAX_RECORD_BYTES",
    "ENVELOPE_VERSION",
    "EVENTS_DLQ_TOPIC",
    "EVENTS_PATH",
    "EVENTS_TOPIC",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "FACTS_DLQ_TOPIC",
    "FACTS_TOPIC",
    "FACT_KINDS",
    "ISOLATED_EVENT_TYPES",
    "MAX_FACTS_PER_PACK",
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "PAYLOAD_TYPES",
    "AuthRoute",
    "ContractError",
    "DecodeError",
    "DecodeReason",
    "EventRecord",
    "EventRecordParts",
    "FactEnvelope",
    "Origin",
    "RecordItem",
    "RuntimeMetadata",
    "Source",
    "TrackEvent",
    "decode_event",
    "decode_event_record",
    "decode_fact",
    "decode_fact_record",
    "dumps_kept",
    "encode_batch",
    "encode_event",
    "encode_event_record",
    "encode_fact",
    "encode_fact_pack",
    "event_from_json",
    "event_record_from_json",
    "fact_from_json",
    "fact_to_json",
    "join_batch",
    "join_fact_pack",
    "loads",
    "route_key",
    "split_event_record",
]
