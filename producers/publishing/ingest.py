"""The gateway's pure core: an ingest body to validated facts and per-line results.

A body is one envelope, a JSON array of envelopes (``Content-Type: application/json``),
or JSON lines (anything else; blank lines are skipped but keep their numbers). Every
line is validated with the contract codec; a bad line is reported with its 1-based
number, the field path and the reason, and never published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from codex_analytics.contract import DecodeError, DecodeReason, fact_from_json, loads
from producers.publishing.records import MAX_RECORD_BYTES

#: Largest single envelope accepted (bytes): the one record-size limit's default, so an
#: accepted line can always be published (and the stream accepts it).
MAX_LINE_BYTES = MAX_RECORD_BYTES


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    accepted: bool
    reason: str | None = None
    path: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.accepted:
            return {"line": self.line, "status": "accepted"}
        return {
            "line": self.line,
            "status": "rejected",
            "reason": self.reason,
            "path": self.path,
            "detail": self.detail,
        }


@dataclass(slots=True)
class IngestBatch:
    #: ``(instance_id, envelope bytes)`` of the valid lines, in body order.
    facts: list[tuple[str, bytes]] = field(default_factory=list)
    results: list[LineResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.facts)

    @property
    def rejected(self) -> int:
        return len(self.results) - len(self.facts)

    def rejections(self) -> list[LineResult]:
        return [r for r in self.results if not r.accepted]


def parse_ingest_body(
    body: bytes, content_type: str = "", *, max_line_bytes: int = MAX_LINE_BYTES
) -> IngestBatch:
    batch = IngestBatch()
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None  # maybe JSON lines sent as application/json: read them so
        else:
            elements = document if isinstance(document, list) else [document]
            for number, element in enumerate(elements, start=1):
                _accept(batch, number, element, None, max_line_bytes)
            return batch
    for number, raw in enumerate(body.split(b"\n"), start=1):
        validate_line(batch, number, raw, max_line_bytes)
    return batch


def validate_line(
    batch: IngestBatch, number: int, raw: bytes, max_line_bytes: int = MAX_LINE_BYTES
) -> None:
    """Validate one JSON line into ``batch`` (a blank line is skipped)."""
    line = raw.strip()
    if not line:
        return
    try:
        value = loads(line, max_bytes=max_line_bytes)
    except DecodeError as err:
        batch.results.append(LineResult(number, False, err.reason.value, err.path, err.detail))
        return
    _accept(batch, number, value, line, max_line_bytes)


def _accept(batch: IngestBatch, number: int, value: Any, raw: bytes | None, max_bytes: int) -> None:
    try:
        fact = fact_from_json(value)
    except DecodeError as err:
        batch.results.append(LineResult(number, False, err.reason.value, err.path, err.detail))
        return
    encoded = raw if raw is not None else orjson.dumps(value)
    if len(encoded) > max_bytes:
        too_large = DecodeError(
            DecodeReason.TOO_LARGE, "", f"{len(encoded)} bytes exceeds the limit of {max_bytes}"
        )
        batch.results.append(
            LineResult(number, False, too_large.reason.value, "", too_large.detail)
        )
        return
    batch.facts.append((fact.source.instance_id, encoded))
    batch.results.append(LineResult(number, True))
