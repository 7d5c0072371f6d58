"""Dead-letter records, the same shape on every dead-letter topic.

The value is the record exactly as it was received (so it can be produced back to its
topic once the cause is fixed) and the headers say why and where from:

``error.reason``   a short machine-readable reason (``not_json``, ``too_large``, ``http_400``...)
``error.stage``    which service gave up on it (``decode``, ``reduce``, ``deliver``...)
``error.path``     the field path of a decode error, if any, truncated to 512 bytes (a
                   path can hold the sender's own text: an unknown key)
``error.detail``   a human-readable detail, truncated to 512 bytes
``source.topic`` / ``source.partition`` / ``source.offset``   where the record came from
plus any headers the stage adds (``http.status``, ``http.body``, ``batch.idempotency_key``...).

A dead letter is a record like any other, under the one record-size limit
(:mod:`codex_analytics.runtime.record_size`): :func:`fit` cuts one that would be larger,
so that a dead letter itself can never be refused. A cut one says so:

``dead_letter.truncated``        ``true``
``dead_letter.original_bytes``   the size of the value as it was received (the value
                                 kept is its head)
``dead_letter.original_key_bytes``  the same for the key, when the key was cut too
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from codex_analytics.runtime.record_size import record_bytes

Headers = list[tuple[str, bytes]]

DETAIL_MAX_BYTES = 512
#: What :func:`fit` leaves of each header value and of the key, when it must cut.
FIELD_MAX_BYTES = 512
TRUNCATED = "dead_letter.truncated"
ORIGINAL_BYTES = "dead_letter.original_bytes"
ORIGINAL_KEY_BYTES = "dead_letter.original_key_bytes"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes
    key: bytes | None
    headers: Headers

    @property
    def reason(self) -> str:
        return self.header("error.reason")

    def header(self, name: str) -> str:
        """The text of header ``name`` ("" when it has none)."""
        return next((v.decode("utf-8", "replace") for k, v in self.headers if k == name), "")

    @property
    def size(self) -> int:
        """Its size as the record-size limit counts it."""
        return record_bytes(self.key, self.value, self.headers)


def dead_letter(
    value: bytes,
    key: bytes | None,
    *,
    reason: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    path: str = "",
    detail: str = "",
    extra: Iterable[tuple[str, bytes]] = (),
) -> DeadLetter:
    headers: Headers = [
        ("error.reason", reason.encode()),
        ("error.path", path.encode()[:DETAIL_MAX_BYTES]),
        ("error.detail", detail.encode()[:DETAIL_MAX_BYTES]),
        ("error.stage", stage.encode()),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    headers.extend(extra)
    return DeadLetter(value=value, key=key, headers=headers)


def fit(letter: DeadLetter, max_bytes: int) -> DeadLetter:
    """``letter`` itself when it fits in ``max_bytes``; else a copy cut to fit: header
    values and the key to :data:`FIELD_MAX_BYTES` each (less if even that leaves no
    room: then together they keep to a quarter of ``max_bytes``), the value to the room
    left (its head), with the :data:`TRUNCATED` headers added. The header names are
    ours, not the sender's: with the setting's minimum of 1 KiB there is room for them."""
    if letter.size <= max_bytes:
        return letter
    small_cap = max_bytes // (4 * (len(letter.headers) + 4))
    for cap in (FIELD_MAX_BYTES, small_cap):
        key, headers = _cut_fields(letter, cap)
        room = max_bytes - record_bytes(key, b"", headers)
        if room >= 0:
            break
    return DeadLetter(value=letter.value[: max(0, room)], key=key, headers=headers)


def _cut_fields(letter: DeadLetter, cap: int) -> tuple[bytes | None, Headers]:
    """The key and headers of ``letter`` with each value cut to ``cap`` bytes, and the
    headers that say what was cut."""
    key = letter.key
    headers = [(name, value[:cap]) for name, value in letter.headers]
    headers += [(TRUNCATED, b"true"), (ORIGINAL_BYTES, str(len(letter.value)).encode())]
    if key is not None and len(key) > cap:
        headers.append((ORIGINAL_KEY_BYTES, str(len(key)).encode()))
        key = key[:cap]
    return key, headers
