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
from pathlib import Path

import numpy as np

from ..runtime import data as data_mod
from ..runtime.batching import BatchFn, call_seconds, run_batched
from ..runtime.config import INPUT_NAME
from ..runtime.errors import UsageError
from ..runtime.evaluation import map_labels
from ..runtime.fileio import package_versions
from ..runtime.records import TrainingRecord, read_record
from ..runtime.sysinfo import cpu_info

log = logging.getLogger(__name__)

BATCH = 256  # the throughput batch


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
    from .export import export_onnx

    model = Path(model)
    fp32, int8 = model.with_suffix(".onnx"), model.with_name(f"{model.stem}.int8.onnx")
    if not fp32.exists() or not int8.exists():
        log.info("exporting %s and %s first", fp32.name, int8.name)
        export_onnx(model, fp32, data=data, int8=True)
    record = read_record(model) or TrainingRecord()
    split, x, y = _labelled_images(model, data, record, samples)
    runners = _runners(model, fp32, int8)
    batch_times, single_times = _time_interleaved(runners, x, rounds, latency_runs)
    rows = [
        _row(name, path, run_batched(fn, x, BATCH), y, batch_times[name], single_times[name])
        for name, (path, fn) in runners.items()
    ]
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


def _labelled_images(model: Path, data: str | None, record: TrainingRecord, samples: int):
    """(split, x, y in the model's class order): the test split if any, else the run's validation split."""
    source = data or record.data_location
    if source is None:
        raise UsageError("--data is required: the model has no training manifest to take its validation split from")
    dataset = data_mod.load(source)
    split, x, y = data_mod.select(dataset, "val" if not dataset.has_test else "test", *record.split)
    if samples < len(y):  # a random subset: the split is ordered by class
        pick = np.sort(np.random.default_rng(0).choice(len(y), size=samples, replace=False))
        x, y = x[pick], y[pick]
    class_names = list(record.class_names or dataset.class_names)
    return split, x, map_labels(dataset.class_names, class_names, y, source, model)


def _runners(model: Path, fp32: Path, int8: Path) -> dict[str, tuple[Path, BatchFn]]:
    import onnxruntime as ort

    from .model import float32_copy, keras_probabilities, load_keras_model
    from .tf_setup import tf

    keras_model, _ = float32_copy(load_keras_model(model))
    keras_fn = keras_probabilities(keras_model, False)
    runners: dict[str, tuple[Path, BatchFn]] = {"keras": (model, lambda b: keras_fn(tf.constant(b)))}
    for name, path in (("onnx-fp32", fp32), ("onnx-int8", int8)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runners[name] = (path, lambda b, s=session: s.run(None, {INPUT_NAME: b})[0])
    return runners


def _time_interleaved(runners: dict, x: np.ndarray, rounds: int, latency_runs: int):
    """Seconds per batch-256 call and per batch-1 call of each format, formats taking turns each round."""
    big = np.ascontiguousarray(np.resize(x, (BATCH, *x.shape[1:])))
    one = np.ascontiguousarray(x[:1])
    batch_times: dict[str, list[float]] = {name: [] for name in runners}
    single_times: dict[str, list[float]] = {name: [] for name in runners}
    for _, fn in runners.values():  # warm-up: graph tracing, oneDNN/ORT kernel selection
        fn(big), fn(one)
    for _ in range(rounds):
        for name, (_, fn) in runners.items():
            batch_times[name] += call_seconds(lambda fn=fn: fn(big), 3)
            single_times[name] += call_seconds(lambda fn=fn: fn(one), latency_runs // rounds)
    return batch_times, single_times


def _row(name: str, path: Path, probs: np.ndarray, y: np.ndarray, batch_times: list, single_times: list) -> dict:
    lat = np.array(single_times) * 1000
    return {
        "format": name,
        "path": str(path),
        "size_mb": round(Path(path).stat().st_size / 1e6, 2),
        "accuracy": float(np.mean(probs.argmax(1) == y)),
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p90": float(np.percentile(lat, 90)),
        "latency_ms_p99": float(np.percentile(lat, 99)),
        "throughput_batch256": BATCH / statistics.median(batch_times),
    }
