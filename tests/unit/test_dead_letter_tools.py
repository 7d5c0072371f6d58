"""The dead-letter tools' pure parts: moments, previews, what a redrive sends and skips,
markers that make a second redrive send nothing; offsets export and import."""

from __future__ import annotations

import orjson
import pytest

from codex_analytics.ops.dead_letters import (
    MARKER,
    DeadLetterSummary,
    EventsCheck,
    FactsCheck,
    Judge,
    Letter,
    LetterFilter,
    MarkerState,
    RedriveLedger,
    RedriveMarker,
    RedrivePlanner,
    Skip,
    Survey,
    markers_for,
    new_run_id,
    preview,
    rival_run,
    sample_lines,
    to_ranges,
)
from codex_analytics.ops.group_offsets import export_csv, import_csv
from codex_analytics.ops.moments import iso_ms, parse_duration, parse_moment
from codex_analytics.runtime.deadletter import dead_letter, fit
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

NOW_MS = 1_800_000_000_000


def test_durations_and_moments() -> None:
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5d") == 129_600
    assert parse_duration("PT2H") == 7200  # Kafka's --by-duration form
    assert parse_duration("P1DT30M") == 88_200
    for bad in ("", "2", "-2h", "h", "P", "soon", "2x"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    assert parse_moment("30m", now_ms=NOW_MS) == NOW_MS - 1_800_000
    assert parse_moment("1763798400000", now_ms=NOW_MS) == 1_763_798_400_000
    assert parse_moment("2026-11-22T08:00:00Z", now_ms=NOW_MS) == 1_795_334_400_000
    assert parse_moment("2026-11-22T09:00:00+01:00", now_ms=NOW_MS) == 1_795_334_400_000
    with pytest.raises(ValueError, match="give the time zone"):
        parse_moment("2026-11-22T08:00:00", now_ms=NOW_MS)
    with pytest.raises(ValueError, match="'yesterday' is not a time"):
        parse_moment("yesterday", now_ms=NOW_MS)
    assert iso_ms(1_795_334_400_123) == "2026-11-22T08:00:00.123Z"


def test_previews_are_one_escaped_capped_line_without_bearer_tokens() -> None:
    assert preview(b"plain") == "plain"
    assert preview(b"a\nb\x1b[31m\\") == "a\\nb\\x1b[31m\\\\"
    assert preview("caf\u00e9 \u2028".encode()) == "caf\\xe9 \\u2028"
    assert preview(b"\xff") == "\\ufffd"  # not UTF-8: replaced, never raw
    assert preview(b'{"echo":"Authorization: Bearer s3cr3t.tok"}') == (
        '{"echo":"Authorization: Bearer [redacted]"}'
    )
    long = preview(b"x" * 1000, 20)
    assert long == "x" * 20 + "... (1,000 bytes)"
    assert preview(None) == "(none)"


def _letter(
    offset: int,
    value: bytes,
    *,
    reason: str = "output_too_large",
    partition: int = 0,
    timestamp_ms: int = NOW_MS,
    topic: str = "facts",
    key: bytes | None = b"inst-1",
    limit: int = 1_000_000,
) -> Letter:
    letter = fit(
        dead_letter(
            value, key, reason=reason, stage="reduce", topic=topic, partition=3, offset=offset
        ),
        limit,
    )
    return Letter(partition, offset, timestamp_ms, letter.key, letter.value, tuple(letter.headers))


def _marker_letters(markers: list[RedriveMarker], first_offset: int) -> list[Letter]:
    """Markers as a redrive writes them, read back at ``first_offset``..."""
    letters = []
    for i, marker in enumerate(markers):
        value, headers = marker.encode()
        letter = Letter(
            marker.partition, first_offset + i, NOW_MS, b"redrive", value, tuple(headers)
        )
        letters.append(letter)
    return letters


FACTS = [orjson.dumps(f) for f in SessionGenerator(GeneratorConfig(instances=1, seed=3)).facts(3)]


def _judge(
    ledger: RedriveLedger | None = None, *, again: bool = False, limit: int = 1_000_000
) -> Judge:
    return Judge(
        FactsCheck(limit),
        ledger or RedriveLedger(),
        dlq_topic="facts.dlq",
        target="facts",
        max_record_bytes=limit,
        again=again,
    )


def test_a_redrive_sends_the_fixable_and_says_why_it_skips_the_rest() -> None:
    letters = [
        _letter(0, FACTS[0]),
        _letter(1, b"not json", reason="not_json"),  # still invalid
        _letter(2, FACTS[1], topic="elsewhere"),  # dead-lettered from another topic
        _letter(3, FACTS[2] + b" " * 3000, limit=1024),  # cut to fit: the original is lost
        _letter(4, FACTS[2], reason="state_too_large", partition=1),
        _letter(5, FACTS[2], timestamp_ms=NOW_MS - 10),  # before --since
    ]
    assert letters[3].truncated
    planner = RedrivePlanner(_judge(), LetterFilter(since_ms=NOW_MS))
    for letter in letters:
        planner.feed(letter)
    plan = planner.plan()
    assert plan.send == {0: [0], 1: [4]}
    assert plan.by_reason == {"output_too_large": 1, "state_too_large": 1}
    assert plan.considered == 5
    assert plan.skipped == {
        (Skip.STILL_INVALID, "not_json"): 1,
        (Skip.OTHER_SOURCE, "elsewhere"): 1,
        (Skip.TRUNCATED, "value cut to fit"): 1,
    }
    assert plan.describe_skips()[0] == "truncated 1 (value cut to fit 1)"
    only = RedrivePlanner(_judge(), LetterFilter(reasons=frozenset({"state_too_large"})))
    for letter in letters:
        only.feed(letter)
    assert only.plan().send == {1: [4]}


def test_the_current_limits_decide_what_is_still_invalid() -> None:
    big = _letter(0, FACTS[0] + b" " * 2000)  # JSON with trailing spaces: a valid fact
    assert _judge(limit=100_000).content(big) is None
    assert _judge(limit=2048).content(big) == (Skip.STILL_INVALID, "too_large")
    # The redrive headers count against the one record limit too.
    near = _letter(0, FACTS[0] + b" " * (1400 - len(FACTS[0])))
    assert _judge(limit=1500).content(near) == (
        Skip.TOO_LARGE,
        "over 1500 bytes with the redrive headers",
    )


def _event_records() -> list[tuple[bytes, bytes]]:
    """Events-topic records as the stream writes them."""
    from streams.processor import FactProcessor, SourceRecord

    processor, states, records = FactProcessor(), {}, []
    facts = SessionGenerator(GeneratorConfig(instances=1, seed=5)).facts(40)
    for offset, fact in enumerate(facts):
        batch = processor.process(
            [SourceRecord("facts", 0, offset, b"k", orjson.dumps(fact))],
            lambda i, _p: states.get(i),
        )
        states.update(batch.states)
        records += batch.events
    return records


def test_events_are_checked_with_the_sinks_decoder_and_body_limit() -> None:
    key, value = _event_records()[0]
    event_bytes = len(orjson.dumps(orjson.loads(value)["event"]))
    letter = _letter(0, value, reason="http_400", key=key)
    assert EventsCheck(batch_max_bytes=1024 * 1024).problem(letter) is None
    assert (
        EventsCheck(batch_max_bytes=event_bytes).problem(letter) == "too_large"
    )  # + {"events":[]}
    assert EventsCheck(1024).problem(_letter(0, b"{", reason="not_json")) == "not_json"
    assert EventsCheck(1024).problem(_letter(0, b"[]", reason="wrong_type")) == "wrong_type"


def test_a_second_redrive_of_the_same_range_sends_nothing() -> None:
    letters = [_letter(offset, FACTS[offset % 3]) for offset in range(4)]
    planner = RedrivePlanner(_judge(), LetterFilter())
    for letter in letters:
        planner.feed(letter)
    first = planner.plan()
    assert first.send == {0: [0, 1, 2, 3]}
    run = new_run_id(NOW_MS, b"\x01\x02\x03")
    assert run == "20270115T080000Z-010203"
    started = markers_for(run, MarkerState.STARTED, NOW_MS, "facts", first.send)
    done = markers_for(run, MarkerState.DONE, NOW_MS, "facts", first.send)
    letters += _marker_letters([*started, *done], 4)
    letters.append(_letter(6, FACTS[0]))  # dead-lettered after the redrive

    again = RedrivePlanner(_judge(), LetterFilter())
    for letter in letters:
        again.feed(letter)
    second = again.plan()
    assert second.send == {0: [6]}  # only the new one
    assert second.skipped == {(Skip.ALREADY_SENT, run): 4}
    (record,) = again.ledger.runs()
    assert (record.run, record.claimed, record.done, record.target) == (run, 4, True, "facts")

    forced = RedrivePlanner(_judge(again=True), LetterFilter())
    for letter in letters:
        forced.feed(letter)
    assert forced.plan().send == {0: [0, 1, 2, 3, 6]}

    # A run that died between its claim and its end: its letters are held back, named.
    unfinished = RedrivePlanner(_judge(), LetterFilter())
    for letter in [*letters[:4], *_marker_letters(started, 4)]:
        unfinished.feed(letter)
    assert unfinished.plan().skipped == {(Skip.UNFINISHED, run): 4}
    assert not unfinished.ledger.runs()[0].done


def test_a_limited_redrive_leaves_the_rest_for_the_next_run() -> None:
    planner = RedrivePlanner(_judge(), LetterFilter(), limit=2)
    for offset in range(5):
        planner.feed(_letter(offset, FACTS[0], partition=offset % 2))
    plan = planner.plan()
    assert plan.send == {0: [0, 2]}  # by partition, then offset
    assert (plan.left_over, plan.considered) == (3, 5)


def test_markers_split_their_ranges_and_claim_each_offset() -> None:
    assert to_ranges([7, 0, 1, 3, 5, 1]) == [(0, 1), (3, 3), (5, 5), (7, 7)]
    markers = markers_for(
        "r", MarkerState.STARTED, NOW_MS, "facts", {2: [0, 1, 3, 5, 7]}, ranges_per_marker=2
    )
    assert [m.ranges for m in markers] == [[(0, 1), (3, 3)], [(5, 5), (7, 7)]]
    ledger = RedriveLedger()
    for letter in _marker_letters(markers, 100):
        assert letter.is_marker
        assert ledger.take(letter)
    claimed = [o for o in range(9) if ledger.claim(2, o) is not None]
    assert claimed == [0, 1, 3, 5, 7]
    assert ledger.claim(0, 0) is None  # another partition
    assert ledger.runs()[0].claimed == 5
    assert not ledger.take(_letter(0, b"x"))
    garbage = Letter(0, 1, NOW_MS, None, b"not a marker", ((MARKER, b"started"),))
    assert ledger.take(garbage)  # a marker header: never counted as a letter, even unreadable


def test_show_counts_letters_by_reason_not_markers_and_escapes_samples() -> None:
    letters = [
        _letter(0, FACTS[0], partition=0, timestamp_ms=NOW_MS - 5),
        _letter(1, b"\x1b[2J evil\nline", reason="not_json", partition=1),
        _letter(2, FACTS[1], partition=0),
        _letter(3, FACTS[2], partition=1, timestamp_ms=NOW_MS + 5),
        *_marker_letters(markers_for("r", MarkerState.DONE, NOW_MS, "facts", {0: [0]}), 4),
    ]
    survey = Survey(LetterFilter(), DeadLetterSummary(samples=2))
    for letter in letters:
        survey.feed(letter)
    summary = survey.summary
    assert summary.total == 4
    counted = summary.reasons["output_too_large"]
    assert (counted.count, counted.first_ms, counted.last_ms) == (3, NOW_MS - 5, NOW_MS + 5)
    assert counted.source_partitions == {3: 3}
    assert len(counted.samples) == 2
    assert summary.partitions == {0: 2, 1: 2}
    lines = sample_lines(summary.reasons["not_json"].samples[0])
    assert lines[-1] == "  value (14 bytes): \\x1b[2J evil\\nline"
    assert all("\x1b" not in line and "\n" not in line for line in lines)
    report = summary.to_json()
    assert list(report["reasons"]) == ["output_too_large", "not_json"]  # type: ignore[call-overload]
    limited = Survey(LetterFilter(reasons=frozenset({"output_too_large"})), DeadLetterSummary(), 1)
    for letter in letters:
        limited.feed(letter)
    assert (limited.summary.total, limited.beyond_limit) == (1, 2)


def test_offsets_export_and_import() -> None:
    text = export_csv("t.facts", {1: 7, 0: 12})
    assert text == "topic,partition,offset\nt.facts,0,12\nt.facts,1,7\n"
    assert import_csv(text, "t.facts") == {0: 12, 1: 7}
    assert import_csv("t.facts,3,4\n\n", "t.facts") == {3: 4}  # kafka-consumer-groups' export
    for bad, message in [
        ("t.other,0,1", "line 1: topic 't.other', but the reset is of t.facts"),
        ("topic,partition,offset\nt.facts,0", "line 2: expected topic,partition,offset"),
        ("t.facts,0,-1", "line 1: expected"),
        ("t.facts,0,1\nt.facts,0,2", "line 2: partition 0 given twice"),
        ("topic,partition,offset\n", "holds no topic,partition,offset line"),
    ]:
        with pytest.raises(ValueError, match=message):
            import_csv(bad, "t.facts", source="plan.csv")


def test_of_two_redrives_claiming_the_same_letters_at_once_only_the_first_goes_on() -> None:
    claims = {0: [3, 4], 1: [9]}
    mine = markers_for("mine", MarkerState.STARTED, NOW_MS, "facts", claims)
    theirs = markers_for("theirs", MarkerState.STARTED, NOW_MS, "facts", {0: [4, 5]})
    other = markers_for("other", MarkerState.STARTED, NOW_MS, "facts", {0: [7]})
    # Partition 0 after the plan's read (offset 20): theirs at 20, mine at 21.
    seen = _marker_letters([*theirs, mine[0]], 20) + _marker_letters(other, 19)
    assert rival_run("mine", claims, {0: 21, 1: 40}, seen) == "theirs"
    assert rival_run("theirs", {0: [4, 5]}, {0: 20}, seen) is None  # it came first
    assert rival_run("mine", claims, {0: 19, 1: 40}, seen) is None  # mine first
    cancelled = markers_for("theirs", MarkerState.CANCELLED, NOW_MS, "facts", {0: [4, 5]})
    assert rival_run("mine", claims, {0: 21}, seen + _marker_letters(cancelled, 22)) is None
    # A cancelled run claims nothing.
    ledger = RedriveLedger()
    for letter in _marker_letters([*theirs, *cancelled], 0):
        ledger.take(letter)
    assert ledger.claim(0, 4) is None
    assert ledger.runs()[0].state == "cancelled"


def test_a_forged_source_or_reason_cannot_break_a_line_or_show_a_token() -> None:
    """Headers are whatever the record carried: escaped and redacted like the value."""
    from codex_analytics.ops.dead_letters import sample_json, sample_lines

    forged = Letter(
        0,
        1,
        NOW_MS,
        None,
        b"{}",
        (
            ("error.reason", b"not_json\nFORGED Bearer tokREASON"),
            ("source.topic", b"analytics.facts\n\x1b[31mFORGED Bearer tokSOURCE"),
            ("source.partition", b"0"),
            ("source.offset", b"1"),
        ),
    )
    shown = "\n".join(sample_lines(forged)) + str(sample_json(forged))
    assert "tokSOURCE" not in shown
    assert "tokREASON" not in shown
    assert "\x1b" not in shown
    assert all("FORGED" not in line or "\\n" in line for line in sample_lines(forged))
