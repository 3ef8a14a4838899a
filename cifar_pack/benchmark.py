"""``cifar-pack benchmark``: Keras vs ONNX float32 vs ONNX int8 on one machine, in one run.

Method: every format classifies the same labelled images (accuracy); latency is timed at batch 1
and throughput at batch 256 after warm-up runs, formats interleaved round by round so that
machine noise hits them alike (each format's turn starts with an untimed call); medians are
quoted, with p90/p99 for latency. Keras runs the
model call in graph mode (a ``tf.function``), not ``Model.predict``, whose per-call overhead
would flatter ONNX.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import numpy as np

from . import data as data_mod
from .fileio import package_versions
from .sysinfo import cpu_info

log = logging.getLogger(__name__)


def run_benchmark(
    model: str | Path = "artifacts/model.keras",
    data: str | None = None,
    samples: int = 10_000,
    rounds: int = 5,
    latency_runs: int = 100,
) -> dict:
    """Export what is missing (``<stem>.onnx``, ``<stem>.int8.onnx``), then measure all three.

    Returns ``{"machine", "versions", "method", "samples", "rows": [{"format", "path", "size_mb",
    "accuracy", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "throughput_batch256",
    "speedup_vs_keras"}]}``.
    """
    import onnxruntime as ort

    from .evaluate import map_labels
    from .export import export_onnx
    from .model import float32_copy, keras_probabilities, load_keras_model, read_manifest
    from .tf_setup import tf

    model = Path(model)
    fp32, int8 = model.with_suffix(".onnx"), model.with_name(f"{model.stem}.int8.onnx")
    if not fp32.exists() or not int8.exists():
        log.info("exporting %s and %s first", fp32.name, int8.name)
        export_onnx(model, fp32, data=data, int8=True)
    manifest = read_manifest(model) or {}
    source = data or manifest.get("data", {}).get("path") or manifest.get("data", {}).get("source")
    if source is None:
        from .errors import UsageError

        raise UsageError("--data is required: the model has no training manifest to take its validation split from")
    dataset = data_mod.load(source)
    fraction, seed = data_mod.split_params(manifest.get("data"))
    split, x, y = data_mod.select(dataset, "val" if not dataset.has_test else "test", fraction, seed)
    if samples < len(y):  # a random subset: the split is ordered by class
        pick = np.sort(np.random.default_rng(0).choice(len(y), size=samples, replace=False))
        x, y = x[pick], y[pick]
    class_names = manifest.get("class_names") or dataset.class_names
    y = map_labels(dataset.class_names, list(class_names), y, source, model)

    keras_model, _ = float32_copy(load_keras_model(model))
    keras_fn = keras_probabilities(keras_model, False)
    runners = {"keras": (model, lambda b: keras_fn(tf.constant(b)))}
    for name, path in (("onnx-fp32", fp32), ("onnx-int8", int8)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runners[name] = (path, lambda b, s=session: s.run(None, {"images": b})[0])

    rows = []
    big = np.ascontiguousarray(np.resize(x, (256, *x.shape[1:])))
    one = np.ascontiguousarray(x[:1])
    batch_times = {name: [] for name in runners}
    single_times = {name: [] for name in runners}
    for _, fn in runners.values():  # warm-up: graph tracing, oneDNN/ORT kernel selection
        fn(big), fn(one)
    for _ in range(rounds):
        for name, (_, fn) in runners.items():
            # One untimed call first: the previous format's thread pool may still be spinning
            # (onnxruntime and TensorFlow both spin-wait briefly after a run), which on 2 cores
            # would bill the previous format's idle time to this one.
            fn(big)
            for _ in range(3):
                t = time.perf_counter()
                fn(big)
                batch_times[name].append(time.perf_counter() - t)
            fn(one)
            for _ in range(latency_runs // rounds):
                t = time.perf_counter()
                fn(one)
                single_times[name].append(time.perf_counter() - t)
    for name, (path, fn) in runners.items():
        probs = np.concatenate([fn(np.ascontiguousarray(x[i : i + 256])) for i in range(0, len(x), 256)])
        lat = np.array(single_times[name]) * 1000
        rows.append(
            {
                "format": name,
                "path": str(path),
                "size_mb": round(Path(path).stat().st_size / 1e6, 2),
                "accuracy": float(np.mean(probs.argmax(1) == y)),
                "latency_ms_p50": float(np.percentile(lat, 50)),
                "latency_ms_p90": float(np.percentile(lat, 90)),
                "latency_ms_p99": float(np.percentile(lat, 99)),
                "throughput_batch256": 256 / statistics.median(batch_times[name]),
            }
        )
    keras_tp = rows[0]["throughput_batch256"]
    for row in rows:
        row["speedup_vs_keras"] = row["throughput_batch256"] / keras_tp
    return {
        "machine": cpu_info(),
        "versions": package_versions(),
        "method": f"{len(y)} {split} images for accuracy; batch-256 throughput median of {rounds} rounds x 3, "
        f"batch-1 latency over {latency_runs} runs, after warm-up; formats interleaved",
        "samples": int(len(y)),
        "split": split,
        "rows": rows,
    }
