"""Fact envelopes: the process identity every fact carries, and the envelope builder.

One builder serves the client library (real clock, random ids), the fact builder of the
generator and the tests (simulated clock, readable ids) and the gateway's error answers,
so the envelope has one shape wherever it is made (``facts.md`` §1).
"""

from __future__ import annotations

import os
import platform
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_analytics.contract import (
    ENVELOPE_VERSION,
    AuthRoute,
    DecodeError,
    RuntimeMetadata,
    Source,
)
from codex_analytics.contract.schema import decoder_for, to_wire
from codex_analytics.contract.versions import CONTRACT_S, ContractId

#: Upstream ``DEFAULT_ORIGINATOR``.
DEFAULT_ORIGINATOR = "codex_cli_rs"

_OS_NAMES = {"darwin": "macos", "win32": "windows"}
_ARCH_NAMES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def current_runtime(codex_rs_version: str | None = None) -> RuntimeMetadata:
    """This process's runtime metadata, spelled as Rust's ``std::env::consts`` would."""
    system = platform.system().lower()
    os_name = _OS_NAMES.get(system, system)
    if os_name == "macos":
        os_version = platform.mac_ver()[0] or platform.release()
    else:
        os_version = platform.release()
    machine = platform.machine().lower()
    if codex_rs_version is None:
        from codex_analytics import __version__

        codex_rs_version = __version__
    return RuntimeMetadata(
        codex_rs_version=codex_rs_version,
        runtime_os=os_name,
        runtime_os_version=os_version,
        runtime_arch=_ARCH_NAMES.get(machine, machine),
    )


def new_instance_id() -> str:
    """``host/pid-N/boot-X``: unique per process start. The stream drops a fact whose
    ``seq`` is not newer than the last one applied for its instance, so a restarted
    process must not reuse its predecessor's id with ``seq`` starting over at 1."""
    return f"{socket.gethostname()}/pid-{os.getpid()}/boot-{uuid.uuid4().hex[:12]}"


_decode_source = decoder_for(Source)


@dataclass(frozen=True, slots=True)
class ProducerIdentity:
    """The ``source`` block: which Codex process facts come from and how to route them."""

    instance_id: str = field(default_factory=new_instance_id)
    originator: str = DEFAULT_ORIGINATOR
    runtime: RuntimeMetadata = field(default_factory=current_runtime)
    #: Non-secret delivery route (design.md §6); None when unknown. Never a token.
    auth: AuthRoute | None = None

    def __post_init__(self) -> None:
        # The codec's own check (empty or over-long ids, names over the contract's
        # limits): an identity the stream would refuse fails here, not fact by fact.
        try:
            _decode_source(self.source())
        except DecodeError as err:
            raise ValueError(f"invalid producer identity: source.{err}") from None

    def source(self, contract: ContractId = CONTRACT_S) -> dict[str, Any]:
        """The ``source`` block of a producer speaking ``contract``. Profile S writes no
        ``contract`` key, so its facts stay exactly as they were before Profile J."""
        source: dict[str, Any] = {
            "instance_id": self.instance_id,
            "originator": self.originator,
            "runtime": to_wire(self.runtime),
        }
        if self.auth is not None:
            source["auth"] = to_wire(self.auth)
        if contract != CONTRACT_S:
            source["contract"] = contract
        return source


def build_envelope(
    source: Mapping[str, Any],
    *,
    seq: int,
    fact_id: str,
    observed_at_ms: int,
    kind: str,
    connection_id: int | None,
    payload: Any,
) -> dict[str, Any]:
    """One fact envelope in wire form, keys in contract order."""
    return {
        "envelope_version": ENVELOPE_VERSION,
        "fact_id": fact_id,
        "source": source,
        "seq": seq,
        "observed_at_ms": observed_at_ms,
        "kind": kind,
        "connection_id": connection_id,
        "payload": payload,
    }
