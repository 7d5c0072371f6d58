"""A tiny schema engine: JSON values <-> slotted dataclasses, with field-path errors.

Models are plain ``@dataclass(slots=True)`` classes. Their type hints *are* the schema:

* ``str``, ``bool``, ``int`` (signed 64-bit), :data:`U64`, ``float``;
* ``Annotated[str, MaxLength(n)]`` for a string of at most ``n`` characters (``too_long``);
* ``Literal["a", "b"]`` for closed enums (an unknown string is ``unknown_enum_value``);
* ``X | None`` for nullable values, ``list[X]``, nested model classes;
* :data:`JsonObject` (any object, kept as is) and :data:`JsonValue` (anything).

Field metadata tunes the wire form: :func:`wire_key` renames, :func:`absent_ok` lets the key
be missing, :func:`derived` marks a field that is computed by ``_post_decode`` and never on
the wire. A class with ``__protocol_object__ = True`` is an upstream app-server object: it
keeps the whole JSON object in its ``raw`` field (unknown keys tolerated and re-encoded
unchanged) and extracts only the fields the pipeline reads.

Decoders are compiled once per class into closures; paths are only built on the error
path (each container prefixes its key as the error travels up), so the happy path costs
one dict lookup and one type check per field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import DecodeError, DecodeReason, describe

T = TypeVar("T")

#: Any JSON object, kept as decoded (key order preserved).
JsonObject = dict[str, Any]
#: Any JSON value.
JsonValue = Any


class Unsigned:
    """Marker for :data:`U64`."""


U64 = Annotated[int, Unsigned]
"""Unsigned 64-bit integer (upstream ``u64``)."""


class MaxLength:
    """Marker of a bounded string: ``Annotated[str, MaxLength(n)]`` accepts at most ``n``
    characters (``len``, so at most ``4 n`` UTF-8 bytes). Longer is ``too_long``."""

    __slots__ = ("chars",)

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def __repr__(self) -> str:
        return f"MaxLength({self.chars})"


_I64_MIN, _I64_MAX, _U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

Checker = Callable[[Any], Any]


def wire_key(name: str, **kwargs: Any) -> Any:
    """A field whose JSON key differs from the attribute name (e.g. camelCase)."""
    return dataclasses.field(metadata={"key": name}, **kwargs)


def absent_ok(default: Any = None, *, key: str | None = None) -> Any:
    """A field whose key may be missing on the wire; it then takes ``default``."""
    meta: dict[str, Any] = {"absent_ok": True}
    if key is not None:
        meta["key"] = key
    return dataclasses.field(default=default, metadata=meta)


def derived(default: Any = None) -> Any:
    """A field computed by ``_post_decode`` from the wire fields; never encoded."""
    return dataclasses.field(default=default, metadata={"wire": False}, repr=False)


def wrong_type(expected: str, value: Any) -> DecodeError:
    return DecodeError(DecodeReason.WRONG_TYPE, "", f"expected {expected}, got {describe(value)}")


# -- checkers for leaf types ---------------------------------------------------------


def _check_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise wrong_type("string", value)


def too_long(length: int, limit: int) -> DecodeError:
    return DecodeError(
        DecodeReason.TOO_LONG, "", f"{length} characters exceeds the limit of {limit}"
    )


def _bounded_str_checker(limit: int) -> Checker:
    def check(value: Any) -> str:
        if type(value) is not str:
            raise wrong_type("string", value)
        if len(value) > limit:
            raise too_long(len(value), limit)
        return value

    return check


def _max_length(markers: list[Any]) -> int | None:
    for marker in markers:
        if isinstance(marker, MaxLength):
            return marker.chars
    return None


def _check_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise wrong_type("boolean", value)


def _check_i64(value: Any) -> int:
    if type(value) is int:
        if _I64_MIN <= value <= _I64_MAX:
            return value
        raise DecodeError(DecodeReason.INVALID_VALUE, "", "integer out of the signed 64-bit range")
    raise wrong_type("integer", value)


def _check_u64(value: Any) -> int:
    if type(value) is int:
        if 0 <= value <= _U64_MAX:
            return value
        raise DecodeError(
            DecodeReason.INVALID_VALUE, "", "expected a non-negative integer (unsigned 64-bit)"
        )
    raise wrong_type("non-negative integer", value)


def _check_float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise wrong_type("number", value)


def _check_object(value: Any) -> JsonObject:
    if type(value) is dict:
        return value
    raise wrong_type("object", value)


def _check_any(value: Any) -> Any:
    return value


def _check_null(value: Any) -> None:
    if value is None:
        return None
    raise wrong_type("null", value)


def _literal_checker(allowed: tuple[Any, ...]) -> Checker:
    allowed_set = frozenset(allowed)
    shown = ", ".join(repr(a) for a in allowed)

    def check(value: Any) -> Any:
        if type(value) is str:
            if value in allowed_set:
                return value
            raise DecodeError(
                DecodeReason.UNKNOWN_ENUM_VALUE, "", f"{value[:64]!r} is not one of {shown}"
            )
        raise wrong_type(f"one of {shown}", value)

    return check


def _nullable(inner: Checker) -> Checker:
    def check(value: Any) -> Any:
        if value is None:
            return None
        return inner(value)

    return check


def _union(options: list[Checker], expected: str) -> Checker:
    def check(value: Any) -> Any:
        for option in options:
            try:
                return option(value)
            except DecodeError as err:
                if err.reason is not DecodeReason.WRONG_TYPE:
                    raise
        raise wrong_type(expected, value)

    return check


def _list_of(inner: Checker) -> Checker:
    def check(value: Any) -> list[Any]:
        if type(value) is not list:
            raise wrong_type("array", value)
        out = []
        for index, item in enumerate(value):
            try:
                out.append(inner(item))
            except DecodeError as err:
                raise err.within(index) from None
        return out

    return check


_TYPE_NAMES: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


def _checker_for(tp: Any) -> Checker:
    if tp is str:
        return _check_str
    if tp is bool:
        return _check_bool
    if tp is int:
        return _check_i64
    if tp is float:
        return _check_float
    if tp is Any:
        return _check_any
    if tp is None or tp is type(None):
        return _check_null
    origin = get_origin(tp)
    if origin is Annotated:
        base, *markers = get_args(tp)
        if base is int and Unsigned in markers:
            return _check_u64
        limit = _max_length(markers)
        if base is str and limit is not None:
            return _bounded_str_checker(limit)
        return _checker_for(base)
    if origin is Literal:
        return _literal_checker(get_args(tp))
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        nullable = len(args) != len(get_args(tp))
        if len(args) == 1:
            inner = _checker_for(args[0])
        else:
            expected = " or ".join(
                _TYPE_NAMES.get(a, getattr(a, "__name__", "value")) for a in args
            )
            inner = _union([_checker_for(a) for a in args], expected)
        return _nullable(inner) if nullable else inner
    if origin is list:
        (item,) = get_args(tp)
        return _list_of(_checker_for(item))
    if origin is dict or tp is dict:
        return _check_object
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return decoder_for(tp)
    raise TypeError(f"schema: unsupported type {tp!r}")


# -- model decoders --------------------------------------------------------------------

_DECODERS: dict[type, Callable[[Any], Any]] = {}


def decoder_for(cls: type[T]) -> Callable[[Any], T]:
    """The compiled decoder of a model class: JSON value -> instance, or DecodeError."""
    try:
        return _DECODERS[cls]
    except KeyError:
        pass
    # Register a forwarding stub first so self-referencing models compile.
    compiled: list[Callable[[Any], Any]] = []

    def forward(value: Any) -> Any:
        return compiled[0](value)

    _DECODERS[cls] = forward
    decoder = _compile_decoder(cls)
    compiled.append(decoder)
    _DECODERS[cls] = decoder
    return decoder


def decode_within(cls: type[T], value: Any, key: str) -> T:
    """``value`` decoded as ``cls``, an error naming its path below ``key``: for a view
    that a payload decodes from one of its own fields (a method's params or result)."""
    try:
        return decoder_for(cls)(value)
    except DecodeError as err:
        raise err.within(key) from None


def _inline_invalid(tp: Any, var: str, names: dict[str, Any], tag: str) -> str | None:
    """A Python expression that is true when ``var`` is *not* valid for ``tp``, for the
    leaf types that can be checked inline; None when a checker call is needed."""
    if tp is str:
        return f"type({var}) is not str"
    if tp is bool:
        return f"type({var}) is not bool"
    if tp is int:
        return f"(type({var}) is not int or not {_I64_MIN} <= {var} <= {_I64_MAX})"
    if tp is None or tp is type(None):
        return f"{var} is not None"
    if tp is Any:
        return "False"
    if tp is dict or get_origin(tp) is dict:
        return f"type({var}) is not dict"
    origin = get_origin(tp)
    if origin is Annotated:
        base, *markers = get_args(tp)
        if base is int and Unsigned in markers:
            return f"(type({var}) is not int or not 0 <= {var} <= {_U64_MAX})"
        limit = _max_length(markers)
        if base is str and limit is not None:
            return f"(type({var}) is not str or len({var}) > {limit})"
        return _inline_invalid(base, var, names, tag)
    if origin is Literal and all(type(a) is str for a in get_args(tp)):
        names[f"L_{tag}"] = frozenset(get_args(tp))
        return f"(type({var}) is not str or {var} not in L_{tag})"
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) != len(get_args(tp)):
            inner = _inline_invalid(args[0], var, names, tag)
            if inner is not None:
                return f"({var} is not None and {inner})"
    return None


