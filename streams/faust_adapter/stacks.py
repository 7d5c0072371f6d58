"""Await chains of the event loop's tasks (diagnostics)."""

from __future__ import annotations

import asyncio
from typing import Any


def await_chain(coro: Any, depth: int = 30) -> list[str]:
    """The frames a suspended coroutine waits through, outermost first."""
    out: list[str] = []
    while coro is not None and depth:
        depth -= 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            out.append(type(coro).__name__)
            break
        out.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        driven = frame.f_locals.get("coro") if frame.f_code.co_name == "_resume" else None
        if driven is not None:
            out.append("[drives " + " > ".join(await_chain(driven, depth)) + "]")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


def task_chains(names: tuple[str, ...]) -> list[str]:
    """Await chains of the tasks whose chain passes through one of ``names``."""
    chains = []
    for task in asyncio.all_tasks():
        chain = await_chain(task.get_coro())
        if any(n in link for link in chain for n in names):
            chains.append(" > ".join(chain))
    return chains
