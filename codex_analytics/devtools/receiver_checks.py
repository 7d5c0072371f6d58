"""What the local receiver checks in an analytics request, as the real endpoint would
(pure; the receiver turns a failed check into its answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from codex_analytics.contract import EVENTS_PATH, DecodeError, event_from_json


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    detail: str

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "detail": self.detail})


def check_request(
    method: str, path: str, headers: dict[str, str], body: bytes, *, require_auth: bool = True
) -> Refusal | list[Any]:
    """The batch's events when the request is a valid analytics upload, else why not.
    ``headers`` has lower-cased names."""
    if method != "POST" or not path.endswith(EVENTS_PATH):
        return Refusal(404, "not_found", f"POST …{EVENTS_PATH} is the only upload path")
    if require_auth:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return Refusal(401, "unauthorized", "missing 'Authorization: Bearer <token>'")
        if not headers.get("chatgpt-account-id", "").strip():
            return Refusal(401, "unauthorized", "missing chatgpt-account-id")
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return Refusal(415, "unsupported_media_type", "Content-Type must be application/json")
    if headers.get("content-encoding", "").lower() == "gzip":
        import gzip

        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return Refusal(400, "bad_request", "the gzip body does not decompress")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        return Refusal(400, "bad_request", f"not JSON: {err.msg}")
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        return Refusal(400, "bad_request", 'the body must be {"events": [...]}')
    events: list[Any] = document["events"]
    if not events:
        return Refusal(400, "bad_request", "an upload holds at least one event")
    for index, event in enumerate(events):
        try:
            event_from_json(event)
        except DecodeError as err:
            return Refusal(400, "invalid_event", str(err.within(index).within("events")))
    return events