#: What a decoder reads for an absent key (never a JSON value).
_ABSENT = object()


def _compile_decoder(cls: type[T]) -> Callable[[Any], T]:
    """Generate straight-line Python for one model (as attrs and cattrs do): inline type
    checks for leaf fields, a call for nested ones, and the slow checker only to build
    the error once a check has failed."""
    hints = typing.get_type_hints(cls, include_extras=True)
    protocol = getattr(cls, "__protocol_object__", False)
    post_decode = getattr(cls, "_post_decode", None)
    names: dict[str, Any] = {
        "cls": cls,
        "DecodeError": DecodeError,
        "wrong_type": wrong_type,
        "missing": _missing,
        "post_decode": post_decode,
        "ABSENT": _ABSENT,
    }
    checkers: list[Checker] = []
    keys: list[str] = []
    lines = [
        "def decode(value):",
        "    if type(value) is not dict:",
        "        raise wrong_type('object', value)",
    ]
    arguments = ["raw=value"] if protocol else []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("wire", True) is False or (protocol and f.name == "raw"):
            continue
        i = len(checkers)
        key = f.metadata.get("key", f.name)
        checkers.append(_checker_for(hints[f.name]))
        keys.append(key)
        var = f"v{i}"
        names[f"K{i}"] = key
        names[f"C{i}"] = checkers[i]
        names[f"D{i}"] = f.default
        if f.metadata.get("absent_ok", False):
            # A lookup with a default, not a KeyError caught: an absent key is the
            # common case of such a field, and an exception costs ~0.5 µs per decode.
            lines += [
                f"    {var} = value.get(K{i}, ABSENT)",
                f"    if {var} is ABSENT:",
                f"        {var} = D{i}",
            ]
        else:
            lines += [
                "    try:",
                f"        {var} = value[K{i}]",
                "    except KeyError:",
                f"        raise missing(K{i}) from None",
            ]
        invalid = _inline_invalid(hints[f.name], var, names, str(i))
        if invalid is None:
            lines += [
                "    else:",
                "        try:",
                f"            {var} = C{i}({var})",
                "        except DecodeError as err:",
                f"            raise err.within(K{i}) from None",
            ]
        elif invalid != "False":
            lines += [
                "    else:",
                f"        if {invalid}:",
                f"            raise fail({i}, {var})",
            ]
        arguments.append(f"{f.name}={var}")
    names["fail"] = _failure_builder(tuple(checkers), tuple(keys))
    if post_decode is None:
        lines.append(f"    return cls({', '.join(arguments)})")
    else:
        lines += [
            f"    instance = cls({', '.join(arguments)})",
            "    post_decode(instance)",
            "    return instance",
        ]
    source = "\n".join(lines)
    exec(compile(source, f"<decoder {cls.__qualname__}>", "exec"), names)
    decoder: Callable[[Any], T] = names["decode"]
    return decoder


