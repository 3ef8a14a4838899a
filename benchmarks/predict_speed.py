"""Runtime speed: CLI start-up, a 10,000-JPEG folder end to end, single-image latency.

    python benchmarks/predict_speed.py [--model M.onnx] [--images 10000] [--json out.json]

1. Whole-process `cifar-pack predict one.png` vs `python -c "import tensorflow"`, both run
   alternately 7 times, medians compared (goal: at most 0.1x).
2. A folder of N JPEGs (written from the shared data's validation images, 32x32 as in the
   archive) through `Predictor.predict_files` (decode overlapped with inference) vs model-only
   onnxruntime throughput on the same, already-decoded images at the same batch size (goal: >= 0.6x).
   Also evaluate-style throughput (cached arrays, no decoding) for the evaluate note.
3. In-process single-image latency, path -> label, p50/p99 over 300 calls after 20 warm-up calls.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, median_time, save, write_jpegs
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="ONNX model (default: what predict uses)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from cifar_pack.runtime import data
    from cifar_pack.runtime.predictor import Predictor, resolve_model

    model = str(resolve_model(args.model))
    info = header("predict speed", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    results = {}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # -- 1. process start-up -------------------------------------------------------------
        x, _ = data.load(SHARED_DATA).split("train")
        one = tmp / "one.png"
        Image.fromarray(x[0]).save(one)
        predict_cmd = [sys.executable, "-m", "cifar_pack", "predict", str(one), "--model", model]
        tf_cmd = [sys.executable, "-c", "import tensorflow"]
        subprocess.run(predict_cmd, capture_output=True, check=True)  # warm the page cache
        subprocess.run(tf_cmd, capture_output=True, check=True)
        t_pred, t_tf = [], []
        for _ in range(7):
            t_pred.append(median_time(lambda: subprocess.run(predict_cmd, capture_output=True, check=True), 1))
            t_tf.append(median_time(lambda: subprocess.run(tf_cmd, capture_output=True, check=True), 1))
        results["startup"] = {
            "predict_one_png_s": statistics.median(t_pred),
            "import_tensorflow_s": statistics.median(t_tf),
            "ratio": statistics.median(t_pred) / statistics.median(t_tf),
        }
        print(
            f"\n1. cifar-pack predict one.png: {results['startup']['predict_one_png_s']:.3f} s; "
            f"python -c 'import tensorflow': {results['startup']['import_tensorflow_s']:.3f} s; "
            f"ratio {results['startup']['ratio']:.3f} (goal <= 0.1)"
        )

        # -- 2. a folder of JPEGs, end to end vs model only ------------------------------------
        folder = tmp / "jpegs"
        folder.mkdir()
        picks = x[-args.images :]
        paths = write_jpegs(folder, picks)
        predictor = Predictor(model, device="cpu")
        decoded = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[:2048]])
        for i in range(0, len(decoded), args.batch_size):
            predictor.predict_proba(decoded[i : i + args.batch_size])  # warm-up

        def model_only():
            for i in range(0, len(picks), args.batch_size):
                predictor.predict_proba(picks[i : i + args.batch_size])

        def end_to_end():
            for _ in predictor.predict_files(paths, batch_size=args.batch_size):
                pass

        rounds = {"model_only": [], "end_to_end": []}
        for _ in range(3):
            rounds["model_only"].append(median_time(model_only, 1))
            rounds["end_to_end"].append(median_time(end_to_end, 1))
        mo = len(paths) / statistics.median(rounds["model_only"])
        e2e = len(paths) / statistics.median(rounds["end_to_end"])
        decode_only = len(paths) / median_time(lambda: [np.asarray(Image.open(p).convert("RGB")) for p in paths], 1)
        results["folder"] = {
            "images": len(paths),
            "batch_size": args.batch_size,
            "model_only_images_per_s": mo,
            "end_to_end_images_per_s": e2e,
            "decode_only_images_per_s_one_thread": decode_only,
            "ratio": e2e / mo,
        }
        print(
            f"2. {len(paths)} JPEGs, batch {args.batch_size}: end to end {e2e:.0f} images/s, model only {mo:.0f} "
            f"images/s, ratio {e2e / mo:.2f} (goal >= 0.6); decoding alone, one thread: {decode_only:.0f} images/s"
        )

        # -- 3. single-image latency ------------------------------------------------------------
        for _ in range(20):
            predictor.predict(one)
        lat = []
        for _ in range(300):
            t = time.perf_counter()
            predictor.predict(one)
            lat.append((time.perf_counter() - t) * 1000)
        results["latency_ms"] = {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}
        print(
            f"3. single image, path -> label, in process: p50 {results['latency_ms']['p50']:.3f} ms, "
            f"p99 {results['latency_ms']['p99']:.3f} ms"
        )
    save(args.json, info | {"model": model, "results": results})


if __name__ == "__main__":
    main()
