"""Hostile fact records, drawn by Hypothesis from valid ones: random bytes, truncations,
wrong types, deep nesting, huge numbers and huge strings.

Hypothesis here is a generator, not a test runner: :func:`draw_records` runs a
derandomized ``@given`` for its examples only, so the same records come out every run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

#: Stands for a value whose JSON text is written raw (numbers, nestings orjson cannot
#: produce), replaced after encoding.
_RAW = "\x00raw\x00"
_RAW_ENCODED = orjson.dumps(_RAW)

wrong_value: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, 0, -1, 1.5, "", "x", [], [1, "a"], {}, {"a": {}}]
)
huge_number = st.one_of(
    st.integers(19, 5_000).map(lambda digits: b"9" * digits),
    st.integers(19, 5_000).map(lambda digits: b"-1" + b"0" * digits),
    st.sampled_from(
        [
            b"18446744073709551616",  # 2**64
            b"-9223372036854775809",  # below i64
            b"1e400",
            b"-1e400",
            b"1.7976931348623157e309",
            b"1E+999999999",
            b"NaN",
            b"Infinity",
            b"0.0000000000000000000000000000001",
        ]
    ),
)


def _mostly(common: list[int], rare: int) -> st.SearchStrategy[int]:
    """One of ``common``, and ``rare`` one time in a hundred (big records cost the
    broker and the clock: a few make the point)."""
    # Not 0 or 99 for the rare one: Hypothesis draws the bounds far more often.
    return st.integers(0, 99).map(lambda n: rare if n == 50 else common[n % len(common)])


nesting_depth = _mostly([64, 300, 1_100], 30_000)  # orjson and the stdlib stop at 1024
huge_length = _mostly([100, 2_000, 10_000], 300_000)


def hostile_record(bases: list[bytes], filler: str) -> st.SearchStrategy[bytes]:
    """One hostile record made from one of ``bases`` (valid facts). ``filler`` is the
    character of huge strings, so that two runs' invented instance ids never meet.

    Positions (which base, which key path, where to cut) are drawn as plain integers
    and reduced modulo the choices: ``flatmap`` would cost Hypothesis several times as
    much per record.
    """
    which = st.integers(0, len(bases) - 1)
    anywhere = st.integers(0, 2**31)

    def at_a_path(value: st.SearchStrategy[Any], raw: bool = False) -> st.SearchStrategy[bytes]:
        change = _raw_at if raw else _replaced
        return st.builds(
            lambda index, where, new: change(bases[index], _pick(bases[index], where), new),
            which,
            anywhere,
            value,
        )

    truncated = st.builds(lambda i, cut: bases[i][: cut % len(bases[i])], which, anywhere)
    nested = st.builds(_nested, nesting_depth, st.booleans())
    huge_string = huge_length.map(lambda n: filler * n)
    kinds: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=600),
        truncated,
        at_a_path(wrong_value),
        at_a_path(wrong_value),
        at_a_path(nested, raw=True),
        at_a_path(huge_number, raw=True),
        at_a_path(huge_string),
    ]
    return st.one_of(kinds)


def draw_records(strategy: st.SearchStrategy[bytes], count: int) -> list[bytes]:
    """``count`` examples of ``strategy`` (fewer if Hypothesis runs out of new ones)."""
    drawn: list[bytes] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(record: bytes) -> None:
        drawn.append(record)

    collect()
    return drawn


@cache
def _paths(fact: bytes) -> list[tuple[str, ...]]:
    """Every key path of the fact's JSON object, containers included."""
    out: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                out.append((*path, key))
                walk(value, (*path, key))

    walk(orjson.loads(fact), ())
    return out


def _pick(fact: bytes, where: int) -> tuple[str, ...]:
    paths = _paths(fact)
    return paths[where % len(paths)]


def _replaced(fact: bytes, path: tuple[str, ...], value: Any) -> bytes:
    return orjson.dumps(_set(orjson.loads(fact), path, lambda _old: value))


def _raw_at(fact: bytes, path: tuple[str, ...], raw: bytes) -> bytes:
    return _replaced(fact, path, _RAW).replace(_RAW_ENCODED, raw, 1)


def _set(obj: dict[str, Any], path: tuple[str, ...], change: Callable[[Any], Any]) -> Any:
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = change(node[path[-1]])
    return obj


def _nested(depth: int, arrays: bool) -> bytes:
    if arrays:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth
