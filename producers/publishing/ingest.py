"""The gateway's pure core: an ingest body to validated facts and counted rejections.

A body is one envelope, a JSON array of envelopes (``Content-Type: application/json``),
or JSON lines (anything else; blank lines are skipped but keep their numbers). Every
line is validated with the contract codec; a bad line is reported with its 1-based
number, the field path and the reason, and never published.

Hostile bodies cost little: :func:`body_cost` counts a body's lines (or a JSON
document's values) before anything is parsed, so a body of millions of tiny lines is
refused at the price of one ``bytes.count``; :func:`body_units` hands the lines out one
by one so the caller can validate them in bounded chunks; and :class:`IngestBatch`
keeps the first rejections only (all of them are counted), so neither the memory nor
the answer grows with the number of bad lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from codex_analytics.contract import DecodeError, DecodeReason, fact_from_json, loads
from codex_analytics.runtime.errors import PermanentError
from producers.publishing.records import MAX_RECORD_BYTES

#: Largest single envelope accepted (bytes): the one record-size limit's default, so an
#: accepted line can always be published (and the stream accepts it).
MAX_LINE_BYTES = MAX_RECORD_BYTES
#: Rejected lines an answer lists one by one; the others are counted only.
REPORTED_REJECTIONS = 100
#: JSON values (at most) a JSON-document body may hold per allowed line: an envelope
#: has about 30; the bound keeps the parsed document's memory in proportion.
JSON_VALUES_PER_LINE = 64


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
    """Valid facts (with their line numbers) and rejections: every rejection counted by
    reason, the first ``keep_rejections`` kept (``None``: all of them)."""

    #: ``(instance_id, envelope bytes)`` of the valid lines, in body order.
    facts: list[tuple[str, bytes]] = field(default_factory=list)
    #: The line number of each fact.
    lines: list[int] = field(default_factory=list)
    keep_rejections: int | None = REPORTED_REJECTIONS
    kept: list[LineResult] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return len(self.facts)

    @property
    def rejected(self) -> int:
        return self.reasons.total()

    @property
    def seen(self) -> int:
        """Lines validated (blank lines are not)."""
        return self.accepted + self.rejected

    def accept(self, number: int, instance_id: str, encoded: bytes) -> None:
        self.facts.append((instance_id, encoded))
        self.lines.append(number)

    def reject(self, result: LineResult) -> None:
        self.reasons[result.reason or "unknown"] += 1
        if self.keep_rejections is None or len(self.kept) < self.keep_rejections:
            self.kept.append(result)

    def rejections(self) -> list[LineResult]:
        """The kept rejections, in line order."""
        return sorted(self.kept, key=lambda r: r.line)


@dataclass(frozen=True, slots=True)
class BodyCost:
    """What parsing a body would take, counted without parsing it."""

    #: ``lines`` (JSON lines) or ``values`` (a JSON document's values, at most).
    unit: str
    count: int

    def over(self, max_lines: int) -> bool:
        limit = max_lines * (JSON_VALUES_PER_LINE if self.unit == "values" else 1)
        return self.count > limit


def is_json_document(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def body_cost(body: bytes, content_type: str = "") -> BodyCost:
    """Lines of a JSON-lines body (blank ones included), or an upper bound of the values
    in a JSON document (its commas and opening brackets): one C-speed pass each."""
    if is_json_document(content_type) and body.lstrip()[:1] in (b"[", b"{"):
        values = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
        return BodyCost("values", values)
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    return BodyCost("lines", lines)


#: One item of a body: ``(number, raw line, None)`` for JSON lines, ``(number, None,
#: parsed element)`` for a JSON document.
BodyUnit = tuple[int, bytes | None, Any]


class TooManyElements(PermanentError):
    """A JSON document holds more envelopes than a request may."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} array elements exceeds the limit of {limit}")
        self.count = count


def body_units(
    body: bytes, content_type: str = "", *, max_elements: int | None = None
) -> Iterator[BodyUnit]:
    """The lines of a JSON-lines body, one at a time, or the elements of a JSON document
    (one envelope or an array), for :func:`validate_unit`. A document with more than
    ``max_elements`` elements raises :class:`TooManyElements` before any is validated
    (a JSON-lines body's lines are bounded by :func:`body_cost` already)."""
    if is_json_document(content_type):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # maybe JSON lines sent as application/json: read them so
        else:
            elements = document if isinstance(document, list) else [document]
            if max_elements is not None and len(elements) > max_elements:
                raise TooManyElements(len(elements), max_elements)
            for number, element in enumerate(elements, start=1):
                yield number, None, element
            return
    start, number = 0, 0
    while start <= len(body):
        end = body.find(b"\n", start)
        if end < 0:
            end = len(body)
        number += 1
        yield number, body[start:end], None
        start = end + 1


def validate_unit(batch: IngestBatch, unit: BodyUnit, max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """Validate one item of :func:`body_units` into ``batch``."""
    number, raw, element = unit
    if raw is None:
        _accept(batch, number, element, None, max_line_bytes)
    else:
        validate_line(batch, number, raw, max_line_bytes)


def parse_ingest_body(
    body: bytes, content_type: str = "", *, max_line_bytes: int = MAX_LINE_BYTES
) -> IngestBatch:
    """The whole body at once (for callers that bounded it already)."""
    batch = IngestBatch()
    for unit in body_units(body, content_type):
        validate_unit(batch, unit, max_line_bytes)
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
        batch.reject(LineResult(number, False, err.reason.value, err.path, err.detail))
        return
    _accept(batch, number, value, line, max_line_bytes)


def _accept(batch: IngestBatch, number: int, value: Any, raw: bytes | None, max_bytes: int) -> None:
    try:
        fact = fact_from_json(value)
    except DecodeError as err:
        batch.reject(LineResult(number, False, err.reason.value, err.path, err.detail))
        return
    encoded = raw if raw is not None else orjson.dumps(value)
    if len(encoded) > max_bytes:
        too_large = DecodeError(
            DecodeReason.TOO_LARGE, "", f"{len(encoded)} bytes exceeds the limit of {max_bytes}"
        )
        batch.reject(LineResult(number, False, too_large.reason.value, "", too_large.detail))
        return
    batch.accept(number, fact.source.instance_id, encoded)
