"""Reducer properties: instance isolation, save/restore transparency, replay idempotence."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_analytics.contract import FactEnvelope, encode_event, fact_from_json
from streams.reducer import InstanceState, Reducer, state_packing
from tests.factories import Instance, app, skill


@st.composite
def session(draw: st.DrawFn, instance_id: str) -> list[dict[str, Any]]:
    """A plausible, sometimes broken, fact sequence of one instance.

    Turns get a random subset of their facts in a random order, so the waiting, late and
    drop paths of the turn rule all occur; request ids are reused across connections.
    """
    inst = Instance(instance_id, step_ms=draw(st.integers(1, 5000)))
    facts: list[dict[str, Any]] = []
    connections = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True))
    threads: list[str] = []
    for conn in connections:
        if draw(st.booleans()) or conn == connections[0]:
            facts.append(
                inst.initialize(
                    conn,
                    capabilities=draw(st.sampled_from(["absent", None, {"experimentalApi": True}])),
                )
            )
    for n in range(draw(st.integers(0, 6))):
        conn = draw(st.sampled_from(connections))
        roll = draw(st.integers(0, 9))
        thread_id = f"thread-{draw(st.integers(0, 3))}"
        turn_id = f"turn-{n}"
        rid: int | str = draw(st.integers(1, 3) | st.sampled_from(["1", "2"]))
        if roll <= 1:
            method = draw(st.sampled_from(["thread/start", "thread/resume", "thread/fork"]))
            source = draw(
                st.sampled_from(
                    [
                        "cli",
                        "appServer",
                        {"subAgent": "review"},
                        {"subAgent": {"other": "guardian"}},
                    ]
                )
            )
            facts.append(inst.thread_response(conn, thread_id, method=method, source=source))
            threads.append(thread_id)
        elif roll <= 5:
            parts = [
                inst.turn_start_request(conn, rid, thread_id, images=draw(st.integers(0, 2))),
                inst.turn_start_response(conn, rid, turn_id),
                inst.resolved_config(turn_id, thread_id),
                inst.token_usage(turn_id, thread_id),
                inst.turn_started(turn_id, thread_id),
                inst.turn_completed(
                    turn_id,
                    thread_id,
                    status=draw(st.sampled_from(["completed", "failed", "inProgress"])),
                ),
            ]
            if draw(st.booleans()):  # the common case: every part, in upstream order
                keep = list(range(len(parts)))
            else:
                keep = draw(st.lists(st.sampled_from(range(len(parts))), min_size=3, max_size=7))
            for steer in range(draw(st.integers(0, 2))):  # steers accepted mid-turn
                steer_rid = f"s{n}-{steer}"
                at = draw(st.integers(0, len(keep)))
                keep[at:at] = [len(parts), len(parts) + 1]
                parts += [
                    inst.turn_steer_request(conn, steer_rid, thread_id, turn_id),
                    inst.turn_steer_response(conn, steer_rid, turn_id),
                ]
            facts.extend(parts[i] for i in keep)
        elif roll == 6:
            facts.append(
                inst.turn_steer_request(conn, rid, thread_id, f"turn-{max(n - 1, 0)}", images=1)
            )
            if draw(st.booleans()):
                facts.append(inst.turn_steer_response(conn, rid, f"turn-{max(n - 1, 0)}"))
            else:
                facts.append(
                    inst.error_response(
                        conn,
                        rid,
                        draw(
                            st.sampled_from(
                                [None, {"input": "empty"}, {"turn_steer": "no_active_turn"}]
                            )
                        ),
                    )
                )
        elif roll == 7:
            facts.append(
                draw(st.sampled_from([inst.guardian_review(thread_id), inst.compaction(thread_id)]))
            )
        else:
            facts.append(
                draw(
                    st.sampled_from(
                        [
                            inst.skill_invoked(
                                skill(),
                                skill(
                                    "x",
                                    scope="repo",
                                    repo_root="/r",
                                    repo_url="u",
                                    path="/r/s/SKILL.md",
                                ),
                            ),
                            inst.app_mentioned(app("calendar"), app(None, None, None)),
                            inst.app_used(draw(st.sampled_from(["drive", None]))),
                            inst.hook_run(draw(st.sampled_from(["running", "completed"]))),
                            inst.plugin_used(),
                            inst.plugin_state(
                                draw(st.sampled_from(["installed", "disabled"])),
                                remote_plugin_id=draw(st.none() | st.just("plugins~X")),
                            ),
                            inst.subagent_thread_started(
                                subagent_source={
                                    "thread_spawn": {
                                        "parent_thread_id": "11111111-1111-1111-1111-111111111111"
                                    }
                                }
                            ),
                        ]
                    )
                )
            )
    # Facts were built out of order (and some twice): number them in stream order, as a
    # producer would, so that reordering tests the rules rather than the seq guard.
    numbered = []
    for index, fact in enumerate(facts):
        fact = {**fact, "seq": index + 1, "fact_id": f"{instance_id}-{index + 1}"}
        fact["observed_at_ms"] = facts[0]["observed_at_ms"] + index * inst.step_ms
        numbered.append(fact)
    return numbered


def _decoded(facts: list[dict[str, Any]]) -> list[FactEnvelope]:
    return [fact_from_json(f) for f in facts]


def _run(
    facts: list[FactEnvelope],
    *,
    restore_at: frozenset[int] = frozenset(),
    compact: bool = False,
) -> dict[str, list[bytes]]:
    """Events per instance (encoded), optionally restoring every state from bytes (format
    3, or the compact format 6) at some steps."""
    reducer = Reducer()
    states: dict[str, InstanceState] = {}
    out: dict[str, list[bytes]] = {}
    for step, fact in enumerate(facts):
        if step in restore_at:
            states = {k: _restored(s, compact=compact) for k, s in states.items()}
        state = states.setdefault(fact.instance_id, InstanceState())
        events = reducer.apply(state, fact).events
        out.setdefault(fact.instance_id, []).extend(encode_event(e) for e in events)
    return out


def _restored(state: InstanceState, *, compact: bool) -> InstanceState:
    saved = state.to_bytes(compact=compact)
    restored = InstanceState.from_bytes(saved)
    # Exact both ways: the same bytes in either format, whichever it was read from.
    assert restored.to_bytes(compact=compact) == saved
    assert restored.to_bytes() == state.to_bytes()
    assert restored.to_bytes(compact=True) == state.to_bytes(compact=True)
    if compact:  # what format 6 packs (5, or 4 for Profile J) is read on its own too
        inner = InstanceState.from_bytes(state_packing.unpack(saved))
        assert inner.to_bytes() == state.to_bytes()
    return restored


@st.composite
def interleaved(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    sessions = [draw(session(f"inst-{i}")) for i in range(draw(st.integers(2, 4)))]
    cursors = [0] * len(sessions)
    merged: list[dict[str, Any]] = []
    while any(c < len(s) for c, s in zip(cursors, sessions, strict=True)):
        live = [i for i, s in enumerate(sessions) if cursors[i] < len(s)]
        pick = draw(st.sampled_from(live))
        merged.append(sessions[pick][cursors[pick]])
        cursors[pick] += 1
    return sessions, merged


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(interleaved())
def test_interleaving_instances_gives_each_instance_its_own_output(
    case: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    sessions, merged = case
    together = _run(_decoded(merged))
    for facts in sessions:
        alone = _run(_decoded(facts))
        instance_id = facts[0]["source"]["instance_id"]
        assert together.get(instance_id, []) == alone.get(instance_id, [])


@SETTINGS
@given(interleaved(), st.data())
def test_save_restore_at_any_point_changes_nothing(
    case: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    _, merged = case
    facts = _decoded(merged)
    points = data.draw(st.frozensets(st.integers(0, max(len(facts) - 1, 0))))
    assert _run(facts, restore_at=points) == _run(facts)


@SETTINGS
@given(interleaved(), st.data())
def test_compact_state_bytes_restore_exactly_at_any_point(
    case: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    _, merged = case
    facts = _decoded(merged)
    points = data.draw(st.frozensets(st.integers(0, max(len(facts) - 1, 0))))
    assert _run(facts, restore_at=points, compact=True) == _run(facts)


@SETTINGS
@given(interleaved(), st.data())
def test_duplicated_and_replayed_facts_change_nothing(
    case: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    _, merged = case
    with_replays: list[dict[str, Any]] = []
    for index, fact in enumerate(merged):
        with_replays.append(fact)
        if data.draw(st.integers(0, 3)) == 0:  # redeliver this fact or an earlier one
            with_replays.append(merged[data.draw(st.integers(0, index))])
    if merged and data.draw(st.booleans()):  # a whole replay from the start
        with_replays.extend(merged)
    assert _run(_decoded(with_replays)) == _run(_decoded(merged))


@SETTINGS
@given(interleaved())
def test_every_session_emits_only_valid_events(
    case: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    from codex_analytics.contract import decode_event

    _, merged = case
    for events in _run(_decoded(merged)).values():
        for data in events:
            assert encode_event(decode_event(data)) == data
