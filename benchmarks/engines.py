"""onnxruntime vs OpenVINO on the shipped float32 and int8 files: accuracy, agreement, speed, serving.

    python benchmarks/engines.py [--rounds 7] [--skip-serve] [--json out.json]

1. Accuracy and top-1 agreement with onnxruntime (same file) on the bundled model's validation
   split (10,000 images of the shared training data, its recorded split), every configuration.
2. Model-only speed, batch 256 (images/s) and batch 1 (ms): each configuration in turn runs 3
   calls at batch 256 and 50 at batch 1, after a 0.2 s pause (onnxruntime's idle threads spin
   after a call and would slow the next configuration); `--rounds` rounds, interleaved so machine
   noise hits all alike; medians; 2 intra-op threads each (the machine's cores); ratios against
   onnxruntime float32 in the same run.
3. `cifar-pack serve` (own process, 127.0.0.1) on each engine: batch 256 via tritonclient (20
   requests, median) and 32 threads sending single images as binary tensors (640 requests,
   dynamic batching, --max-batch-size 64, --max-queue-delay-ms 2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import SHARED_DATA, Server, header, save
from serve_speed import binary_infer, load, summary

from cifar_pack.runtime import data as data_mod
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor
from cifar_pack.runtime.records import TrainingRecord

INT8 = BUNDLED_MODEL.with_name("cifar10.int8.onnx")
# name -> (file, engine, precision)
CONFIGS = {
    "onnxruntime float32": (BUNDLED_MODEL, "onnxruntime", "f32"),
    "onnxruntime int8": (INT8, "onnxruntime", "f32"),
    "OpenVINO float32 (f32)": (BUNDLED_MODEL, "openvino", "f32"),
    "OpenVINO float32 file, bf16": (BUNDLED_MODEL, "openvino", "bf16"),
    "OpenVINO int8": (INT8, "openvino", "f32"),
}


def validation_images() -> tuple[np.ndarray, np.ndarray]:
    """The bundled model's validation split: (10,000 uint8 images, labels)."""
    predictor = Predictor(BUNDLED_MODEL)
    record = TrainingRecord.from_metadata(predictor.metadata.get("training"))
    _, x, y = data_mod.select(data_mod.load(SHARED_DATA), "val", *record.split)
    return x, y


def accuracy_table(predictors: dict[str, Predictor], x: np.ndarray, y: np.ndarray) -> dict:
    labels = {name: p.predict_proba(x).argmax(1) for name, p in predictors.items()}
    reference = {BUNDLED_MODEL: labels["onnxruntime float32"], INT8: labels["onnxruntime int8"]}
    return {
        name: {
            "accuracy": float(np.mean(labels[name] == y)),
            "agreement_with_onnxruntime_same_file": float(np.mean(labels[name] == reference[CONFIGS[name][0]])),
            "engine": predictors[name].engine_info(),
        }
        for name in predictors
    }


def speed_table(predictors: dict[str, Predictor], x: np.ndarray, rounds: int) -> dict:
    big, one = np.ascontiguousarray(x[:256]), np.ascontiguousarray(x[:1])
    times: dict[str, dict[str, list[float]]] = {n: {"256": [], "1": []} for n in predictors}
    for p in predictors.values():  # warm-up: kernels chosen, memory allocated
        p.predict_proba(big), p.predict_proba(one)
    for _ in range(rounds):
        for name, p in predictors.items():
            # onnxruntime's idle threads spin for a while after a call: let them stop before the next
            # configuration runs, or it pays for the previous one's spinning.
            time.sleep(0.2)
            for _ in range(3):
                t = time.perf_counter()
                p.predict_proba(big)
                times[name]["256"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(50):
                p.predict_proba(one)
            times[name]["1"].append((time.perf_counter() - t) / 50)
    base = statistics.median(times["onnxruntime float32"]["256"])
    base1 = statistics.median(times["onnxruntime float32"]["1"])
    return {
        name: {
            "images_per_s_batch256": 256 / statistics.median(t["256"]),
            "vs_onnxruntime_float32_batch256": base / statistics.median(t["256"]),
            "ms_batch1": 1000 * statistics.median(t["1"]),
            "vs_onnxruntime_float32_batch1": base1 / statistics.median(t["1"]),
        }
        for name, t in times.items()
    }


def serve_table(x: np.ndarray) -> dict:
    import tritonclient.http as triton

    batch = np.ascontiguousarray(x[:256])
    singles = [binary_infer(x[i : i + 1]) for i in range(20)]
    results = {}
    for label, args in (
        ("serve (onnxruntime)", []),
        ("serve --engine openvino", ["--engine", "openvino"]),
        ("serve --engine openvino, int8 file", ["--engine", "openvino", "--model", str(INT8)]),
    ):
        server = Server(*args, "--max-batch-size", "64", "--max-queue-delay-ms", "2")
        try:
            name = "cifar10.int8" if "--model" in args else "cifar10"
            client = triton.InferenceServerClient(server.http)
            tensor = triton.InferInput("images", list(batch.shape), "UINT8")
            tensor.set_data_from_numpy(batch, binary_data=True)
            client.infer(name, [tensor])
            took = []
            for _ in range(20):
                t = time.perf_counter()
                client.infer(name, [tensor])
                took.append(time.perf_counter() - t)
            path = f"/v2/models/{name}/infer"
            request = lambda i, path=path: ("POST", path, *singles[i % 20])  # noqa: E731
            load(server.port, request, 64, 32)  # warm-up
            rate, lat, st = load(server.port, request, 640, 32)
            results[label] = {
                "batch256_images_per_s": 256 / statistics.median(took),
                "clients32": summary(rate, lat, st),
            }
        finally:
            server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    method = __doc__.split("\n\n", 1)[1].strip().replace("\n", " ")
    info = header("engines", method, ("openvino", "tritonclient", "uvicorn"))
    x, y = validation_images()
    predictors = {
        name: Predictor(path, device="cpu", threads=2, engine=engine, precision=precision)
        for name, (path, engine, precision) in CONFIGS.items()
    }
    speed = speed_table(predictors, x, args.rounds)
    accuracy = accuracy_table(predictors, x, y)
    print(
        "\n| configuration | val. accuracy | top-1 agreement (same file, onnxruntime) "
        "| img/s, batch 256 | vs ORT f32 | ms, batch 1 | vs ORT f32 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in CONFIGS:
        a, s = accuracy[name], speed[name]
        print(
            f"| {name} | {a['accuracy']:.2%} | {a['agreement_with_onnxruntime_same_file']:.2%} | "
            f"{s['images_per_s_batch256']:,.0f} | {s['vs_onnxruntime_float32_batch256']:.2f}x | "
            f"{s['ms_batch1']:.3f} | {s['vs_onnxruntime_float32_batch1']:.2f}x |"
        )
    for name in CONFIGS:
        print(f"{name}: {accuracy[name]['engine']}")
    results = {"accuracy": accuracy, "speed": speed}
    if not args.skip_serve:
        results["serve"] = serve_table(x)
        print("\n| server | batch 256 via tritonclient, img/s | 32 clients x 1 image, img/s | p50 ms | p99 ms |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, r in results["serve"].items():
            c = r["clients32"]
            print(
                f"| {label} | {r['batch256_images_per_s']:,.0f} | {c['images_per_s']:,.0f} "
                f"| {c['p50_ms']:.1f} | {c['p99_ms']:.1f} |"
            )
    save(args.json, info | {"results": results})


if __name__ == "__main__":
    main()
