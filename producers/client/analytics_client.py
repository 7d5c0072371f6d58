"""The analytics client: upstream's ``track_*`` calls for Python hosts.

A client speaks one contract (``ClientSettings.contract``): ``2026-08`` (Profile J, the
default: upstream's 33 calls and the ``flush`` barrier) or ``2026-06`` (Profile S: the 19
calls of June, facts byte-identical to the ones written before Profile J).

A ``track_*`` call never blocks on the network and never raises into the caller: it
applies the upstream gates (``delivery.md`` §1-2), stamps the fact with the process
identity, the next ``seq`` and the time, and puts it in a bounded queue (256, as
upstream). A background sender publishes the queue to the facts topic, keyed by instance
id, retrying while the broker is away; when the queue is full the fact is dropped, a
warning is logged and a counter counts it. Failures reach the host through the
``on_delivery_error`` callback and :class:`ClientStats`, never as an exception.

:class:`AnalyticsClient` is for asyncio hosts (``track_*`` may be called from any
thread); :class:`~producers.client.sync_client.SyncAnalyticsClient` runs the same client on a
background thread for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from codex_analytics.contract import DecodeError, DecodeReason, decode_fact
from codex_analytics.contract.schema import to_wire
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S, ContractId
from producers.client.envelope import ProducerIdentity, build_envelope
from producers.client.forks import follow_forks, forked_instance_id
from producers.client.gates import (
    INTERRUPT_REQUEST,
    RELEVANT_NOTIFICATIONS,
    RELEVANT_NOTIFICATIONS_J,
    RELEVANT_REQUESTS,
    RELEVANT_RESPONSES,
    RELEVANT_RESPONSES_J,
    TurnKeyDedupe,
)
from producers.client.plugin_metadata import metadata_in_contract
from producers.client.settings import ClientSettings
from producers.client.skills import resolve_skill_path
from producers.publishing.records import MAX_RECORD_BYTES, fact_record_groups
from producers.publishing.transport import (
    FactTransport,
    KafkaFactTransport,
    PublishError,
    RetryablePublishError,
    send_with_retry,
)

log = logging.getLogger("producers.client.analytics_client")

QUEUE_FULL_WARNING = "dropping analytics events: queue is full"
#: After the first drop, the warning repeats at most this often (with a count): a host
#: that outruns the broker must not also drown in log lines.
DROP_WARNING_INTERVAL_S = 10.0

Obj = Mapping[str, Any] | Any  # a contract model (dataclass) or its wire-form mapping


@dataclass(slots=True)
class ClientStats:
    """Counters of one client; every fact handed to ``track_*`` ends in exactly one of
    ``gated``, ``deduplicated``, ``dropped_*``, ``published``, ``failed`` or the queue."""

    queued: int = 0
    gated: int = 0
    deduplicated: int = 0
    dropped_queue_full: int = 0
    dropped_closed: int = 0
    published: int = 0
    failed: int = 0
    publish_retries: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Facts the client gave up on: ``reason`` is ``rejected`` (the broker refused them
    for good), ``retries_exhausted`` (unreachable for ``delivery_timeout_s``),
    ``closed`` (still queued when ``close()`` ran out of time), ``unencodable`` or
    ``over_limit`` (a string over the contract's limits, or a fact over the record size:
    the stream could not carry it; ``error`` names the field)."""

    reason: str
    error: str
    facts: list[dict[str, Any]] = dataclasses.field(repr=False)

    def __repr__(self) -> str:  # facts may carry user content: counts only
        return f"DeliveryFailure(reason={self.reason!r}, error={self.error!r}, facts={len(self.facts)})"


#: Decode failures the client refuses a fact for: what the stream could not carry. Other
#: malformed facts are sent, as upstream's client sends them: the stream dead-letters them.
_REFUSED = frozenset({DecodeReason.TOO_LONG, DecodeReason.TOO_LARGE})


def _over_limit(value: bytes) -> DecodeError | None:
    try:
        decode_fact(value, max_bytes=MAX_RECORD_BYTES)
    except DecodeError as err:
        return err if err.reason in _REFUSED else None
    return None


def _wire(value: Obj) -> Any:
    return to_wire(value) if dataclasses.is_dataclass(value) else value


