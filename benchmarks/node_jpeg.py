"""Node.js example vs the Python Predictor on real JPEGs: top-1 agreement and largest probability difference.

    python benchmarks/node_jpeg.py [--images 500] [--json out.json]

Runs `node examples/node/predict.mjs --json` (sharp, i.e. libvips with libjpeg-turbo, for JPEG)
and `Predictor.predict_proba` on the same files: the 20 quick-start JPEGs, every 100th JPEG of the
shared CIFAR-10 archive (32x32, quality ~75), and those images enlarged to 97x61 and saved at
quality 90 with 4:2:0 and 4:4:4 chroma (so the decoder's upsampling and the resize both run).
Needs `npm install --ignore-scripts` in examples/node.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, save
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"


def real_jpegs(folder: Path, count: int) -> list[Path]:
    """Every 100th JPEG of the shared archive, written into ``folder`` (never into the checkout)."""
    paths = []
    with tarfile.open(SHARED_DATA) as tar:
        for i, member in enumerate(m for m in tar if m.name.endswith(".jpg")):
            if i % 100 == 0 and len(paths) < count:
                path = folder / member.name.replace("/", "_")
                path.write_bytes(tar.extractfile(member).read())
                paths.append(path)
    return paths


def enlarged(paths: list[Path], folder: Path) -> list[Path]:
    out = []
    for path in paths:
        img = Image.open(path).convert("RGB").resize((97, 61), Image.Resampling.BICUBIC)
        for subsampling in (2, 0):  # 4:2:0 and 4:4:4
            target = folder / f"{path.stem}-97x61-{subsampling}.jpg"
            img.save(target, quality=90, subsampling=subsampling)
            out.append(target)
    return out


def compare(paths: list[Path]) -> dict:
    from cifar_pack.runtime.images import load_image
    from cifar_pack.runtime.predictor import Predictor

    node = json.loads(
        subprocess.run(
            [
                "node",
                str(ROOT / "examples" / "node" / "predict.mjs"),
                "--model",
                str(MODEL),
                "--json",
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    )
    predictor = Predictor(MODEL)
    python = predictor.predict_proba(np.stack([load_image(p) for p in paths]))
    node_probs = np.array([r["probabilities"] for r in node])
    return {
        "images": len(paths),
        "top1_agreement": float(np.mean(node_probs.argmax(1) == python.argmax(1))),
        "max_abs_probability_diff": float(np.abs(node_probs - python).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("Node.js vs Python on JPEGs", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    sharp = json.loads((ROOT / "examples" / "node" / "node_modules" / "sharp" / "package.json").read_text())["version"]
    print(f"node {node}, sharp {sharp}")
    results = {"samples": compare(sorted((ROOT / "artifacts" / "samples").glob("*.jpg")))}
    with tempfile.TemporaryDirectory() as tmp:
        if SHARED_DATA.exists():
            real = real_jpegs(Path(tmp), args.images)
            results["cifar10_jpegs"] = compare(real)
            results["enlarged_420_444"] = compare(enlarged(real[:100], Path(tmp)))
    for name, r in results.items():
        print(
            f"{name}: {r['images']} images, top-1 agreement {r['top1_agreement']:.2%}, "
            f"max |probability difference| {r['max_abs_probability_diff']:.2e}"
        )
    save(args.json, info | {"node": node, "sharp": sharp, "results": results})


if __name__ == "__main__":
    main()
