"""Profile J's tables of one instance's state (profile-j.md §5.1).

A Profile J instance keeps the Profile S ``connections`` and ``dedupe`` tables of its
:class:`~streams.reducer.state.InstanceState` (same shape, same rules) and these. Every
table is a dict of slotted records, each with a ``touched_ms`` (the event time it last
changed: what expiry reads); keys are strings, integers or tuples of them. A table is
declared once, in :data:`TABLES`, with its record model: that is all it takes to
serialize it, restore it and expire it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from codex_analytics.contract.profile_j.session_facts import (
    ImagePreparationMetadata,
    TokenUsageJ,
    TurnCodexError,
    TurnProfile,
)
from codex_analytics.contract.profile_j.tool_events import TOOL_EVENTS
from codex_analytics.contract.schema import decoder_for, to_wire

from ..derive import Completion
from ..tables import expire_table

# -- sessions: requests, threads and turns (profile-j.md §5.1-§5.3) ---------------------------

#: What a pending client request is waiting for its answer to.
PendingKind = Literal["turn_start", "turn_steer", "explicit_client_interrupt"]


@dataclass(slots=True)
class PendingRequestJ:
    """``requests[(connection_id, request_id)]``: a ``turn/start``, ``turn/steer`` or
    ``turn/interrupt`` awaiting its response (or error)."""

    touched_ms: int
    kind: PendingKind
    #: ``turn/start`` and ``turn/steer``: the request's thread and its input's images.
    thread_id: str | None = None
    num_input_images: int = 0
    #: ``turn/steer``: the turn it expects, and ``floor(observed_at_ms / 1000)`` of the
    #: request fact (upstream's wall clock when it saw the request).
    expected_turn_id: str | None = None
    created_at: int | None = None
    #: ``turn/interrupt``: the turn to interrupt and when the client asked.
    turn_id: str | None = None
    requested_at_ms: int | None = None


@dataclass(slots=True)
class ThreadMetadataJ:
    """A thread's lineage as its lifecycle response or sub-agent start set it."""

    session_id: str
    thread_source: str | None
    initialization_mode: str
    subagent_source: str | None
    parent_thread_id: str | None


@dataclass(slots=True)
class ThreadJ:
    """``threads[thread_id]``: its connection, metadata and originator, each set apart."""

    touched_ms: int
    connection_id: int | None = None
    metadata: ThreadMetadataJ | None = None
    #: The per-thread originator (``client_response.thread_originator``, or a
    #: sub-agent's ``product_client_id``): the events' ``product_client_id`` when set.
    originator: str | None = None


@dataclass(slots=True)
class ToolCounts:
    """A turn's tool counters (the turn event's ``*_count`` keys)."""

    total: int = 0
    shell_command: int = 0
    file_change: int = 0
    mcp_tool_call: int = 0
    dynamic_tool_call: int = 0
    subagent_tool_call: int = 0
    web_search: int = 0
    image_generation: int = 0


@dataclass(slots=True)
class TurnConfigJ:
    """The values of a turn's ``turn_resolved_config`` that its events need, mapped as
    the turn event spells them (the rest of the fact is not kept while the turn is open)."""

    submission_type: str | None
    ephemeral: bool
    model: str
    model_provider: str
    sandbox_policy: str
    reasoning_effort: str | None
    reasoning_summary: str | None
    service_tier: str
    approval_policy: str
    approvals_reviewer: str
    sandbox_network_access: bool
    collaboration_mode: str
    personality: str | None
    workspace_kind: str | None
    is_first_turn: bool
    #: For the accepted-lines event (PROPOSAL ``resolved.repo_hash``).
    repo_hash: str | None


@dataclass(slots=True)
class AcceptedLineCounts:
    """The added and deleted lines of the turn's latest ``turn/diff/updated`` (all the
    accepted-lines event reads of a diff: the diff itself is not kept)."""

    added: int
    deleted: int


@dataclass(slots=True)
class TurnJ:
    """``turns[turn_id]``: what the turn event is built from, gathered fact by fact.

    ``connection_id``, ``thread_id`` and ``tool_counts`` are read and written by the tool
    rules too; the other fields belong to the session rules."""

    touched_ms: int
    connection_id: int | None = None
    thread_id: str | None = None
    num_input_images: int | None = None
    resolved_config: TurnConfigJ | None = None
    started_at: int | None = None
    token_usage: TokenUsageJ | None = None
    completed: Completion | None = None
    steer_count: int = 0
    profile: TurnProfile | None = None
    image_preparations: list[ImagePreparationMetadata] = field(default_factory=list)
    explicit_client_interrupt_requested_at_ms: int | None = None
    codex_error: TurnCodexError | None = None
    #: Set by ``turn/diff/updated`` (the latest one wins), even when both are 0.
    latest_diff: AcceptedLineCounts | None = None
    tool_counts: ToolCounts = field(default_factory=ToolCounts)


# -- tools, reviews and code mode (profile-j.md §5.3.1-§5.4) ---------------------------------

