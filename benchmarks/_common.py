"""Shared by the benchmark scripts: where a figure came from (machine, versions, method)."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cifar_pack.runtime.fileio import package_versions
from cifar_pack.runtime.sysinfo import cpu_info

# The benchmarks use the tests' helpers (samples, browser, streams) rather than copies of them.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


def header(title: str, method: str, packages: tuple[str, ...] = ()) -> dict:
    """Print and return the provenance block every benchmark starts with (``packages``: more versions)."""
    info = {
        "benchmark": title,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": cpu_info(),
        "load_average": os.getloadavg(),
        "versions": package_versions() | (package_versions(*packages) if packages else {}),
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


def write_jpegs(folder: Path, images) -> list[Path]:
    """``images`` (N, 32, 32, 3) uint8 as ``folder/00000.jpg``... at JPEG quality 75: the folder
    the predict benchmarks time end to end. Returns the paths in order."""
    from PIL import Image

    paths = [folder / f"{i:05d}.jpg" for i in range(len(images))]
    for path, image in zip(paths, images):
        Image.fromarray(image).save(path, quality=75)
    return paths


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


class Server:
    """`cifar-pack serve --port 0 ARGS` as its own process on 127.0.0.1; its ports read from its log.

    ``port``/``http``: the HTTP port and host:port; ``grpc``: host:port of gRPC, when ``--grpc-port`` is given.
    """

    extra: tuple[str, ...] = ()  # added to every server's arguments (a script's --server-args, e.g. "--spin")

    def __init__(self, *args: str):
        args = (*args, *self.extra)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cifar_pack", "serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True
        )
        wanted, log = [r"at http://(127\.0\.0\.1:\d+)"], ""
        if "--grpc-port" in args:
            wanted.append(r"GRPCInferenceService\) at (127\.0\.0\.1:\d+)")
        while not all(re.search(w, log) for w in wanted):
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"the server did not start: {log}")
            log += line
        self.http = re.search(wanted[0], log).group(1)
        self.port = int(self.http.rsplit(":", 1)[1])
        self.grpc = re.search(wanted[1], log).group(1) if len(wanted) > 1 else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
