"""Evaluate speed: `evaluate()` of the ONNX model on 10,000 JPEGs vs decoding + model-only inference.

    python benchmarks/evaluate_speed.py [--model M.onnx] [--images 10000] [--json out.json]

A class-folder set of N JPEGs (N random images of the shared data, re-saved) is evaluated with an
empty decode cache, so `evaluate` pays for decoding. Compared with the sum of (a) decoding the
same files with Pillow in a plain one-thread loop and (b) model-only onnxruntime inference on the
decoded arrays at batch 512. Goal: evaluate costs no more than (a) + (b). Then the cached case
(second run: arrays come from the cache) for scale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, median_time, save
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from cifar_pack.runtime import data
    from cifar_pack.runtime.evaluation import evaluate
    from cifar_pack.runtime.predictor import Predictor, resolve_model

    model = str(resolve_model(args.model))
    info = header("evaluate speed", __doc__.split("\n\n")[2].replace("\n", " "))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = data.load(SHARED_DATA)
        x, y = ds.split("train")
        root = tmp / "set"
        pick = np.random.default_rng(0).choice(len(y), size=args.images, replace=False)  # every class
        for i, (img, label) in enumerate(zip(x[pick], y[pick])):
            folder = root / "test" / ds.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=75)

        def fresh_cache():
            os.environ["CIFAR_PACK_CACHE"] = str(tmp / f"cache{time.perf_counter_ns()}")

        fresh_cache()
        t_eval = median_time(lambda: (fresh_cache(), evaluate(model, str(root), out=tmp / "eval")), 1)
        files = sorted(root.rglob("*.jpg"))
        t_decode = median_time(lambda: [np.asarray(Image.open(p).convert("RGB")) for p in files], 1)
        xs, _ = data.load(root).split("test")
        predictor = Predictor(model, device="cpu")
        predictor.predict_proba(xs[:512])
        t_model = median_time(lambda: [predictor.predict_proba(xs[i : i + 512]) for i in range(0, len(xs), 512)], 3)
        t_cached = median_time(lambda: evaluate(model, str(root), out=tmp / "eval"), 3)
        shutil.rmtree(root)
    result = {
        "images": args.images,
        "evaluate_uncached_s": t_eval,
        "decode_s": t_decode,
        "model_only_s": t_model,
        "ratio_to_decode_plus_model": t_eval / (t_decode + t_model),
        "evaluate_cached_s": t_cached,
    }
    print(
        f"\nevaluate, {args.images} JPEGs, empty cache: {t_eval:.2f} s; decoding alone {t_decode:.2f} s + model only "
        f"{t_model:.2f} s = {t_decode + t_model:.2f} s; ratio {result['ratio_to_decode_plus_model']:.2f} (goal <= 1)"
    )
    print(f"evaluate again, arrays from the cache: {t_cached:.2f} s")
    save(args.json, info | {"model": model, "results": result})


if __name__ == "__main__":
    main()
