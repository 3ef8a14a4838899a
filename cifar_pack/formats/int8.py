"""int8: static QDQ quantization with ``onnxruntime.quantization``, gated on accuracy.

graph.simplify (static shapes, so every runtime loads the result) -> quant_pre_process (shape
inference + graph optimisation) -> quantize_static (QDQ, settings below, calibration on training
images the validation split never sees) -> accuracy on the validation split against the float32
ONNX model -> speed at batch 256 and 1. Too large an accuracy drop raises ``ParityError`` and
leaves no int8 file.

Only the heavy layers are int8 (the convolutions and the two Gemms' inputs and weights); what the
Gemms return, the softmax and the probabilities stay float32. Quantizing the output made every
probability a multiple of 1/255 (rows summing to 0.984-1.008, 66 exact top-1 ties in 10,000
images), and the DQ -> Gemm -> Q pattern is what OpenCV's DNN engine refuses to load.

Why 7-bit weights (``reduce_range``) by default: onnxruntime's U8S8 kernel on AVX2 without VNNI
(the project's AMD Zen 3 machines) adds pairs of u8*s8 products in a saturating int16
(VPMADDUBSW), so the same int8 file scored 0.41 points lower there than on AVX-512 VNNI (where
products accumulate exactly in int32). With weights in [-64, 64] a pair is at most
255 * 128 = 32,640 < 32,767: saturation cannot happen, every CPU computes the same integers,
and the accuracy measured on the exporting machine holds on the other kind. The figures behind
the choice are in docs/int8.md (``benchmarks/int8_settings.py``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime import data as data_mod
from ..runtime.batching import median_seconds, run_batched
from ..runtime.config import INPUT_NAME, choices
from ..runtime.data import Dataset
from ..runtime.errors import ExportError, ParityError, UsageError
from ..runtime.onnx_file import write_model
from ..runtime.records import TrainingRecord
from ..runtime.sysinfo import cpu_info, int8_advice, int8_kernel
from .config import DEFAULT_INT8, DEFAULT_MAX_ACCURACY_DROP, CalibrateMethod, Int8Settings
from .graph import simplify

if TYPE_CHECKING:
    from onnx import ModelProto
    from onnxruntime import InferenceSession

log = logging.getLogger(__name__)


# Kept float32 in the int8 file: what the fully-connected layers return, and every node after the
# last of them (the logits, a logit scale such as the fast CNN's Mul by 1/9, the softmax).
FLOAT_OUTPUT_OPS = ("Gemm", "MatMul")


def float_tail(nodes: list) -> list[str]:
    """Names of the nodes after the last Gemm/MatMul (``nodes`` in graph order, which ONNX keeps
    topological): the head that turns logits into probabilities, kept float32."""
    last = max((i for i, n in enumerate(nodes) if n.op_type in FLOAT_OUTPUT_OPS), default=len(nodes) - 1)
    return [n.name for n in nodes[last + 1 :]]


# The AVX2 U8S8 kernel sums two u8*s8 products in int16: safe while 255 * (|w1| + |w2|) <= 32767.
INT16_MAX = 32767
UINT8_MAX = 255


def quantize_model(fp32_path: Path, calibration: np.ndarray, settings: Int8Settings = DEFAULT_INT8) -> ModelProto:
    """Static QDQ quantization of ``fp32_path``; returns the int8 ``onnx.ModelProto``.

    ``calibration``: uint8 (N, 32, 32, 3) images the quantizer runs to find activation ranges.

    Raises:
        ExportError: bad settings, or onnxruntime.quantization failed.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    method = _calibration_method(settings, CalibrationMethod)
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}

    # The histogram methods stack per-batch outputs with np.asarray, which fails when the last
    # batch is shorter (onnxruntime.quantization's HistogramCollector): give them equal batches.
    step = 32 if settings.calibrate_method == "minmax" else 1

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: calibration[i : i + step]} for i in range(0, len(calibration), step)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        simple, pre, q = Path(tmp) / "simple.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        try:
            onnx.save(simplify(onnx.load(str(fp32_path))), str(simple))
            quant_pre_process(str(simple), str(pre), skip_symbolic_shape=True)
            # onnxruntime's histogram calibrators print progress to stdout, which would break
            # `--json` output: stdout is kept for our results.
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(
                    str(pre),
                    str(q),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range,
                    activation_type=types[settings.activations],
                    weight_type=types[settings.weights],
                    calibrate_method=method,
                    nodes_to_exclude=float_tail(list(onnx.load(str(pre)).graph.node)),
                    extra_options={"OpTypesToExcludeOutputQuantization": list(FLOAT_OUTPUT_OPS)},
                )
        except Exception as exc:  # onnxruntime.quantization raises assorted types
            raise ExportError(f"int8 quantization of {fp32_path} failed: {exc}") from None
        # simplify again: quant_pre_process declares nine opset domains the graph never uses
        return simplify(onnx.load(str(q)))