#: ``(thread_id, turn_id, item_id)``: a tool item of a turn.
ToolItemKey = tuple[str, str, str]
#: ``(thread_id, turn_id)``: the code-mode correlation scope.
TurnKey = tuple[str, str]


@dataclass(slots=True)
class ToolItemStartedJ:
    """``tool_items_started_at_ms[(thread, turn, item)]``: an ``item/started`` awaiting its
    ``item/completed``."""

    touched_ms: int
    started_at_ms: int


@dataclass(slots=True)
class PendingReviewJ:
    """``pending_reviews[request_id]``: an approval request awaiting its answer."""

    touched_ms: int
    thread_id: str
    turn_id: str
    item_id: str | None
    review_id: str
    subject_kind: str
    subject_name: str
    trigger: str
    started_at_ms: int
    requested_additional_permissions: bool
    requested_network_access: bool


@dataclass(slots=True)
class ItemReviewSummaryJ:
    """``item_review_summaries[(thread, turn, item)]``: the reviews of a tool item so far,
    read by its tool event."""

    touched_ms: int
    review_count: int = 0
    guardian_review_count: int = 0
    user_review_count: int = 0
    final_approval_outcome: str | None = None
    requested_additional_permissions: bool = False
    requested_network_access: bool = False


@dataclass(slots=True)
class ToolResponsesJ:
    """``tool_response_states[(thread, turn)]``: the code-mode correlation of a turn and
    the tool events held until it is known (profile-j.md §5.3.2)."""

    touched_ms: int
    #: call_id -> the response that called it (``sampling_response_completed``).
    response_ids: dict[str, str] = field(default_factory=dict)
    #: child call_id -> its cell (``child_started``).
    child_cells: dict[str, str] = field(default_factory=dict)
    #: Held tool events, oldest first: event models here, their wire JSON in the bytes.
    held: list[Any] = field(default_factory=list)

    def _post_decode(self) -> None:
        self.held = [_decode_tool_event(event) for event in self.held]


@dataclass(slots=True)
class CodeModeCellJ:
    """``code_mode_cells[thread][cell_id]``, keyed ``(thread_id, cell_id)``."""

    touched_ms: int
    parent_call_id: str
    originating_response_id: str | None = None
    closed_in_turn_id: str | None = None


def _decode_tool_event(wire: Any) -> Any:
    return decoder_for(TOOL_EVENTS[wire["event_type"]])(wire)


#: Every Profile J table: attribute name -> record model. Order is serialization order.
TABLES: dict[str, type[Any]] = {
    "requests": PendingRequestJ,
    "threads": ThreadJ,
    "turns": TurnJ,
    "tool_items_started": ToolItemStartedJ,
    "pending_reviews": PendingReviewJ,
    "item_review_summaries": ItemReviewSummaryJ,
    "tool_responses": ToolResponsesJ,
    "code_mode_cells": CodeModeCellJ,
}


class JTables:
    """The Profile J tables of one instance (see :data:`TABLES`)."""

    __slots__ = tuple(TABLES)

    def __init__(self) -> None:
        for name in TABLES:
            setattr(self, name, {})

    # Typed views of the tables (attributes are set from TABLES above).
    requests: dict[tuple[int, int | str], PendingRequestJ]
    threads: dict[str, ThreadJ]
    turns: dict[str, TurnJ]
    tool_items_started: dict[ToolItemKey, ToolItemStartedJ]
    pending_reviews: dict[int | str, PendingReviewJ]
    item_review_summaries: dict[ToolItemKey, ItemReviewSummaryJ]
    tool_responses: dict[TurnKey, ToolResponsesJ]
    code_mode_cells: dict[tuple[str, str], CodeModeCellJ]

    def tables(self) -> dict[str, dict[Any, Any]]:
        return {name: getattr(self, name) for name in TABLES}

    @property
    def is_empty(self) -> bool:
        return not any(self.tables().values())

    def sizes(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.tables().items()}

    def expire(self, cutoff_ms: int) -> dict[str, int]:
        """Forget records untouched since before ``cutoff_ms``; how many per table, and
        how many held tool events went with them (``held_tool_events``: a turn idle for
        the whole horizon never completes, as upstream's never would after its process
        ended; counted so that it shows)."""
        held = sum(
            len(record.held)
            for record in self.tool_responses.values()
            if record.touched_ms < cutoff_ms
        )
        expired = {name: expire_table(table, cutoff_ms) for name, table in self.tables().items()}
        expired["held_tool_events"] = held
        return expired

    def to_json(self) -> dict[str, Any]:
        return {
            name: [[key, to_wire(record)] for key, record in table.items()]
            for name, table in self.tables().items()
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> JTables:
        tables = cls()
        for name, model in TABLES.items():
            decode = decoder_for(model)
            table = getattr(tables, name)
            for key, record in raw.get(name, ()):
                table[_key(key)] = decode(record)
        return tables


def _key(value: Any) -> Any:
    """A key as it was: JSON turned its tuples into arrays."""
    return tuple(_key(part) for part in value) if type(value) is list else value
