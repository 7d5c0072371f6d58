"""Dead-letter records, the same shape on every dead-letter topic.

The value is the record exactly as it was received (so it can be produced back to its
topic once the cause is fixed) and the headers say why and where from:

``error.reason``   a short machine-readable reason (``not_json``, ``too_large``, ``http_400``...)
``error.stage``    which service gave up on it (``decode``, ``reduce``, ``deliver``...)
``error.path``     the field path of a decode error, if any
``error.detail``   a human-readable detail, truncated to 512 bytes
``source.topic`` / ``source.partition`` / ``source.offset``   where the record came from
plus any headers the stage adds (``http.status``, ``http.body``, ``batch.idempotency_key``...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Headers = list[tuple[str, bytes]]

DETAIL_MAX_BYTES = 512


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes
    key: bytes | None
    headers: Headers

    @property
    def reason(self) -> str:
        return next((v.decode() for k, v in self.headers if k == "error.reason"), "")


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
        ("error.path", path.encode()),
        ("error.detail", detail.encode()[:DETAIL_MAX_BYTES]),
        ("error.stage", stage.encode()),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    headers.extend(extra)
    return DeadLetter(value=value, key=key, headers=headers)
