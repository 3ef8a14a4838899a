"""Shared by the benchmark scripts: where a figure came from (machine, versions, method)."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from cifar_pack.runtime.fileio import package_versions
from cifar_pack.runtime.sysinfo import cpu_info

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


def header(title: str, method: str) -> dict:
    """Print and return the provenance block every benchmark starts with."""
    info = {
        "benchmark": title,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": cpu_info(),
        "load_average": os.getloadavg(),
        "versions": package_versions(),
        "method": method,
    }
    print(f"# {title}")
    print(
        f"machine: {info['machine']['model']}, {info['machine']['cores']} cores, "
        f"flags: {' '.join(info['machine']['flags'])}"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in info['load_average'])}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"method: {method}")
    return info


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def save(path: str | None, payload: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
