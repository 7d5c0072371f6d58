"""Driving the ``codex-analytics gateway`` command as a separate process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from codex_analytics.devtools.broker import free_port
from codex_analytics.devtools.localstack import child_env
from tests.cli import ROOT


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def memory_kb(self, field: str = "VmHWM") -> int:
        """``VmHWM`` (peak resident set) or ``VmRSS`` of the process, in kB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")


@contextmanager
def gateway_process(
    bootstrap: str, topic: str, tmp_path: Path, wait_ready: bool = True, **env: str
) -> Iterator[GatewayProcess]:
    port = free_port("127.0.0.1")
    environ = child_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ANALYTICS_FACTS_TOPIC=topic,
        ANALYTICS_GATEWAY_ADDR=f"127.0.0.1:{port}",
        PYTHONPATH=str(ROOT),
        **env,
    )
    log = tmp_path / f"gateway-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codex_analytics.cli.main", "gateway"],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gateway = GatewayProcess(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        path = "/readyz" if wait_ready else "/livez"
        while True:
            try:
                if httpx.get(f"{gateway.base}{path}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield gateway
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