def _calibration_method(settings: Int8Settings, methods: Any) -> Any:
    """onnxruntime's ``CalibrationMethod`` member for ``settings.calibrate_method``; ``UsageError`` if unknown."""
    if settings.calibrate_method not in choices(CalibrateMethod):
        raise UsageError(
            f"--calibrate-method must be one of {', '.join(choices(CalibrateMethod))}, "
            f"got {settings.calibrate_method!r}"
        )
    return {"minmax": methods.MinMax, "entropy": methods.Entropy, "percentile": methods.Percentile}[
        settings.calibrate_method
    ]


def avx2_pair_bound(int8_model: ModelProto) -> dict:
    """Worst case of the AVX2 U8S8 kernel's int16 pair sums, from the weights alone.

    Every int8 weight tensor feeding a DequantizeLinear is checked: two adjacent products are at
    most 255 * 2 * max|w|. ``saturation_free`` is True when that fits in int16 for every tensor,
    i.e. AVX2 computes exactly what VNNI/AMX compute. uint8 weights (U8U8) use a widening kernel
    on AVX2 that cannot saturate.
    """
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in int8_model.graph.initializer}
    worst = 0
    for node in int8_model.graph.node:
        tensor = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if tensor is not None and tensor.data_type == TensorProto.INT8 and len(tensor.dims) > 1:
            w = numpy_helper.to_array(tensor).astype(np.int32)
            worst = max(worst, UINT8_MAX * 2 * int(np.abs(w).max()))
    return {"avx2_worst_pair_sum": worst, "int16_max": INT16_MAX, "saturation_free": worst <= INT16_MAX}


def allowed_drop(max_accuracy_drop: float, images: int) -> float:
    """The int8 gate's limit in top-1 points: ``max_accuracy_drop``, but never less than one image.

    On fewer than 100 / max_accuracy_drop validation images (100 at the default 1.0) a single
    image is more than the limit, and which image of a near-tie flips depends on the CPU's int8
    kernel family (AVX2's saturating pair sums vs VNNI's exact int32): on 10 images one flip is 10
    points. Such a gate would pass on one CPU and fail on another, so it allows one image.
    """
    return max(max_accuracy_drop, 100.0 / images if images else 0.0)


def measure_int8(
    fp32_path: Path,
    dataset: Dataset | None,
    record: TrainingRecord,
    *,
    settings: Int8Settings = DEFAULT_INT8,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    eval_samples: int | None = None,
) -> tuple[ModelProto, dict]:
    """Quantize ``fp32_path`` and measure it against float32; gate nothing, write nothing.

    Calibration images come from the training part of the recorded split, accuracy from its
    validation part, so the gate never sees an image calibration saw. Returns (int8
    ``onnx.ModelProto``, report); ``report["passed"]`` says whether the drop is within
    ``max_accuracy_drop``. The report names this machine's int8 kernels (``measured_on``) and
    whether the weights allow the AVX2 kernel to saturate (``avx2``).

    Raises:
        ExportError: no real images to calibrate on, or quantization failed.
    """
    import onnxruntime as ort

    if dataset is None:
        raise ExportError("--int8 needs real images for calibration and its accuracy gate: pass --data")
    x_all, y_all = dataset.split("train")
    train_idx, val_idx = data_mod.stratified_split(y_all, *record.split)
    rng = np.random.default_rng(record.split_seed)
    calib_idx = rng.choice(train_idx, size=min(settings.calibration_samples, len(train_idx)), replace=False)
    if eval_samples is not None:
        val_idx = np.sort(rng.choice(val_idx, min(eval_samples, len(val_idx)), replace=False))
    x_eval, y_eval = x_all[val_idx], y_all[val_idx]
    int8_model = quantize_model(fp32_path, x_all[calib_idx], settings)

    fp32_session = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    int8_session = ort.InferenceSession(int8_model.SerializeToString(), providers=["CPUExecutionProvider"])
    acc32, acc8 = accuracy(fp32_session, x_eval, y_eval), accuracy(int8_session, x_eval, y_eval)
    drop = 100.0 * (acc32 - acc8)
    allowed = allowed_drop(max_accuracy_drop, len(y_eval))
    machine = cpu_info()
    report = {
        "format": settings.describe(),
        "settings": asdict(settings) | {"calibration_samples": int(len(calib_idx))},
        "calibrate_method": settings.calibrate_method,
        "calibration_samples": int(len(calib_idx)),
        "eval_set": f"validation split ({len(y_eval)} images)",
        "float32_accuracy": acc32,
        "int8_accuracy": acc8,
        "accuracy_drop_points": drop,
        "max_accuracy_drop": max_accuracy_drop,
        "allowed_drop_points": allowed,
        "passed": drop <= allowed + 1e-9,  # + 1e-9: one image's 100/n points computed two ways
        "measured_on": {
            "cpu": machine["model"],
            "isa": machine["flags"],
            "int8_kernel": int8_kernel(machine["flags"], machine["machine"]),
        },
        "avx2": avx2_pair_bound(int8_model),
    }
    return int8_model, report | measure_speedup(fp32_session, int8_session, x_eval)


