"""Temperature scaling folded into the exported graph: probabilities that mean what they say.

One number T is fitted on the validation split (the images training held out) by minimising the
negative log-likelihood of ``softmax(logits / T)``, then written into the graph as a ``Div`` by T
on the softmax's input, so every runtime and language gets calibrated probabilities from the same
file. T changes no argmax: accuracy is untouched. The logits are not needed to fit it:
``log p = z - logsumexp(z)`` differs from the logits ``z`` by a per-row constant, which softmax
ignores, so ``softmax(log p / T) = softmax(z / T)``.

Parity: the folded file's probabilities are checked against the unfolded file doing the same in
numpy (``softmax(log p / T)``); the unfolded file itself passed parity against Keras at export.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime import data as data_mod
from ..runtime.batching import run_batched
from ..runtime.calibration import calibration
from ..runtime.config import DEFAULT_BATCH_SIZE, OUTPUT_NAME
from ..runtime.data import Dataset
from ..runtime.errors import ExportError, ParityError
from ..runtime.onnx_file import write_model
from ..runtime.records import TrainingRecord
from .config import DEFAULT_ATOL

if TYPE_CHECKING:  # the [train] extra's onnx, imported where it is used
    from onnx import ModelProto

log = logging.getLogger(__name__)

TEMPERATURE_RANGE = (0.05, 20.0)  # T outside this is a broken fit, not a calibration
TEMPERATURE = "calibration/temperature"  # the initializer's name in the graph


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` of (N, C) probabilities, in float64 (log of 0 clipped to float32's tiniest)."""
    logits = np.log(np.clip(probs.astype(np.float64), np.finfo(np.float32).tiny, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in ``TEMPERATURE_RANGE`` that minimises the mean NLL of ``scaled(probs, T)``: a
    golden-section search on log T (the NLL is smooth and unimodal in it), to 1e-4 relative."""

    def nll(log_t: float) -> float:
        p = scaled(probs, math.exp(log_t))[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-300, None)).mean())

    lo, hi = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


def fold_temperature(model: ModelProto, temperature: float) -> ModelProto:
    """``model`` (an onnx ModelProto) with a ``Div`` by ``temperature`` on the input of the Softmax
    that makes the ``probabilities`` output. Returns a new ModelProto.

    Raises:
        ExportError: no Softmax makes the output (not a cifar-pack export).
    """
    import onnx
    from onnx import helper, numpy_helper

    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    softmax = next((n for n in folded.graph.node if n.op_type == "Softmax" and OUTPUT_NAME in n.output), None)
    if softmax is None:
        raise ExportError(f"no Softmax produces '{OUTPUT_NAME}': cannot fold a temperature into this graph")
    logits, scaled_logits = softmax.input[0], f"{softmax.input[0]}/calibrated"
    folded.graph.initializer.append(numpy_helper.from_array(np.array(temperature, np.float32), TEMPERATURE))
    div = helper.make_node("Div", [logits, TEMPERATURE], [scaled_logits], name="calibration/div")
    softmax.input[0] = scaled_logits
    nodes = list(folded.graph.node)
    folded.graph.ClearField("node")
    folded.graph.node.extend(nodes[: nodes.index(softmax)] + [div] + nodes[nodes.index(softmax) :])
    return folded


def calibrate_onnx(fp32_path: Path, dataset: Dataset | None, record: TrainingRecord, metadata: dict) -> dict:
    """Fit T on the validation split, fold it into ``fp32_path`` (rewritten in place, atomically,
    with ``metadata["calibration"]``), and return that record: temperature, ECE before and after.

    Raises:
        ExportError: no validation images (no data). ParityError: the folded file does not compute
            ``softmax(log p / T)`` of the unfolded one (the file is then left as it was).
    """
    import onnx
    import onnxruntime as ort

    if "calibration" in metadata:
        raise ExportError(f"{fp32_path}: already calibrated (temperature {metadata['calibration']['temperature']:.3f})")
    if dataset is None:
        raise ExportError("--calibrate fits a temperature on the validation images: pass --data")
    _, x, y = data_mod.select(dataset, "val", *record.split)
    if len(y) == 0:
        raise ExportError("--calibrate: the validation split is empty")
    model = onnx.load(str(fp32_path))
    before = _run(ort, model.SerializeToString(), x)
    temperature = fit_temperature(before, y)
    if not TEMPERATURE_RANGE[0] * 1.01 < temperature < TEMPERATURE_RANGE[1] / 1.01:
        log.warning(
            "--calibrate: the temperature is at the edge of its range (%.3g): the model's answers hardly "
            "follow these labels; check that --data is labelled as the model's classes",
            temperature,
        )
    folded = fold_temperature(model, temperature)
    after = _run(ort, folded.SerializeToString(), x)
    max_diff = float(np.abs(after - scaled(before, temperature)).max())
    # The reference takes the log of float32 probabilities, whose rounding (~1e-7 relative) the
    # division by T < 1 multiplies by 1/T: the export tolerance, widened by the same factor.
    atol = DEFAULT_ATOL * max(1.0, 1.0 / temperature)
    if max_diff > atol:
        raise ParityError(f"the calibrated graph is {max_diff:.2g} from softmax(log p / T) (atol {atol:.2g})")
    report = {
        "temperature": temperature,
        "ece_before": calibration(before, y)["ece"],
        "ece_after": calibration(after, y)["ece"],
        "samples": int(len(y)),
        "split": "val",
        "parity_max_abs_diff": max_diff,
    }
    metadata["calibration"] = report
    write_model(fp32_path, folded, metadata)
    return report


def _run(ort: Any, model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return run_batched(lambda batch: session.run(None, {name: batch})[0], x, DEFAULT_BATCH_SIZE)
