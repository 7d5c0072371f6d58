"""The tool side of a 2026-08 turn for the generator: tool items started and completed,
reviewed first by the user (a server request and its answer) or the guardian (its
review notifications), and code-mode cells whose calls are held until a later sampling
response, the turn's end or a flush (profile-j.md §5.3-§5.4)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from codex_analytics.simulator.fact_builder_j import FactBuilderJ
from codex_analytics.simulator.tool_items_j import (
    TOOL_ITEM_KINDS,
    command_approval_params,
    tool_item,
)

#: A user's answers to a command approval request (``result.decision``), accept weighted.
_COMMAND_DECISIONS: list[Any] = [
    "accept",
    "accept",
    "acceptForSession",
    {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["cargo", "test"]}},
    {
        "applyNetworkPolicyAmendment": {
            "network_policy_amendment": {"host": "pypi.org", "action": "allow"}
        }
    },
    "decline",
    "cancel",
]
_FILE_DECISIONS = ["accept", "acceptForSession", "decline", "cancel"]


class ToolEpisodesJ:
    """The tool episodes of :class:`~codex_analytics.simulator.sessions_j.SimulatedInstanceJ`
    (a mixin: it plans into the process's queue with its builder and random source)."""

    builder: FactBuilderJ
    rng: random.Random
    queue: deque[dict[str, Any]]
    server_request_id: int
    #: The process's id maker (:meth:`SimulatedProcess.next_id`).
    next_id: Callable[[str], str]

    def _tool(self, conn: int, thread_id: str, turn_id: str) -> None:
        """A tool item of the turn: started, maybe reviewed, then completed."""
        b, rng, q = self.builder, self.rng, self.queue
        if rng.random() < 0.08:
            item_id = self.next_id("act")
            q.append(
                b.item_completed(
                    thread_id,
                    turn_id,
                    tool_item("subAgentActivity", item_id, "completed"),
                    completed_at_ms=b.now_ms,
                )
            )
            return
        kind = rng.choice(TOOL_ITEM_KINDS)
        item_id = self.next_id("item")
        variant = rng.randrange(12)
        started_ms = b.now_ms
        q.append(
            b.item_started(
                thread_id,
                turn_id,
                tool_item(kind, item_id, "inProgress", variant),
                started_at_ms=started_ms,
            )
        )
        declined = False
        if kind in ("commandExecution", "fileChange", "mcpToolCall") and rng.random() < 0.35:
            declined = self._review(conn, thread_id, turn_id, item_id, kind)
        status = rng.choices(["completed", "failed", "inProgress"], [85, 12, 3])[0]
        if declined and kind != "mcpToolCall":
            status = "declined"
        q.append(
            b.item_completed(
                thread_id,
                turn_id,
                tool_item(kind, item_id, status, variant),
                completed_at_ms=started_ms + rng.randrange(5, 5000),
            )
        )

    def _review(self, conn: int, thread_id: str, turn_id: str, item_id: str, kind: str) -> bool:
        """A user's or the guardian's review of an item; True when it was declined."""
        b, rng, q = self.builder, self.rng, self.queue
        started = b.now_ms
        if kind == "mcpToolCall" or rng.random() < 0.3:
            action = {
                "commandExecution": rng.choice(["command", "execve", "networkAccess"]),
                "fileChange": "applyPatch",
                "mcpToolCall": "mcpToolCall",
            }[kind]
            status = rng.choices(["approved", "denied", "timedOut", "aborted"], [6, 2, 1, 1])[0]
            review_id = self.next_id("grv")
            target = None if action == "networkAccess" else item_id
            if rng.random() < 0.5:  # the started notification travels, and is ignored
                q.append(
                    b.guardian_review_notification(
                        thread_id,
                        turn_id,
                        review_id,
                        completed=False,
                        action=action,
                        target_item_id=target,
                        started_at_ms=started,
                    )
                )
            q.append(
                b.guardian_review_notification(
                    thread_id,
                    turn_id,
                    review_id,
                    status=status,
                    action=action,
                    target_item_id=target,
                    started_at_ms=started,
                    completed_at_ms=started + rng.randrange(100, 3000),
                )
            )
            return status == "denied"
        self.server_request_id += 1
        request_id = self.server_request_id
        done_ms = started + rng.randrange(500, 20_000)
        if kind == "commandExecution" and rng.random() < 0.2:
            network, file_system = rng.choice([(True, False), (False, True), (False, False)])
            q.append(
                b.server_request(
                    conn,
                    request_id,
                    "item/permissions/requestApproval",
                    {
                        "threadId": thread_id,
                        "turnId": turn_id,
                        "itemId": item_id,
                        "environmentId": None,
                        "startedAtMs": started,
                        "cwd": "/work",
                        "reason": "needs more access",
                        "permissions": {
                            "network": {"enabled": True} if network else None,
                            "fileSystem": {"read": None, "write": ["/work/out"]}
                            if file_system
                            else None,
                        },
                    },
                )
            )
            grant = rng.random() < 0.7
            q.append(
                b.permissions_response(
                    request_id,
                    network=grant and network,
                    file_system=grant and file_system,
                    scope=rng.choice(["turn", "session"]),
                    completed_at_ms=done_ms,
                )
            )
            return False
        if kind == "commandExecution":
            method = "item/commandExecution/requestApproval"
            params = command_approval_params(thread_id, turn_id, item_id, started, rng.randrange(5))
            decision: Any = rng.choice(_COMMAND_DECISIONS)
        else:
            method = "item/fileChange/requestApproval"
            params = {
                "threadId": thread_id,
                "turnId": turn_id,
                "itemId": item_id,
                "startedAtMs": started,
                "reason": None,
                "grantRoot": rng.choice([None, "/work"]),
            }
            decision = rng.choice(_FILE_DECISIONS)
        q.append(b.server_request(conn, request_id, method, params))
        if rng.random() < 0.1:
            q.append(b.server_request_aborted(request_id, completed_at_ms=done_ms))
            if rng.random() < 0.5:  # a second abort closes nothing
                q.append(b.server_request_aborted(request_id, completed_at_ms=done_ms + 1))
            return False
        q.append(b.server_response(request_id, method, decision, completed_at_ms=done_ms))
        return bool(decision == "decline")

    def _code_mode(self, thread_id: str, turn_id: str) -> None:
        """A code-mode cell: its exec call answers one sampling response, its child calls
        complete (held) and are released by a later response, the turn or a flush."""
        b, rng, q = self.builder, self.rng, self.queue
        where = {"thread_id": thread_id, "turn_id": turn_id}
        cell_id, exec_call = self.next_id("cell"), self.next_id("call")
        q.append(b.code_mode("cell_started", **where, call_id=exec_call, cell_id=cell_id))
        q.append(
            b.code_mode(
                "sampling_response_completed",
                **where,
                response_id=self.next_id("resp"),
                tool_call_ids=[exec_call],
            )
        )
        for _ in range(rng.choice([1, 1, 2])):
            child = self.next_id("call")
            q.append(b.code_mode("child_started", **where, call_id=child, cell_id=cell_id))
            started = b.now_ms
            if rng.random() < 0.3:  # a tool item run from the cell
                q.append(
                    b.item_started(
                        thread_id,
                        turn_id,
                        tool_item("dynamicToolCall", child, "inProgress"),
                        started_at_ms=started,
                    )
                )
                q.append(
                    b.item_completed(
                        thread_id,
                        turn_id,
                        tool_item("dynamicToolCall", child, "completed"),
                        completed_at_ms=started + 30,
                    )
                )
                continue
            q.append(
                b.code_mode(
                    "completed",
                    **where,
                    call_id=child,
                    cell_id=rng.choice([cell_id, cell_id, None]),
                    tool_name=rng.choice(["read_file", "search", "apply_patch"]),
                    started_at_ms=started,
                    completed_at_ms=started + rng.randrange(5, 900),
                    status=rng.choices(["completed", "failed", "interrupted"], [8, 1, 1])[0],
                )
            )
        if rng.random() < 0.5:
            q.append(b.code_mode("cell_closed", **where, cell_id=cell_id))
        if rng.random() < 0.4:
            q.append(
                b.code_mode(
                    "sampling_response_completed",
                    **where,
                    response_id=self.next_id("resp"),
                    tool_call_ids=[self.next_id("call")],
                )
            )
        if rng.random() < 0.3:  # the producer flushes mid-turn: held calls go out now
            q.append(b.flush())
