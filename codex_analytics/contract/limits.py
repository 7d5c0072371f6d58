"""The contract's string limits (PROPOSAL, ``docs/contract.md``, "Limits").

The spec bounds no string; the pipeline has to. An instance id is a Kafka key and the
key of a reducer state, names and versions are copied into that state and into every
event, so one client name of 400 KB makes a state or an event too large to write. These
limits make the codec refuse such a fact at the door (the gateway, ``produce``, the
client library) and dead-letter it in the stream, with the reason ``too_long``.

They sit far above anything legitimate: upstream ids are UUIDs (36 characters) or
``host/pid-N/boot-X`` (a host name is at most 255), the longest string of any spec
vector is 76 characters, and a path is at most 4096 bytes on Linux (``PATH_MAX``).
Characters, not bytes: ``len`` is free, and a character is at most 4 UTF-8 bytes.
"""

from __future__ import annotations

from typing import Annotated

from .schema import MaxLength

#: Ids: instance, fact, thread, turn, review, request, connector, plugin, account ids and
#: ``product_client_id``. Four times the longest ``host/pid-N/boot-X``.
MAX_ID_CHARS = 1024
#: Names, versions, methods, models and paths (client name and version, originator,
#: runtime fields, app, skill and plugin names, ``subagent_source``'s ``other`` name,
#: skill paths and repository URLs): ``PATH_MAX``.
MAX_NAME_CHARS = 4096

#: A string field holding an id (at most :data:`MAX_ID_CHARS` characters).
Id = Annotated[str, MaxLength(MAX_ID_CHARS)]
#: A string field holding a name, version or path (at most :data:`MAX_NAME_CHARS`).
Name = Annotated[str, MaxLength(MAX_NAME_CHARS)]
