"""Time and peak memory of the CLI on crafted hostile inputs.

    python benchmarks/hostile_inputs.py [--json out.json]

Each case is crafted in a temporary folder, then one `cifar-pack` command runs in a fresh process;
the wall time and the child's peak resident memory (``os.wait4``'s ru_maxrss) are printed with
its exit code and the first line it printed on stderr. A 120 s timeout marks a hang.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from _common import header, save
from PIL import Image

from tests.helpers.streams import Zeros

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "artifacts" / "samples" / "cat_1444.jpg"


def run(args: list[str], timeout: float = 120) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifar_pack", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return {"seconds": timeout, "peak_mb": usage.ru_maxrss / 1024, "exit": "timeout", "said": ""}
        time.sleep(0.02)
    said = proc.stderr.read().strip().splitlines()
    errors = [line for line in said if line.startswith("error")] or said
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": usage.ru_maxrss / 1024,
        "exit": os.waitstatus_to_exitcode(status),
        "said": (errors[0] if errors else "")[:150],
    }


def class_folders(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for name in ("airplane", "automobile", "bird"):  # CIFAR-10 names: the bundled model evaluates them
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "train" / name / f"{i}.png")
    return root


class ZeroStride:
    def __init__(self, rows, width=3072):
        self.rows, self.width = rows, width

    def __reduce__(self):
        return np.ndarray, ((self.rows, self.width), np.dtype(np.uint8), b"\x00", 0, (0, 0))


def png_header(path: Path, width: int, height: int) -> Path:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def cases(tmp: Path):
    """(item, description, args) after crafting each input."""
    data = class_folders(tmp / "dir")
    subprocess.run(["tar", "czf", str(tmp / "dot.tar.gz"), "-C", str(data), "."], check=True)
    yield (
        "1",
        "`tar czf d.tar.gz -C dir .` (a ./ member)",
        ["evaluate", "--data", tmp / "dot.tar.gz", "--out", tmp / "e"],
    )

    release = tmp / "cifar-10-batches-py"
    release.mkdir()
    (release / "data_batch_1").write_bytes(
        pickle.dumps({b"data": ZeroStride(500_000), b"labels": ZeroStride(500_000, 1)}, protocol=2)
    )
    yield "2", "293-byte pickle claiming 500,000 images", ["evaluate", "--data", release, "--out", tmp / "e"]

    with tarfile.open(tmp / "notes.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.add(data / "train", arcname="train")
        info = tarfile.TarInfo("train/bird/notes.txt")
        info.size = 1024 * 2**20
        tar.addfile(info, Zeros(info.size))
    yield (
        "3",
        "1 MB .tar.gz holding a 1 GiB notes.txt",
        ["evaluate", "--data", tmp / "notes.tar.gz", "--split", "train", "--out", tmp / "e"],
    )

    with tarfile.open(tmp / "empty.tar.gz", "w:gz") as tar:
        tar.add(data / "train", arcname="train")
        for i in range(20_000):
            info = tarfile.TarInfo(f"train/empty{i:05d}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    yield "3", "20,000 empty class folders", ["evaluate", "--data", tmp / "empty.tar.gz", "--out", tmp / "e"]

    fifo_data = class_folders(tmp / "fifo")
    os.mkfifo(fifo_data / "train" / "bird" / "fifo.png")
    yield (
        "4",
        "a FIFO named bird/fifo.png in --data",
        ["evaluate", "--data", fifo_data, "--split", "train", "--out", tmp / "e"],
    )
    zero_data = class_folders(tmp / "zero")
    (zero_data / "train" / "bird" / "zero.png").symlink_to("/dev/zero")
    yield (
        "4",
        "a link bird/zero.png -> /dev/zero in --data",
        ["evaluate", "--data", zero_data, "--split", "train", "--out", tmp / "e"],
    )
    os.mkfifo(tmp / "fifo.png")
    yield "4", "`predict fifo.png`", ["predict", tmp / "fifo.png", SAMPLE]

    yield "7", "13000x13000 16-bit PNG (header)", ["predict", png_header(tmp / "bomb.png", 13000, 13000), SAMPLE]
    # Made in a child process: this one's memory would count in its later children's peak RSS.
    make = (
        "import numpy as np, sys; from PIL import Image; "
        "Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))"
        ".resize((8000, 6000)).save(sys.argv[1], quality=85)"
    )
    subprocess.run([sys.executable, "-c", make, str(tmp / "48mp.jpg")], check=True)
    yield "7", "48-megapixel JPEG (decoded at reduced size)", ["predict", tmp / "48mp.jpg"]

    loop = tmp / "loop" / "sub"
    loop.mkdir(parents=True)
    Image.open(SAMPLE).save(loop / "a.jpg")
    (loop / "up1").symlink_to("..")
    (loop / "up2").symlink_to("..")
    yield "8", "`predict 'dir/**/*.jpg'` with two .. links", ["predict", f"{tmp}/loop/**/*.jpg"]

    (tmp / "emptydir").mkdir()
    yield (
        "9",
        "`predict a.jpg 'nomatch/*.jpg' emptydir/`",
        ["predict", SAMPLE, f"{tmp}/nomatch/*.jpg", tmp / "emptydir"],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("hostile inputs", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item, what, argv in cases(Path(tmp)):
            result = run([str(a) for a in argv])
            rows.append({"item": item, "input": what} | result)
            r = result
            print(
                f"| {item} | {what} | exit {r['exit']} | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB | {r['said']} |"
            )
    save(args.json, info | {"rows": rows})


if __name__ == "__main__":
    main()