def quantize_int8(
    fp32_path: Path,
    dataset: Dataset | None,
    record: TrainingRecord,
    metadata: dict,
    *,
    settings: Int8Settings = DEFAULT_INT8,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    eval_samples: int | None = None,
) -> tuple[Path, dict]:
    """Write ``<stem>.int8.onnx`` beside ``fp32_path`` if it passes the accuracy gate; (path, report).

    Raises:
        ExportError: as ``measure_int8``.
        ParityError: top-1 accuracy fell more than ``max_accuracy_drop`` points (no file written).
    """
    int8_model, report = measure_int8(
        fp32_path, dataset, record, settings=settings, max_accuracy_drop=max_accuracy_drop, eval_samples=eval_samples
    )
    acc8, acc32, drop = report["int8_accuracy"], report["float32_accuracy"], report["accuracy_drop_points"]
    if not report["passed"]:
        limit = f"--max-accuracy-drop {max_accuracy_drop}"
        if report["allowed_drop_points"] > max_accuracy_drop:
            limit += f" (one image of {report['eval_set']}: {report['allowed_drop_points']:.2f})"
        raise ParityError(
            f"int8 accuracy gate failed: top-1 {acc8:.4f} vs float32 {acc32:.4f}, a drop of {drop:.2f} points "
            f"> {limit}; no int8 file written",
            report,
        )
    if report["allowed_drop_points"] > max_accuracy_drop:
        log.warning(
            "int8 gate on %s: one image is %.2f points, more than --max-accuracy-drop %s, so the gate allows "
            "one image; validate on more images for a meaningful int8 figure",
            report["eval_set"],
            report["allowed_drop_points"],
            max_accuracy_drop,
        )
    advice = int8_advice(cpu_info())
    if advice:
        log.warning("%s", advice)
    if report["speedup_batch256"] < 1.0:
        log.warning(
            "the int8 file ran %.2fx float32's speed at batch 256 on this CPU: it is smaller, not faster, here",
            report["speedup_batch256"],
        )
    log.info(
        "int8: accuracy %.4f (float32 %.4f, drop %.2f points, measured on %s), %.2fx throughput at batch 256",
        acc8,
        acc32,
        drop,
        report["measured_on"]["int8_kernel"],
        report["speedup_batch256"],
    )
    meta = dict(metadata) | {"quantization": report}
    out_path = write_model(fp32_path.with_name(f"{fp32_path.stem}.int8.onnx"), int8_model, meta)
    return out_path, report


def accuracy(session: InferenceSession, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    probs = run_batched(lambda b: session.run(None, {INPUT_NAME: b})[0], x, batch)
    return float(np.mean(probs.argmax(1) == y))


def measure_speedup(
    fp32_session: InferenceSession, int8_session: InferenceSession, images: np.ndarray, repeats: int = 5
) -> dict:
    """Median images/s at batch 256 and median ms at batch 1, float32 vs int8."""
    big = np.resize(images, (256, *images.shape[1:]))
    one = images[:1]

    def timed(session: InferenceSession, batch: np.ndarray, n: int) -> float:
        return median_seconds(lambda: session.run(None, {INPUT_NAME: batch}), n)

    t32, t8 = timed(fp32_session, big, repeats), timed(int8_session, big, repeats)
    l32, l8 = timed(fp32_session, one, 20 * repeats), timed(int8_session, one, 20 * repeats)
    return {
        "float32_images_per_second_batch256": 256 / t32,
        "int8_images_per_second_batch256": 256 / t8,
        "speedup_batch256": t32 / t8,
        "float32_ms_batch1": 1000 * l32,
        "int8_ms_batch1": 1000 * l8,
        "speedup_batch1": l32 / l8,
    }