def _field(value: Obj, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


class _Tracker:
    """The thread-safe part: gates' state, ``seq`` stamping, the bounded queue, counters."""

    def __init__(
        self, settings: ClientSettings, identity: ProducerIdentity, contract: ContractId
    ) -> None:
        self.settings = settings
        self.contract = contract
        self.enabled = settings.is_enabled
        self.forward_all = settings.forward_all_protocol_messages
        self._refusals_logged: set[str] = set()
        self._capacity = settings.queue_capacity
        self._closed = False
        self._begin_instance(identity)

    def _begin_instance(self, identity: ProducerIdentity) -> None:
        """Everything that belongs to one instance: identity, ``seq``, queue, dedupe,
        counters, and a lock no other thread holds."""
        self.instance_id = identity.instance_id
        self._source = identity.source(self.contract)
        self.app_used = TurnKeyDedupe()
        self.plugin_used = TurnKeyDedupe()
        self.stats = ClientStats()
        self.wake: Callable[[], None] = lambda: None
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._seq = 0
        #: The kind of the last fact queued: ``close()`` sends no second barrier.
        self.last_kind: str | None = None
        self._drops_unreported = 0
        self._last_drop_warning = float("-inf")

    def reset_after_fork(self, identity: ProducerIdentity) -> None:
        """A new instance in a forked child. The parent's queued facts are dropped from
        this copy (the parent sends them), and the copied lock is replaced: a thread of
        the parent may have held it, and that thread does not exist here."""
        self._begin_instance(identity)

    def record(
        self,
        kind: str,
        connection_id: int | None,
        payload: Any,
        *,
        now_ms: int | None = None,
        barrier: bool = False,
    ) -> bool:
        """Stamp and queue one fact. A ``barrier`` (the ``flush`` fact) is queued even
        when the queue is full: upstream's ``flush()`` waits for room instead of dropping
        it, and a caller waiting for it must not wait for a fact that never comes. Past
        the bound it joins a barrier already last in the queue (nothing was queued after
        that one: it releases the same), so the queue holds at most one fact more."""
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        warn_dropped = 0
        queued = False
        with self._lock:
            if self._closed:
                self.stats.dropped_closed += 1
                return False
            full = len(self._queue) >= self._capacity
            if full and barrier and self._queue and self._queue[-1]["kind"] == kind:
                return True
            if full and not barrier:
                self.stats.dropped_queue_full += 1
                self._drops_unreported += 1
                if time.monotonic() - self._last_drop_warning >= DROP_WARNING_INTERVAL_S:
                    warn_dropped, self._drops_unreported = self._drops_unreported, 0
                    self._last_drop_warning = time.monotonic()
            else:
                self._seq += 1
                self._queue.append(
                    build_envelope(
                        self._source,
                        seq=self._seq,
                        fact_id="",
                        observed_at_ms=now_ms,
                        kind=kind,
                        connection_id=connection_id,
                        payload=payload,
                    )
                )
                self.stats.queued += 1
                self.last_kind = kind
                queued = True
        if warn_dropped:
            log.warning(QUEUE_FULL_WARNING, extra={"dropped": warn_dropped})
            return False
        if not queued:
            return False
        self.wake()
        return True

    def gate(self) -> bool:
        self.stats.gated += 1
        return False

    def refuse_outside_j(self, call: str) -> bool:
        """True (after a warning, once per call) when this client speaks Profile S, which
        has no such fact: the call is gated, as every gate does, and never raises."""
        if self.contract == CONTRACT_J:
            return False
        if call not in self._refusals_logged:
            self._refusals_logged.add(call)
            log.warning(
                "%s is part of contract %s; this client speaks %s: not sent",
                call,
                CONTRACT_J,
                self.contract,
            )
        self.stats.gated += 1
        return True

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
        return taken

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        with self._lock:
            self._closed = True


class TrackCalls:
    """The ``track_*`` calls of upstream's ``AnalyticsEventsClient``: 33 for a
    ``2026-08`` client; a ``2026-06`` client takes the 19 of June and refuses the others
    (they return False after a warning).

    Each returns True when the fact was queued, False when a gate, the dedupe, a full
    queue or a closed client kept it out. Arguments are contract models
    (``codex_analytics.contract.facts``) or their wire-form mappings; app-server
    protocol objects (params, results, notifications) are plain JSON mappings. The client
    takes ownership of what it is given: do not change an object after passing it.
    """

    _tracker: _Tracker

    # -- connection-scoped -------------------------------------------------------------

    def track_initialize(
        self,
        connection_id: int,
        params: Mapping[str, Any],
        product_client_id: str,
        rpc_transport: str = "stdio",
        runtime: Obj | None = None,
    ) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        payload = {
            "params": params,
            "product_client_id": product_client_id,
            "runtime": t._source["runtime"] if runtime is None else _wire(runtime),
            "rpc_transport": rpc_transport,
        }
        return t.record("initialize", connection_id, payload)

    def track_request(
        self, connection_id: int, request_id: int | str, method: str, params: Mapping[str, Any]
    ) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        if t.contract == CONTRACT_J and method == INTERRUPT_REQUEST:
            # Profile J: an interrupt travels as a fact of its own, stamped now; one
            # without a turn id is dropped (upstream ``track_request``).
            now_ms = time.time_ns() // 1_000_000
            turn_id = params.get("turnId")
            if not isinstance(turn_id, str) or not turn_id:
                return t.gate()
            interrupt = {"request_id": request_id, "turn_id": turn_id, "requested_at_ms": now_ms}
            return t.record(
                "explicit_client_interrupt_request", connection_id, interrupt, now_ms=now_ms
            )
        if not t.forward_all and method not in RELEVANT_REQUESTS:
            return t.gate()
        payload: dict[str, Any] = {"request_id": request_id, "method": method, "params": params}
        return t.record("client_request", connection_id, payload)

    def track_response(
        self, connection_id: int, request_id: int | str, method: str, result: Mapping[str, Any]
    ) -> bool:
        return self._response(connection_id, request_id, method, result, None)

    def track_response_with_thread_originator(
        self,
        connection_id: int,
        request_id: int | str,
        method: str,
        result: Mapping[str, Any],
        thread_originator: str,
    ) -> bool:
        """A thread lifecycle response with the originator of the thread's owner
        (Profile J: the thread's events name it as their client). A ``2026-06`` client
        sends the plain response: Profile S has no per-thread originator."""
        return self._response(connection_id, request_id, method, result, thread_originator)

    def _response(
        self,
        connection_id: int,
        request_id: int | str,
        method: str,
        result: Mapping[str, Any],
        thread_originator: str | None,
    ) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        relevant = RELEVANT_RESPONSES_J if t.contract == CONTRACT_J else RELEVANT_RESPONSES
        if not t.forward_all and method not in relevant:
            return t.gate()
        payload: dict[str, Any] = {"request_id": request_id, "method": method, "result": result}
        if t.contract == CONTRACT_J:
            payload["thread_originator"] = thread_originator
        return t.record("client_response", connection_id, payload)

    def track_error_response(
        self,
        connection_id: int,
        request_id: int | str,
        error: Mapping[str, Any],
        error_type: Mapping[str, Any] | None = None,
    ) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        payload = {"request_id": request_id, "error": error, "error_type": error_type}
        return t.record("error_response", connection_id, payload)

    def track_notification(self, method: str, params: Mapping[str, Any]) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        relevant = RELEVANT_NOTIFICATIONS_J if t.contract == CONTRACT_J else RELEVANT_NOTIFICATIONS
        if not t.forward_all and method not in relevant:
            return t.gate()
        return t.record("server_notification", None, {"method": method, "params": params})

    # -- server requests and reviews (Profile J) --------------------------------------------

    def track_server_request(
        self, connection_id: int, request_id: int | str, method: str, params: Mapping[str, Any]
    ) -> bool:
        """A request the app-server sent its client (approval requests open reviews)."""
        if self._outside_j("track_server_request"):
            return False
        payload = {"request_id": request_id, "method": method, "params": params}
        return self._tracker.record("server_request", connection_id, payload)

    def track_server_response(
        self, completed_at_ms: int, request_id: int | str, method: str, result: Mapping[str, Any]
    ) -> bool:
        """The client's answer to a server request (``result.decision`` closes a review)."""
        if self._outside_j("track_server_response"):
            return False
        payload = {
            "completed_at_ms": completed_at_ms,
            "request_id": request_id,
            "method": method,
            "result": result,
        }
        return self._tracker.record("server_response", None, payload)

    def track_effective_permissions_approval_response(
        self, completed_at_ms: int, request_id: int | str, response: Mapping[str, Any]
    ) -> bool:
        """The permissions actually granted for a permissions request:
        ``{permissions: {network, file_system}, scope: "turn"|"session"}``."""
        if self._outside_j("track_effective_permissions_approval_response"):
            return False
        payload = {
            "completed_at_ms": completed_at_ms,
            "request_id": request_id,
            "response": response,
        }
        return self._tracker.record("effective_permissions_approval_response", None, payload)

    def track_server_request_aborted(self, completed_at_ms: int, request_id: int | str) -> bool:
        if self._outside_j("track_server_request_aborted"):
            return False
        payload = {"completed_at_ms": completed_at_ms, "request_id": request_id}
        return self._tracker.record("server_request_aborted", None, payload)

    # -- custom facts --------------------------------------------------------------------

    def track_subagent_thread_started(self, started: Obj) -> bool:
        return self._custom("subagent_thread_started", started)

    def track_guardian_review(self, params: Mapping[str, Any]) -> bool:
        return self._custom("guardian_review", params)

    def track_compaction(self, event: Obj) -> bool:
        return self._custom("compaction", event)

    def track_turn_resolved_config(self, config: Obj) -> bool:
        return self._custom("turn_resolved_config", config)

    def track_turn_token_usage(self, usage: Obj) -> bool:
        """``usage`` is ``{turn_id, thread_id, token_usage: {...}}``."""
        return self._custom("turn_token_usage", usage)

    # -- turn, goal and code-mode facts (Profile J) ---------------------------------------

    def track_turn_profile(self, fact: Obj) -> bool:
        """``{turn_id, profile: {before_first_sampling_ms, ..., sampling_retry_count}}``."""
        return self._custom_j("track_turn_profile", "turn_profile", fact)

    def track_turn_codex_error(self, fact: Obj) -> bool:
        """``{turn_id, thread_id, error: {kind, http_status_code}}``."""
        return self._custom_j("track_turn_codex_error", "turn_codex_error", fact)

    def track_image_preparation(self, fact: Obj) -> bool:
        """``{turn_id, metadata: {message_role, item_id, effective_detail, ...}}``."""
        return self._custom_j("track_image_preparation", "image_preparation", fact)

    def track_goal_event(self, event: Obj) -> bool:
        """Upstream ``CodexGoalEvent``: ``{thread_id, turn_id, goal_id, event_kind, ...}``."""
        return self._custom_j("track_goal_event", "goal", event)

    def track_code_mode_tool_call(self, fact: Obj) -> bool:
        """Upstream ``CodeModeToolCallFact``, externally tagged:
        ``{"cell_started": {...}}``, ``{"child_started": {...}}``, ``{"cell_closed": {...}}``,
        ``{"sampling_response_completed": {...}}`` or ``{"completed": {...}}``."""
        return self._custom_j("track_code_mode_tool_call", "code_mode_tool_call", fact)

    def track_skill_invocations(self, tracking: Obj, invocations: Sequence[Obj]) -> bool:
        """A skill without a ``resolved`` block gets one, worked out on this machine
        (off the caller's path, in the sender)."""
        t = self._tracker
        if not t.enabled:
            return False
        if not invocations:
            return t.gate()
        payload = {"tracking": _wire(tracking), "invocations": [_wire(i) for i in invocations]}
        return t.record("skill_invoked", None, payload)

    def track_app_mentioned(self, tracking: Obj, mentions: Sequence[Obj]) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        if not mentions:
            return t.gate()
        payload = {"tracking": _wire(tracking), "mentions": [_wire(m) for m in mentions]}
        return t.record("app_mentioned", None, payload)

    def track_app_used(self, tracking: Obj, app: Obj) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        connector_id = _field(app, "connector_id")
        # An app without a connector id always passes (upstream).
        if connector_id is not None and not t.app_used.admit(
            str(_field(tracking, "turn_id")), str(connector_id)
        ):
            t.stats.deduplicated += 1
            return False
        return t.record("app_used", None, {"tracking": _wire(tracking), "app": _wire(app)})

    def track_hook_run(self, tracking: Obj, hook: Obj) -> bool:
        return self._custom("hook_run", {"tracking": _wire(tracking), "hook": _wire(hook)})

    def track_plugin_used(self, tracking: Obj, plugin: Obj) -> bool:
        """``plugin`` comes from :class:`~producers.client.plugins.PluginsManager`. Deduplicated
        per turn on the local key ``name@marketplace``, even with a remote id."""
        t = self._tracker
        if not t.enabled:
            return False
        if not t.plugin_used.admit(str(_field(tracking, "turn_id")), self._plugin_used_key(plugin)):
            t.stats.deduplicated += 1
            return False
        plugin = metadata_in_contract(t.contract, plugin)
        payload = {"tracking": _wire(tracking), "plugin": _wire(plugin)}
        return t.record("plugin_used", None, payload)

    def _plugin_used_key(self, plugin: Obj) -> str | None:
        """Profile S: the local key. Profile J: the local key, else the remote id, else
        None (always queued; upstream ``should_enqueue_plugin_used``)."""
        local = _field(plugin, "plugin_id")
        if self._tracker.contract == CONTRACT_S:
            return str(local)
        remote = _field(plugin, "remote_plugin_id")
        key = local if local is not None else remote
        return None if key is None else str(key)

    def track_plugin_install_requested(self, tracking: Obj, request: Obj) -> bool:
        """``request``: ``{suggestion_id, plugins: [{plugin_id, remote_plugin_id,
        plugin_name, connector_ids}], source}``."""
        if self._outside_j("track_plugin_install_requested"):
            return False
        payload = {"tracking": _wire(tracking), "request": _wire(request)}
        return self._tracker.record("plugin_install_requested", None, payload)

    def track_plugin_install_failed(
        self,
        plugin: Obj,
        source: str,
        error_type: str,
        sub_error_type: str | None = None,
    ) -> bool:
        """``plugin`` from :class:`~producers.client.plugins.PluginsManager` (whatever is
        known: its local id may be null); ``source`` is ``manual`` or
        ``external_agent_migration``."""
        if self._outside_j("track_plugin_install_failed"):
            return False
        payload = {
            "plugin": _wire(metadata_in_contract(self._tracker.contract, plugin)),
            "source": source,
            "error_type": error_type,
            "sub_error_type": sub_error_type,
        }
        return self._tracker.record("plugin_install_failed", None, payload)

    def track_external_agent_config_import_completed(self, completed: Obj) -> bool:
        """``{import_id, source, provider_id, item_type, success_count, failed_count}``."""
        return self._custom_j(
            "track_external_agent_config_import_completed",
            "external_agent_config_import_completed",
            completed,
        )

    def track_external_agent_config_import_failure(self, failure: Obj) -> bool:
        """``{import_id, source, provider_id, item_type, failure_stage, error_type,
        sub_error_type}``."""
        return self._custom_j(
            "track_external_agent_config_import_failure",
            "external_agent_config_import_failure",
            failure,
        )

    def track_plugin_installed(self, plugin: Obj) -> bool:
        return self._plugin_state(plugin, "installed")

    def track_plugin_uninstalled(self, plugin: Obj) -> bool:
        return self._plugin_state(plugin, "uninstalled")

    def track_plugin_enabled(self, plugin: Obj) -> bool:
        return self._plugin_state(plugin, "enabled")

    def track_plugin_disabled(self, plugin: Obj) -> bool:
        return self._plugin_state(plugin, "disabled")

    def _plugin_state(self, plugin: Obj, state: str) -> bool:
        plugin = metadata_in_contract(self._tracker.contract, plugin)
        return self._custom("plugin_state_changed", {"plugin": _wire(plugin), "state": state})

    def _custom(self, kind: str, payload: Obj) -> bool:
        t = self._tracker
        if not t.enabled:
            return False
        return t.record(kind, None, _wire(payload))

    def _custom_j(self, call: str, kind: str, payload: Obj) -> bool:
        if self._outside_j(call):
            return False
        return self._tracker.record(kind, None, _wire(payload))

    def _outside_j(self, call: str) -> bool:
        """True when the call is not to be queued: the client is disabled, or speaks
        Profile S, which has no such fact (a warning names the call, once)."""
        t = self._tracker
        return not t.enabled or t.refuse_outside_j(call)

    def _record_flush_barrier(self) -> bool:
        """Profile J's ``flush`` fact (PROPOSAL, profile-j.md §3): the stream releases
        every held tool event when it reaches it. Profile S has no such fact."""
        t = self._tracker
        if not t.enabled or t.contract != CONTRACT_J:
            return False
        return t.record("flush", None, {}, barrier=True)

    # -- introspection -------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._tracker.instance_id

    @property
    def contract(self) -> ContractId:
        """The contract of this client's facts (``source.contract``)."""
        return self._tracker.contract

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._tracker.stats)


