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


def int8_kernel(flags: list[str], machine: str = "x86_64") -> str:
    """Which onnxruntime (MLAS) U8S8 kernel family these ISA flags select, in words.

    The families differ in arithmetic, not only speed: see ``cifar_pack.cpu_emulation``.
    """
    if machine not in ("x86_64", "AMD64"):
        return f"{machine} (int32 accumulation)"
    if "amx_int8" in flags:
        return "AMX (int32 accumulation)"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "VNNI (int32 accumulation)"
    if "avx2" in flags or "avx512f" in flags:
        return "AVX2/AVX-512 without VNNI (VPMADDUBSW: int16 pair sums, can saturate)"
    return "SSE (int32 accumulation)"
