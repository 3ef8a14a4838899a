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


def describe_cpu(machine: dict | None = None) -> str:
    """ "AMD EPYC (2 cores; avx2 fma avx512f ...)": the CPU a figure was measured on, in one line."""
    machine = machine or cpu_info()
    return f"{machine['model']} ({machine['cores']} cores; {' '.join(machine['flags']) or machine['machine']})"


def int8_kernel(flags: list[str], machine: str = "x86_64") -> str:
    """Which onnxruntime (MLAS) U8S8 kernel family these ISA flags select, in words.

    The families differ in arithmetic, not only speed: see docs/int8.md and tests/cpu_emulation.py.
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


def int8_advice(machine: dict) -> str | None:
    """A warning for CPUs where an int8 file pays little, from ``cpu_info()``; None where it pays.

    Without VNNI or AMX, onnxruntime's U8S8 kernels multiply with VPMADDUBSW (two products summed
    in int16, then widened): fewer int8 operations per cycle than VNNI, and OpenVINO documents the
    same for its 8-bit kernels. Measured gains are in docs/int8.md ("Where int8 pays").
    """
    flags, arch = machine["flags"], machine["machine"]
    if arch not in ("x86_64", "AMD64") or {"amx_int8", "avx512_vnni", "avx_vnni"} & set(flags):
        return None
    return (
        f"this CPU ({machine['model']}) has no VNNI or AMX int8 instructions: the int8 file may be little or "
        "no faster than float32 here (docs/int8.md, 'Where int8 pays'); `cifar-pack benchmark` measures it"
    )


# What the engines gained over onnxruntime float32 on the bundled model, batch 256, 2 threads,
# by CPU kind (benchmarks/engines.py, one quiet run each; docs/int8.md shows the same table).
# Keys: the kind ``cpu_kind`` names; values: (what, measured ratio, where).
MEASURED_GAINS: dict[str, list[tuple[str, str, str]]] = {
    "AVX2 without VNNI": [
        ("onnxruntime int8 file", "1.52x", "AMD EPYC Zen 1; 1.68x on Zen 3"),
        ("OpenVINO float32", "1.01x", "AMD EPYC Zen 1"),
        ("OpenVINO int8 file", "1.34x", "AMD EPYC Zen 1"),
    ],
    "AVX-512 VNNI, BF16": [
        ("onnxruntime int8 file", "2.31x", "AMD EPYC Zen 5"),
        ("OpenVINO float32", "0.89x", "AMD EPYC Zen 5"),
        ("OpenVINO --precision bf16", "1.76x", "AMD EPYC Zen 5"),
    ],
    "AVX-512 VNNI, BF16, AMX": [
        ("onnxruntime int8 file", "1.9-2x", "Intel Xeon, Sapphire Rapids class"),
        ("OpenVINO --precision bf16", "2.9x", "Intel Xeon, Sapphire Rapids class"),
        ("OpenVINO int8 file", "4.8x", "Intel Xeon, Sapphire Rapids class"),
    ],
}


def cpu_kind(flags: list[str], machine: str = "x86_64") -> str | None:
    """This CPU's kind as ``MEASURED_GAINS`` names it, or None for a kind not measured."""
    if machine not in ("x86_64", "AMD64"):
        return None
    has = set(flags)
    if {"amx_int8", "amx_bf16"} & has:
        return "AVX-512 VNNI, BF16, AMX"
    if {"avx512_vnni", "avx512_bf16"} <= has:
        return "AVX-512 VNNI, BF16"
    if "avx2" in has and not {"avx512_vnni", "avx_vnni"} & has:
        return "AVX2 without VNNI"
    return None


def engine_advice(machine: dict) -> list[str]:
    """Which engine and file pay on this CPU, from ``MEASURED_GAINS`` (what ``cifar-pack info`` prints)."""
    kind = cpu_kind(machine["flags"], machine["machine"])
    if kind is None:
        return [
            f"no figures for this CPU kind ({' '.join(machine['flags']) or machine['machine']}): "
            "`cifar-pack benchmark` or benchmarks/engines.py measures each engine here"
        ]
    lines = [
        f"{what}: {ratio} the images/s of onnxruntime float32, measured on {where} ({kind})"
        for what, ratio, where in MEASURED_GAINS[kind]
    ]
    if kind == "AVX2 without VNNI":
        lines.append("so: the int8 file for its size and ~1.5x; OpenVINO gains nothing without AVX-512")
    return lines