def _missing(key: str) -> DecodeError:
    return DecodeError(DecodeReason.MISSING_KEY, key, "required key is missing")


def _failure_builder(
    checkers: tuple[Checker, ...], keys: tuple[str, ...]
) -> Callable[[int, Any], DecodeError]:
    """The error for field ``index`` whose inline check failed: re-run its full checker,
    which knows how to describe the problem."""

    def fail(index: int, value: Any) -> DecodeError:
        try:
            checkers[index](value)
        except DecodeError as err:
            return err.within(keys[index])
        return DecodeError(DecodeReason.INTERNAL, keys[index], "inline check and checker disagree")

    return fail


# -- encoding --------------------------------------------------------------------------

_ENCODERS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def to_wire(value: Any) -> Any:
    """Model -> plain JSON value, in declaration order, without derived fields.

    Protocol objects encode as their ``raw`` object. A field declared with
    :func:`absent_ok` and a ``None`` default is left out when it is ``None``, so that an
    absent optional block round-trips as absent.
    """
    cls = type(value)
    if cls is list:
        return [to_wire(v) for v in value]
    if not dataclasses.is_dataclass(value):
        return value
    if getattr(cls, "__protocol_object__", False):
        return getattr(value, "raw")  # noqa: B009 (slots dataclass, typed per class)
    plan = _ENCODERS.get(cls)
    if plan is None:
        plan = tuple(
            (
                f.name,
                f.metadata.get("key", f.name),
                bool(f.metadata.get("absent_ok")) and f.default is None,
            )
            for f in dataclasses.fields(value)
            if f.metadata.get("wire", True) is not False
        )
        _ENCODERS[cls] = plan
    out: dict[str, Any] = {}
    for attr, key, omit_none in plan:
        item = getattr(value, attr)
        if item is None and omit_none:
            continue
        out[key] = to_wire(item)
    return out
