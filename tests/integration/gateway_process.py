"""``codex-analytics gateway`` as a process, as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from codex_analytics.devtools.broker import free_port
from tests.cli import ROOT


@contextmanager
def gateway_process(
    bootstrap: str, topic: str, log: Path, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The gateway on a free port of 127.0.0.1, publishing to ``topic``, ready (its
    ``/readyz`` answered 200 within 30 s): (base URL, process). Stopped with SIGTERM on
    the way out (killed after 15 s); its output goes to ``log``."""
    port = free_port("127.0.0.1")
    environ = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ANALYTICS_FACTS_TOPIC=topic,
        ANALYTICS_GATEWAY_ADDR=f"127.0.0.1:{port}",
        **env,
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codex_analytics.cli.main", "gateway"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
