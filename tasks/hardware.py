"""What a worker's machine is: cores, hardware threads, CPU model, caches, memory.

The seed's advice "know your machine architecture", as each worker announces it
(tasks/presence.py): physical cores and logical CPUs from psutil, the CPU model from
/proc/cpuinfo, the data caches from the kernel's /sys/devices/system/cpu/cpu0/cache/index*/
(level, type, size). What cannot be read (another OS, a container hiding /sys) is left out.
Read on first use, never on import; only memory changes, so only memory is read again.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import psutil

CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
CPUINFO = Path("/proc/cpuinfo")
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def size_in_bytes(text: str) -> int | None:
    """`32K`, `1024K`, `32M` (the kernel's cache sizes) or a plain number, in bytes."""
    text = text.strip().upper().removesuffix("B")
    scale = _UNITS.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in _UNITS else text
    return int(number) * scale if number.isdigit() else None


def caches(folder: Path = CACHE_DIR) -> dict[str, int]:
    """The caches one CPU sees, by name (`L1d`, `L1i`, `L2`, `L3`), in bytes."""
    found: dict[str, int] = {}
    for index in sorted(folder.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = size_in_bytes((index / "size").read_text())
        except OSError:
            continue
        if size is None:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        found[f"L{level}{suffix}"] = size
    return found


MODEL_FIELDS = ("model name", "hardware", "cpu model")  # x86 and most ARM; older ARM; MIPS


def cpu_model(path: Path = CPUINFO) -> str:
    """The CPU's model from /proc/cpuinfo (its first `model name`, or what other architectures
    call it); empty when there is none."""
    try:
        with path.open() as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip().lower() in MODEL_FIELDS:
                    return value.strip()
    except OSError:
        pass
    return ""


@functools.cache
def _fixed() -> dict[str, Any]:
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 0
    return {
        "physical_cores": psutil.cpu_count(logical=False) or logical,
        "logical_cpus": logical,
        "cpu_model": cpu_model(),
        "caches": caches(),
    }


def memory() -> dict[str, int]:
    """Total and available memory in bytes."""
    found = psutil.virtual_memory()
    return {"total": int(found.total), "available": int(found.available)}


def describe_hardware() -> dict[str, Any]:
    """physical_cores, logical_cpus, cpu_model, caches ({'L1d': bytes, ...}) and memory."""
    return {**_fixed(), "memory": memory()}
