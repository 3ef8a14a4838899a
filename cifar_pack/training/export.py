"""Export stage: Keras (.keras / .h5) -> self-describing ONNX, gated by parity, optionally int8.

The graph contract (docs/embedding.md): one input ``images`` uint8 [N, 32, 32, 3] RGB NHWC with
N dynamic; cast and scaling inside the graph; one output ``probabilities`` float32 [N, C].
Metadata (``metadata_props``, each value JSON) says the rest; the same content is written to a
sidecar ``<output>.json`` for runtimes that cannot read custom metadata (onnxruntime-web).

tf2onnx's ``convert.from_keras`` fails on Keras 3 models (KeyError 'keras_tensor_...': tf2onnx
1.17 walks Keras 2's internal layer graph, which Keras 3 no longer has), so the model is wrapped in
a ``tf.function`` with a uint8 signature and converted with ``convert.from_function``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..formats.config import DEFAULT_ATOL, DEFAULT_INT8, DEFAULT_MAX_ACCURACY_DROP, DEFAULT_PARITY_SAMPLES, Int8Settings
from ..formats.graph import graph_report, simplify
from ..formats.parity import ParityReport, check_parity
from ..formats.pipeline import Steps, run_steps
from ..runtime import data as data_mod
from ..runtime.config import INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME
from ..runtime.errors import DataError, ExportError
from ..runtime.fileio import package_versions, sha256_file
from ..runtime.onnx_file import write_model
from ..runtime.records import TrainingRecord, read_record
from .config import DEFAULT_OPSET
from .model import (
    check_classifier,
    ends_in_softmax,
    float32_copy,
    keras_probabilities,
    load_keras_model,
    serving_function,
)

if TYPE_CHECKING:
    from onnx import ModelProto

    from .tf_setup import keras

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    onnx: Path
    parity: ParityReport
    int8: Path | None
    int8_report: dict | None
    seconds: float
    calibration: dict | None = None  # formats/calibrate.py's record, with --calibrate

    def to_json(self) -> dict:
        return {
            "onnx": str(self.onnx),
            "int8": str(self.int8) if self.int8 else None,
            "parity": self.parity.to_json(),
            "int8_report": self.int8_report,
            "calibration": self.calibration,
            "seconds": round(self.seconds, 2),
        }


def export_onnx(
    model_path: str | Path,
    output: str | Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    data: str | None = None,
    parity_samples: int = DEFAULT_PARITY_SAMPLES,
    atol: float = DEFAULT_ATOL,
    int8: bool = False,
    int8_settings: Int8Settings = DEFAULT_INT8,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    eval_samples: int | None = None,
    flip_average: bool = False,
    calibrate: bool | None = None,
) -> ExportResult:
    """Convert a Keras image classifier to ONNX and prove it computes what Keras computes.

    Args:
        model_path: ``.keras`` or Keras 2 ``.h5`` full model with a (32, 32, 3) input.
        output: ONNX path; default ``model_path`` with ``.onnx``.
        opset: ONNX opset for tf2onnx.
        data: a ``data.load`` source for parity (and int8 calibration/accuracy); default: the
            training run's manifest beside the model, else random inputs (reported as such).
        parity_samples: at most this many images are compared (default 1,000).
        atol: max abs difference allowed between Keras and onnxruntime probabilities.
        int8: also write ``<stem>.int8.onnx`` (static QDQ quantization), gated on accuracy.
        int8_settings: quantization settings (``config.DEFAULT_INT8``: docs/int8.md).
        max_accuracy_drop, eval_samples: the int8 gate's bound (top-1 points) and sample count.
        flip_average: the graph averages the probabilities of each image and its mirror image
            (test-time flip averaging: two passes through the network, half the images/s).
        calibrate: fit a temperature on the validation split and fold it into the graph
            (``formats/calibrate.py``), before int8; None: when there are validation images.

    Returns:
        ExportResult: paths and reports.

    Raises:
        ModelError: the file is not a usable image classifier. ParityError: the gate failed (no
        file is left at ``output``). ExportError: conversion or quantization failed.

    Example:
        >>> export_onnx("artifacts/model.keras", int8=True).onnx
        PosixPath('artifacts/model.onnx')
    """
    started = time.perf_counter()
    model_path = Path(model_path)
    output = Path(output) if output else model_path.with_suffix(".onnx")
    model = load_keras_model(model_path)
    num_classes = check_classifier(model, model_path)
    record = read_record(model_path)
    model, was_mixed = float32_copy(model)
    softmax_added = not ends_in_softmax(model)

    parity_images, inputs_desc, dataset = parity_inputs(data, record, parity_samples)
    class_names = resolve_class_names(num_classes, record, dataset, model_path)

    converted = convert(model, opset, softmax_added, flip_average)
    onnx_model = simplify(converted)  # what is written is what parity checks
    keras_fn = keras_probabilities(model, softmax_added, flip_average)
    report = check_parity(keras_fn, onnx_model.SerializeToString(), parity_images, atol, inputs_desc)

    metadata = build_metadata(model_path, class_names, record, report, opset, softmax_added, was_mixed, flip_average)
    metadata["graph"] = graph_report(converted, onnx_model)
    write_model(output, onnx_model, metadata)

    if calibrate is None and flip_average:
        # The mean of two softmaxes has no single Softmax to fold a temperature into: calibrating by
        # default does not apply (an explicit --calibrate says so in one line).
        calibrate = False
    steps = Steps(int8, int8_settings, max_accuracy_drop, eval_samples, calibrate)
    after = run_steps(output, dataset, record or TrainingRecord(), metadata, steps)
    seconds = time.perf_counter() - started
    return ExportResult(output, report, after["int8"], after["int8_report"], seconds, after["calibration"])


# ---------------------------------------------------------------------------------------------
# Conversion and metadata


def convert(model: keras.Model, opset: int, softmax_added: bool, flip_average: bool = False) -> ModelProto:
    """tf2onnx ``from_function`` on a uint8 serving function; returns a checked ``onnx.ModelProto``."""
    import onnx
    import tf2onnx

    serve = serving_function(model, softmax_added, flip_average)  # the very function parity runs
    try:
        onnx_model, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=opset)
    except Exception as exc:  # tf2onnx raises many unrelated types
        raise ExportError(f"tf2onnx could not convert the model at opset {opset}: {exc}") from None
    # tf2onnx names the dynamic batch dimension "unk__NN"; embedders read "N" more easily.
    for value in (*onnx_model.graph.input, *onnx_model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    try:
        onnx.checker.check_model(onnx_model)
        onnx_model = onnx.shape_inference.infer_shapes(onnx_model, strict_mode=True)
    except Exception as exc:
        raise ExportError(f"the converted graph fails onnx.checker/shape inference: {exc}") from None
    return onnx_model


def build_metadata(
    model_path: Path,
    class_names: list[str],
    record: TrainingRecord | None,
    parity: ParityReport,
    opset: int,
    softmax_added: bool,
    was_mixed: bool,
    flip_average: bool = False,
) -> dict:
    """Everything an embedding app needs besides the graph, as plain JSON-able values."""
    versions: dict[str, str | int] = {**package_versions("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx")}
    versions |= {"cifar-pack": __version__, "opset": opset}
    return {
        "class_names": list(class_names),
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "layout": "NHWC",
            "shape": ["N", *INPUT_SHAPE],
            "color": "RGB",
            "value_range": [0, 255],
            "preprocessing": "none outside the graph: cast and scaling happen inside",
            "resize": "squash the whole image to 32x32 (aspect ratio not kept) with Pillow BILINEAR "
            "(antialiased when shrinking); alpha composited on white; EXIF orientation applied first",
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", len(class_names)],
            "meaning": "class probabilities (softmax), summing to 1 per row"
            + ("; each row the mean of the image's and its mirror image's" if flip_average else ""),
            "softmax_added_by_export": softmax_added,
            # export --flip-average: the mean over the image and its mirror image (two passes)
            "flip_averaged": flip_average,
        },
        "source_sha256": sha256_file(model_path),
        "source_file": model_path.name,
        "exported_in_float32_from_mixed_precision": was_mixed,
        "training": record.to_metadata() if record else None,
        "parity": parity.to_json(),
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------------------------------------
# Where parity images and class names come from


def parity_inputs(
    data: str | None, record: TrainingRecord | None, samples: int
) -> tuple[np.ndarray, str, data_mod.Dataset | None]:
    """(images (N, 32, 32, 3) uint8, description, Dataset or None).

    ``--data``: up to ``samples`` images drawn from all of its splits. Else the validation
    images of the training run in the record. Else random pixels, said in capitals.
    """
    rng = np.random.default_rng(0)
    if data is not None:
        dataset = data_mod.load(data)
        pool = np.concatenate([x for x, _ in dataset.splits.values()])
        pick = rng.choice(len(pool), size=min(samples, len(pool)), replace=False)
        return pool[np.sort(pick)], f"real images from {data}", dataset
    if record and record.data_location:
        try:
            dataset = data_mod.load(record.data_location)
            _, x_val, _ = data_mod.select(dataset, "val", *record.split)
            pick = rng.choice(len(x_val), size=min(samples, len(x_val)), replace=False)
            return x_val[np.sort(pick)], "validation images of the training run", dataset
        except DataError as exc:
            log.warning("training data of the manifest is not available (%s)", exc)
    log.warning("NO REAL IMAGES AVAILABLE: parity uses random inputs; pass --data for a real check")
    images = rng.integers(0, 256, size=(min(samples, 256), *INPUT_SHAPE), dtype=np.uint8)
    return images, "RANDOM INPUTS (no real images were available)", None


def resolve_class_names(
    num_classes: int, record: TrainingRecord | None, dataset: data_mod.Dataset | None, model_path: Path
) -> list[str]:
    for names in (record and record.class_names, dataset and dataset.class_names):
        if names and len(names) == num_classes:
            return list(names)
    log.warning("%s: no class names found (no manifest, no matching --data); using indices", model_path)
    return [str(i) for i in range(num_classes)]
