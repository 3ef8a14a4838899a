"""Model files against each other: images/s of onnxruntime at one batch size, ratios from one run.

    python benchmarks/model_speed.py A.onnx B.onnx ... [--batch 256] [--rounds 15] [--threads N] [--json out.json]

Each file is loaded by `Predictor` with the settings `cifar-pack predict` uses (onnxruntime,
all cores, idle threads not spinning); the same random uint8 batch goes through each; files
alternate, one call each per round after two warm-up calls, and the median call gives images/s.
Ratios are to the first file (the inference bound: the fast CNN's batch-256 rate at least half
the seed CNN's; the seed CNN is in git history: `git show 8723183:cifar_pack/pretrained/cifar10.onnx`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _common import header, save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from cifar_pack.runtime.engines import EngineSettings, sharing_cores
    from cifar_pack.runtime.predictor import Predictor

    info = header("model speed", __doc__.split("\n\n", 2)[1].strip().replace("\n", " "))
    settings = sharing_cores(EngineSettings(threads=args.threads))
    predictors = {str(m): Predictor(m, settings=settings) for m in args.models}
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.predict_proba(batch)
        predictor.predict_proba(batch)
    for _ in range(args.rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict_proba(batch)
            times[name].append(time.perf_counter() - started)
    rates = {name: args.batch / statistics.median(t) for name, t in times.items()}
    first = next(iter(rates.values()))
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} images/s at batch {args.batch} ({rate / first:.2f}x the first)")
    save(args.json, info | {"batch": args.batch, "images_per_s": rates})


if __name__ == "__main__":
    main()
