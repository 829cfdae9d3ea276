"""What the benchmarks print about the machine they ran on (imported by the scripts here)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, e.g. "AMD EPYC 7B13"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float:
    """Total memory from /proc/meminfo, in GiB (one decimal)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    raise OSError("/proc/meminfo has no MemTotal line")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. "5.91 6.02 4.88" (other work on a shared
    machine shows here; compare it with the number of cores)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
