"""int8: static QDQ quantization with ``onnxruntime.quantization``, gated on accuracy.

quant_pre_process (shape inference + graph optimisation) -> quantize_static (QDQ, per-channel
int8 weights, uint8 activations, calibration on training images the validation split never
sees) -> accuracy on the validation split against the float32 ONNX model -> speed at batch 256
and 1. Too large an accuracy drop raises ``ParityError`` and leaves no int8 file.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from . import data as data_mod
from .config import INPUT_NAME
from .errors import ExportError, ParityError
from .export import set_metadata, sidecar_path
from .fileio import write_bytes_atomic, write_json_atomic
from .sysinfo import has_vnni

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")


def quantize_int8(
    fp32_path: Path,
    dataset,
    manifest: dict | None,
    metadata: dict,
    *,
    calibration_samples: int = 400,
    method: str = "minmax",
    max_accuracy_drop: float = 1.0,
    eval_samples: int | None = None,
) -> tuple[Path, dict]:
    """Write ``<stem>.int8.onnx`` beside ``fp32_path``; return (path, report).

    Raises:
        ExportError: no real images to calibrate on, or quantization failed.
        ParityError: top-1 accuracy fell more than ``max_accuracy_drop`` points.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if method not in METHODS:
        raise ExportError(f"--calibrate-method must be one of {', '.join(METHODS)}, got {method!r}")
    if dataset is None:
        raise ExportError("--int8 needs real images for calibration and its accuracy gate: pass --data")
    split, seed = data_mod.split_params(manifest and manifest["data"])
    x_all, y_all = dataset.split("train")
    train_idx, val_idx = data_mod.stratified_split(y_all, split, seed)
    rng = np.random.default_rng(seed)
    calib = x_all[rng.choice(train_idx, size=min(calibration_samples, len(train_idx)), replace=False)]
    eval_idx = (
        val_idx
        if eval_samples is None
        else np.sort(rng.choice(val_idx, min(eval_samples, len(val_idx)), replace=False))
    )
    x_eval, y_eval = x_all[eval_idx], y_all[eval_idx]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: calib[i : i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self):
            return next(self.batches, None)

    out_path = fp32_path.with_name(f"{fp32_path.stem}.int8.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(q),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[method],
            )
        except Exception as exc:  # onnxruntime.quantization raises assorted types
            raise ExportError(f"int8 quantization of {fp32_path} failed: {exc}") from None
        int8_model = onnx.load(str(q))

    fp32_session = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    int8_session = ort.InferenceSession(int8_model.SerializeToString(), providers=["CPUExecutionProvider"])
    acc32 = accuracy(fp32_session, x_eval, y_eval)
    acc8 = accuracy(int8_session, x_eval, y_eval)
    drop = 100.0 * (acc32 - acc8)
    report = {
        "format": "QDQ, per-channel int8 weights, uint8 activations",
        "calibrate_method": method,
        "calibration_samples": int(len(calib)),
        "eval_set": f"validation split ({len(y_eval)} images)",
        "float32_accuracy": acc32,
        "int8_accuracy": acc8,
        "accuracy_drop_points": drop,
        "max_accuracy_drop": max_accuracy_drop,
        "passed": drop <= max_accuracy_drop,
        "avx512_vnni": has_vnni(),
    }
    if drop > max_accuracy_drop:
        raise ParityError(
            f"int8 accuracy gate failed: top-1 {acc8:.4f} vs float32 {acc32:.4f}, a drop of {drop:.2f} points "
            f"> --max-accuracy-drop {max_accuracy_drop}; no int8 file written",
            report,
        )
    report |= measure_speedup(fp32_session, int8_session, x_eval)
    log.info(
        "int8: accuracy %.4f (float32 %.4f, drop %.2f points), %.2fx throughput at batch 256",
        acc8,
        acc32,
        drop,
        report["speedup_batch256"],
    )

    meta = dict(metadata) | {"quantization": report}
    set_metadata(int8_model, meta)
    write_bytes_atomic(out_path, int8_model.SerializeToString())
    write_json_atomic(sidecar_path(out_path), meta)
    return out_path, report


def accuracy(session, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    probs = np.concatenate([session.run(None, {INPUT_NAME: x[i : i + batch]})[0] for i in range(0, len(x), batch)])
    return float(np.mean(probs.argmax(1) == y))


def measure_speedup(fp32_session, int8_session, images: np.ndarray, repeats: int = 5) -> dict:
    """Median images/s at batch 256 and median ms at batch 1, float32 vs int8, interleaved."""
    big = np.resize(images, (256, *images.shape[1:]))
    one = images[:1]

    def timed(session, batch, n):
        session.run(None, {INPUT_NAME: batch})  # warm-up
        times = []
        for _ in range(n):
            t = time.perf_counter()
            session.run(None, {INPUT_NAME: batch})
            times.append(time.perf_counter() - t)
        return statistics.median(times)

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
