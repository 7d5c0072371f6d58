"""Fork safety of the client library.

A client built before ``fork()`` (gunicorn ``--preload``, Celery prefork, multiprocessing)
is copied into every child with its instance id, its ``seq`` counter, its queue, its
Kafka connections and, for the sync client, an event loop whose thread does not exist in
the child. Children publishing under their parent's instance id collide on ``seq`` and
the stream drops their facts as repeats. So every live client registers here, and in a
child, right after the fork, each is reset to a new instance of its own: a new instance
id, ``seq`` from 1, an empty queue (the parent's queued facts are the parent's to send),
and no connection, loop or thread of the parent's.
"""

from __future__ import annotations

import logging
import os
import uuid
import weakref
from typing import Protocol

from codex_analytics.contract import MAX_ID_CHARS

log = logging.getLogger("producers.client.forks")


class ForkAware(Protocol):
    def after_fork_in_child(self) -> None:
        """Become a new instance of this process (called in the child, once per fork)."""
        ...


_clients: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def follow_forks(client: ForkAware) -> None:
    """Reset ``client`` in every child forked from now on (while it is alive)."""
    _clients.add(client)


def unfollow_forks(client: ForkAware) -> None:
    """Stop resetting ``client`` (its owner resets it instead)."""
    _clients.discard(client)


def forked_instance_id(base: str) -> str:
    """The instance id of a forked child: the id the client was built with, plus this
    process's pid and a random part. Derived from the *built* id, so grandchildren do
    not grow it; cut to the contract's id limit."""
    suffix = f"/fork-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return base[: MAX_ID_CHARS - len(suffix)] + suffix


def _reset_in_child() -> None:
    for client in list(_clients):
        try:
            client.after_fork_in_child()
        except Exception:  # one broken client must not break the child's start
            log.exception("analytics client could not be reset after fork")


os.register_at_fork(after_in_child=_reset_in_child)
