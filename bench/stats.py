"""Repeated measurements and their summary (median, min, max), plus machine facts."""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def row(self) -> str:
        return f"| {self.name} | {self.median:,.1f} | {self.low:,.1f} | {self.high:,.1f} | {self.unit} |"


def repeat(runs: int, measure: Callable[[], float]) -> tuple[float, ...]:
    return tuple(measure() for _ in range(runs))


def machine() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": f"{cpu} ({os.cpu_count()} cores)",
        "orjson": version("orjson"),
        "aiokafka": version("aiokafka"),
        "faust-streaming": version("faust-streaming"),
    }


TABLE_HEADER = "| figure | median | min | max | unit |\n|---|---:|---:|---:|---|"
