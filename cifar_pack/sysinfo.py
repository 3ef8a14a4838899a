"""The machine a figure was measured on: CPU model, cores, ISA flags that matter here."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """``{"model", "cores", "flags", "machine", "python"}`` read from /proc/cpuinfo where it exists."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def has_vnni() -> bool:
    flags = cpu_info()["flags"]
    return "avx512_vnni" in flags or "avx_vnni" in flags
