"""``cifar-pack benchmark``: Keras vs ONNX float32 vs ONNX int8 on one machine, in one run.

A benchmark measures, it does not gate: every row it can measure is shown, and the int8 row says
whether it passes the accuracy gate ``export`` would apply (``--max-accuracy-drop``), measured on
the benchmark's own images. Files it has to build go to a temporary folder unless ``keep``; even
then an int8 file that fails the gate is not left where ``export`` would have refused to write it.

Method: every format classifies the same labelled images (accuracy); latency is timed at batch 1
and throughput at batch 256 after warm-up runs, formats interleaved round by round so that
machine noise hits them alike (each format's turn starts with an untimed call); medians are
quoted, with p90/p99 for latency. Keras runs the
model call in graph mode (a ``tf.function``), not ``Model.predict``, whose per-call overhead
would flatter ONNX.
"""

from __future__ import annotations

import functools
import logging
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..formats.config import DEFAULT_MAX_ACCURACY_DROP
from ..formats.int8 import allowed_drop
from ..runtime import data as data_mod
from ..runtime.batching import BatchFn, call_seconds, run_batched
from ..runtime.config import DEFAULT_KERAS_MODEL, INPUT_NAME, KERAS_SUFFIXES
from ..runtime.errors import UsageError
from ..runtime.evaluation import map_labels
from ..runtime.fileio import package_versions
from ..runtime.onnx_file import model_proto_metadata, read_metadata, write_model
from ..runtime.records import TrainingRecord, read_record
from ..runtime.sysinfo import cpu_info, int8_advice

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

log = logging.getLogger(__name__)

BATCH = 256  # the throughput batch


def run_benchmark(
    model: str | Path = DEFAULT_KERAS_MODEL,
    data: str | None = None,
    samples: int = 10_000,
    rounds: int = 5,
    latency_runs: int = 100,
    *,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    keep: bool = False,
) -> dict:
    """Measure the Keras model, its ``<stem>.onnx`` and its ``<stem>.int8.onnx``, building what is missing.

    Args:
        model: the ``.keras`` model (ONNX files beside it are used as they are); or an exported
            float32 ``.onnx`` (no Keras row, no TensorFlow; its ``<stem>.int8.onnx`` as above).
        data: labelled images (default: the training run's data; its test split, else validation).
        max_accuracy_drop: the int8 gate shown in the int8 row (top-1 points; export's default).
        keep: write built files beside the model, as ``export`` would (the int8 file only if it
            passes the gate); otherwise they live in a temporary folder for the run only.

    Returns ``{"machine", "versions", "method", "samples", "split", "rows": [{"format", "path", "kept",
    "size_mb", "accuracy", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "throughput_batch256",
    "speedup", "gate"}], "baseline"}``: ``speedup`` is against the first row, ``baseline`` (Keras, or
    ONNX float32 for an ``.onnx`` model; Keras rows also carry it as ``speedup_vs_keras``); ``gate``
    is None except on the int8 row.

    Raises:
        CifarPackError: a measurement that could not be made (no data, an export whose parity fails).
    """
    model = Path(model)
    keras_model = model.suffix in KERAS_SUFFIXES
    if keras_model:
        from . import tf_setup  # noqa: F401  (the [train] extra: missing, say so before reading any data)
    elif model.name.endswith(".int8.onnx"):
        raise UsageError(f"--model {model}: an int8 file; give the float32 .onnx (its int8 file is found beside it)")
    record = _record(model, keras_model)
    split, x, y, dataset = _labelled_images(model, data, record, samples)
    with tempfile.TemporaryDirectory(prefix="cifar-pack-benchmark-") as tmp:
        files = _onnx_files(model, data, dataset, record, Path(tmp), max_accuracy_drop, keep)
        runners = _runners(model if keras_model else None, files["onnx-fp32"][0], files["onnx-int8"][0])
        batch_times, single_times = _time_interleaved(runners, x, rounds, latency_runs)
        rows = [
            _row(name, path, run_batched(fn, x, BATCH), y, batch_times[name], single_times[name])
            | {"kept": files[name][1] if name in files else True}
            for name, (path, fn) in runners.items()
        ]
    _add_speedup_and_gate(rows, max_accuracy_drop, len(y))
    machine = cpu_info()
    return {
        "machine": machine,
        "int8_advice": int8_advice(machine),
        "versions": package_versions(),
        "method": f"{len(y)} {split} images for accuracy; batch-256 throughput median of {rounds} rounds x 3, "
        f"batch-1 latency over {latency_runs} runs, after warm-up; formats interleaved; int8 gate: top-1 drop "
        f"against onnx-fp32 on the same images <= {max_accuracy_drop:g} points (export's rule)",
        "samples": int(len(y)),
        "split": split,
        "baseline": rows[0]["format"],
        "rows": rows,
    }


def _record(model: Path, keras_model: bool) -> TrainingRecord:
    """The run record: the manifest beside a Keras model, or an exported model's ``training`` metadata."""
    if keras_model:
        return read_record(model) or TrainingRecord()
    from ..runtime.predictor import Predictor

    return TrainingRecord.from_metadata(Predictor(model, device="cpu").metadata.get("training"))