class AnalyticsClient(TrackCalls):
    """Analytics client for asyncio hosts. Use ``async with`` or ``start()``/``close()``.

    ``track_*`` calls made before ``start()`` are queued (within the capacity) and sent
    once it runs. A broker that is down at start is retried in the background; the host
    never waits for it.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        identity: ProducerIdentity | None = None,
        transport: FactTransport | None = None,
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
        contract: ContractId | None = None,
    ) -> None:
        """``contract`` overrides ``settings.contract`` (``ANALYTICS_CLIENT_CONTRACT``)."""
        self.settings = settings or ClientSettings()
        if contract is not None and contract != self.settings.contract:
            self.settings = dataclasses.replace(self.settings, contract=contract)
        self.identity = identity or ProducerIdentity()
        self._built_instance_id = self.identity.instance_id
        self._tracker = _Tracker(self.settings, self.identity, self.settings.contract)
        # A transport the client builds is rebuilt in a forked child; one passed in is the
        # caller's to make fork-safe.
        self._new_transport: Callable[[], FactTransport] | None = (
            None if transport is not None else self._kafka_transport
        )
        self._transport: FactTransport = transport or self._kafka_transport()
        self._on_delivery_error = on_delivery_error
        #: What a forked child inherited from its parent (loop, task, connections): kept
        #: referenced, never used or finalized here.
        self._inherited: list[object] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wakeup: asyncio.Event | None = None
        self._idle = False
        self._sender: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._close_deadline: float | None = None
        follow_forks(self)

    def _kafka_transport(self) -> FactTransport:
        return KafkaFactTransport(
            self.settings.kafka,
            self.settings.topic,
            client_id="codex-analytics-client",
            linger_ms=0,
            max_record_bytes=self.settings.max_record_bytes,
        )

    def after_fork_in_child(self) -> None:
        """In a forked child: a new instance id, ``seq`` from 1, an empty queue, and back
        to the not-started state with a transport of its own. Call :meth:`start` in the
        child's event loop."""
        self._inherited.append((self._transport, self._loop, self._sender, self._wakeup))
        self.identity = dataclasses.replace(
            self.identity, instance_id=forked_instance_id(self._built_instance_id)
        )
        self._tracker.reset_after_fork(self.identity)
        if self._new_transport is not None:
            self._transport = self._new_transport()
        self._loop = None
        self._loop_thread = 0
        self._wakeup = None
        self._idle = False
        self._sender = None
        self._in_flight = 0
        self._close_deadline = None

    async def __aenter__(self) -> AnalyticsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._sender is not None or not self._tracker.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._tracker.wake = self._wake
        self._sender = asyncio.create_task(self._send_forever(), name="analytics-client-sender")

    def _wake(self) -> None:
        if not self._idle or self._loop is None or self._wakeup is None:
            return
        self._idle = False
        if threading.get_ident() == self._loop_thread:
            self._wakeup.set()
        else:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def flush(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Wait until everything queued so far is handled. True when it was all
        published; False when ``timeout`` passed first or some of it failed (reported
        through ``on_delivery_error``).

        A ``2026-08`` client first queues the ``flush`` fact (upstream
        ``AnalyticsEventsClient::flush``): the stream then releases the tool events it
        holds for code-mode enrichment. It is queued even when the queue is full."""
        self._record_flush_barrier()
        return await self._drain(timeout)

    async def _drain(self, timeout: float) -> bool:  # noqa: ASYNC109
        if self._sender is None:
            return self._tracker.pending() == 0
        failed_before = self._tracker.stats.failed
        deadline = time.monotonic() + timeout
        self._idle = True
        self._wake()
        while self._tracker.pending() or self._in_flight:
            if time.monotonic() >= deadline or self._sender.done():
                return False
            await asyncio.sleep(0.005)
        return self._tracker.stats.failed == failed_before

    async def close(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Stop taking facts, deliver what is queued within ``timeout``, then release the
        producer. Facts still undelivered are reported through ``on_delivery_error``
        (reason ``closed``). Returns True when everything was published."""
        if self._sender is None:
            return self.close_unstarted()
        # Upstream's app-server flushes its analytics at shutdown: held tool events go
        # (unless the last fact queued is that barrier already).
        if self._tracker.last_kind != "flush":
            self._record_flush_barrier()
        self._tracker.close()
        self._close_deadline = time.monotonic() + timeout
        delivered = await self._drain(timeout)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        leftover = self._tracker.take()
        if leftover:
            self._fail(leftover, "closed", "still queued when close() timed out")
        await self._transport.close()
        return delivered and not leftover

    def close_unstarted(self) -> bool:
        """:meth:`close` for a client that never started (nothing to wait for)."""
        self._tracker.close()
        leftover = self._tracker.take()
        if leftover:
            self._fail(leftover, "closed", "the client was closed before it started")
        return not leftover

    # -- sender -------------------------------------------------------------------------

    async def _send_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            batch = self._tracker.take()
            if not batch:
                self._idle = True
                if self._tracker.pending():
                    self._idle = False
                    continue
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            self._in_flight = len(batch)
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                self._fail(batch, "closed", "still being sent when close() timed out")
                raise
            except Exception as exc:  # a bug here must not kill the sender
                log.exception("analytics client sender failed")
                self._fail(batch, "rejected", f"{type(exc).__name__}: {exc}")
            finally:
                self._in_flight = 0

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        encoded: list[tuple[str, bytes]] = []
        sent: list[dict[str, Any]] = []
        for fact in batch:
            fact["fact_id"] = str(uuid.uuid4())
            if fact["kind"] == "skill_invoked":
                for invocation in fact["payload"]["invocations"]:
                    if isinstance(invocation, dict) and "resolved" not in invocation:
                        invocation["resolved"] = resolve_skill_path(
                            str(invocation.get("skill_path"))
                        )
            try:
                value = orjson.dumps(fact)
            except TypeError as exc:
                self._fail([fact], "unencodable", str(exc))
                continue
            refusal = _over_limit(value)
            if refusal is not None:
                self._fail([fact], "over_limit", str(refusal))
                continue
            encoded.append((fact["source"]["instance_id"], value))
            sent.append(fact)
        if not encoded:
            return
        groups = fact_record_groups(
            encoded,
            max_facts_per_record=self.settings.max_facts_per_record,
            max_record_bytes=self.settings.max_record_bytes,
        )
        records = [record for record, _ in groups]
        delivery_deadline = time.monotonic() + self.settings.delivery_timeout_s

        def deadline() -> float:  # close() may shorten it while we wait
            return min(delivery_deadline, self._close_deadline or delivery_deadline)

        def on_retry(exc: RetryablePublishError, attempt: int) -> None:
            self._tracker.stats.publish_retries += 1
            if attempt == 0:
                log.warning("analytics facts not published yet, retrying: %s", exc)

        try:
            await send_with_retry(self._transport, records, deadline=deadline, on_retry=on_retry)
        except PublishError as exc:
            # Report each record's facts by its own outcome: a record refused for good
            # does not make its acknowledged batchmates failures.
            outcomes = exc.per_record or (exc,) * len(groups)
            for (_, indices), outcome in zip(groups, outcomes, strict=True):
                facts = [sent[i] for i in indices]
                if outcome is None:
                    self._tracker.stats.published += len(facts)
                elif isinstance(outcome, RetryablePublishError):
                    self._fail(facts, "retries_exhausted", str(outcome))
                else:
                    self._fail(facts, "rejected", str(outcome))
        else:
            self._tracker.stats.published += len(sent)

    def _fail(self, facts: list[dict[str, Any]], reason: str, error: str) -> None:
        self._tracker.stats.failed += len(facts)
        log.warning(
            "analytics facts not delivered: %s", reason, extra={"facts": len(facts), "error": error}
        )
        if self._on_delivery_error is not None:
            try:
                self._on_delivery_error(DeliveryFailure(reason, error, facts))
            except Exception:  # the host's callback must not kill the sender
                log.exception("on_delivery_error callback failed")