def _add_speedup_and_gate(rows: list[dict], max_accuracy_drop: float, samples: int) -> None:
    """Speed against the first row; on the int8 row, export's accuracy gate against the float32 row."""
    baseline = rows[0]["throughput_batch256"]
    by_format = {row["format"]: row for row in rows}
    for row in rows:
        row["speedup"] = row["throughput_batch256"] / baseline
        if "keras" in by_format:
            row["speedup_vs_keras"] = row["speedup"]
        row["gate"] = None
    drop = 100.0 * (by_format["onnx-fp32"]["accuracy"] - by_format["onnx-int8"]["accuracy"])
    allowed = allowed_drop(max_accuracy_drop, samples)
    by_format["onnx-int8"]["gate"] = {
        "accuracy_drop_points": drop,
        "max_accuracy_drop": max_accuracy_drop,
        "allowed_drop_points": allowed,
        "passed": drop <= allowed + 1e-9,  # as export's gate (quantize.allowed_drop)
    }


def _onnx_files(
    model: Path,
    data: str | None,
    dataset: data_mod.Dataset,
    record: TrainingRecord,
    tmp: Path,
    max_accuracy_drop: float,
    keep: bool,
) -> dict[str, tuple[Path, bool]]:
    """``{"onnx-fp32": (path, kept), "onnx-int8": (path, kept)}``: the files beside the model, else built.

    A built int8 file is measured, not gated (``quantize.measure_int8``); it is written beside the
    model only with ``keep`` and a passing gate, so no file appears that ``export`` would refuse.
    """
    from ..formats.int8 import measure_int8

    fp32, int8 = model.with_suffix(".onnx"), model.with_name(f"{model.stem}.int8.onnx")  # fp32 may be `model`
    files = {"onnx-fp32": (fp32, True), "onnx-int8": (int8, True)}
    if not fp32.exists():
        from .export import export_onnx  # TensorFlow: only for a Keras model

        log.info("exporting %s to measure it%s", fp32.name, "" if keep else " (temporary)")
        target = fp32 if keep else tmp / fp32.name
        files["onnx-fp32"] = (export_onnx(model, target, data=data).onnx, keep)
    if not int8.exists():
        import onnx

        log.info("quantizing %s to measure it%s", fp32.name, "" if keep else " (temporary)")
        fp32_path = files["onnx-fp32"][0]
        int8_model, report = measure_int8(fp32_path, dataset, record, max_accuracy_drop=max_accuracy_drop)
        metadata = read_metadata(model_proto_metadata(onnx.load(str(fp32_path))), fp32_path)
        kept = keep and report["passed"]
        if keep and not kept:
            log.warning("int8 fails the accuracy gate: not written beside %s (export would refuse it)", model.name)
        path = write_model(int8 if kept else tmp / int8.name, int8_model, metadata | {"quantization": report})
        files["onnx-int8"] = (path, kept)
    return files


def _labelled_images(
    model: Path, data: str | None, record: TrainingRecord, samples: int
) -> tuple[str, np.ndarray, np.ndarray, data_mod.Dataset]:
    """(split, x, y in the model's class order, dataset): its test split if any, else the run's validation split."""
    source = data or record.data_location
    if source is None:
        raise UsageError("--data is required: the model has no training manifest to take its validation split from")
    dataset = data_mod.load(source)
    split, x, y = data_mod.select(dataset, "val" if not dataset.has_test else "test", *record.split)
    if samples < len(y):  # a random subset: the split is ordered by class
        pick = np.sort(np.random.default_rng(0).choice(len(y), size=samples, replace=False))
        x, y = x[pick], y[pick]
    class_names = list(record.class_names or dataset.class_names)
    return split, x, map_labels(dataset.class_names, class_names, y, source, model), dataset


def _runners(keras_path: Path | None, fp32: Path, int8: Path) -> dict[str, tuple[Path, BatchFn]]:
    """Each format's batch function, in row order: Keras (when given), ONNX float32, ONNX int8."""
    import onnxruntime as ort

    runners: dict[str, tuple[Path, BatchFn]] = {}
    if keras_path is not None:
        from .model import float32_copy, keras_probabilities, load_keras_model
        from .tf_setup import tf

        keras_fn = keras_probabilities(float32_copy(load_keras_model(keras_path))[0], False)
        runners["keras"] = (keras_path, lambda b: keras_fn(tf.constant(b)))
    for name, path in (("onnx-fp32", fp32), ("onnx-int8", int8)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runners[name] = (path, _session_fn(session))
    return runners


def _session_fn(session: InferenceSession) -> BatchFn:
    return lambda batch: session.run(None, {INPUT_NAME: batch})[0]


def _time_interleaved(
    runners: dict[str, tuple[Path, BatchFn]], x: np.ndarray, rounds: int, latency_runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per batch-256 call and per batch-1 call of each format, formats taking turns each round."""
    big = np.ascontiguousarray(np.resize(x, (BATCH, *x.shape[1:])))
    one = np.ascontiguousarray(x[:1])
    batch_times: dict[str, list[float]] = {name: [] for name in runners}
    single_times: dict[str, list[float]] = {name: [] for name in runners}
    for _, fn in runners.values():  # warm-up: graph tracing, oneDNN/ORT kernel selection
        fn(big), fn(one)
    for _ in range(rounds):
        for name, (_, fn) in runners.items():
            batch_times[name] += call_seconds(functools.partial(fn, big), 3)
            single_times[name] += call_seconds(functools.partial(fn, one), latency_runs // rounds)
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
