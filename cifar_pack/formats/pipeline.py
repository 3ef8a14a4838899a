"""The steps after a float32 ``.onnx`` exists, one pipeline for both export paths: Keras -> tf2onnx
(``training/export.py``) and an already exported ``.onnx`` (``export --model M.onnx``).

Today two optional steps, a calibrating temperature (``calibrate.py``) and int8 (``int8.py``); the
next targets (an ``.ort`` file for onnxruntime mobile, an OpenVINO IR) are one module here each
and one field of ``Steps``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ..runtime import data as data_mod
from ..runtime.data import Dataset
from ..runtime.errors import ModelError
from ..runtime.onnx_file import model_proto_metadata, read_metadata
from ..runtime.records import TrainingRecord
from .config import DEFAULT_INT8, DEFAULT_MAX_ACCURACY_DROP, Int8Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Steps:
    """Which steps run after the float32 file, with their settings."""

    int8: bool = False
    int8_settings: Int8Settings = DEFAULT_INT8
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP  # the int8 gate, top-1 points
    eval_samples: int | None = None  # validation images the int8 gate uses (None: all)
    # A temperature fitted on the validation split, folded into the float32 file before int8
    # (calibrate.py). None: whenever there are validation images and the file is not calibrated yet;
    # True: required (an error otherwise); False: off.
    calibrate: bool | None = None


def _can_calibrate(fp32_path: Path, dataset: Dataset | None, metadata: dict) -> bool:
    """Whether calibrating by default can run here; says why not when it cannot."""
    if "calibration" in metadata:
        log.info("%s: already calibrated (temperature %.3f): left as it is", fp32_path,
                 metadata["calibration"]["temperature"])  # fmt: skip
        return False
    if dataset is None:
        log.info("%s: not calibrated: no images to fit a temperature on (--data; --no-calibrate says so)", fp32_path)
        return False
    return True


def run_steps(fp32_path: Path, dataset: Dataset | None, record: TrainingRecord, metadata: dict, steps: Steps) -> dict:
    """Run ``steps`` on the written float32 model: ``{"int8": path or None, "int8_report": dict or None,
    "calibration": dict or None}`` (calibration first: int8 quantizes the calibrated file).

    Raises:
        ExportError: a step could not run (no images to calibrate on). ParityError: a gate failed
            (its file is not written).
    """
    result: dict = {"int8": None, "int8_report": None, "calibration": None}
    if steps.calibrate or (steps.calibrate is None and _can_calibrate(fp32_path, dataset, metadata)):
        from .calibrate import calibrate_onnx

        result["calibration"] = calibrate_onnx(fp32_path, dataset, record, metadata)
    if steps.int8:
        from .int8 import quantize_int8

        path, report = quantize_int8(
            fp32_path,
            dataset,
            record,
            metadata,
            settings=steps.int8_settings,
            max_accuracy_drop=steps.max_accuracy_drop,
            eval_samples=steps.eval_samples,
        )
        result |= {"int8": path, "int8_report": report}
    return result


def run_steps_on_onnx(fp32_path: str | Path, data: str | None, steps: Steps) -> dict:
    """``run_steps`` on an already exported float32 cifar-pack ``.onnx`` (no Keras, no TensorFlow).

    Its metadata gives the training data, the validation split and the labels; ``data`` overrides
    where the images are read from (the split stays the recorded one).

    Raises:
        ModelError: not a cifar-pack float32 export. DataError/ExportError/ParityError: as ``run_steps``.
    """
    import onnx

    fp32_path = Path(fp32_path)
    try:
        model = onnx.load(str(fp32_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelError(f"{fp32_path}: not a loadable ONNX model ({type(exc).__name__})") from None
    metadata = read_metadata(model_proto_metadata(model), fp32_path)
    if "quantization" in metadata or any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        raise ModelError(f"{fp32_path}: already quantized; quantize the float32 model it came from")
    record = TrainingRecord.from_metadata(metadata.get("training"))
    source = data or record.data_source
    if not source:
        raise ModelError(f"{fp32_path}: its metadata names no training data; pass --data")
    return run_steps(fp32_path, data_mod.load(source), record, metadata, steps)


def export_onnx_file(model: str | Path, output: str | Path | None, data: str | None, steps: Steps) -> dict:
    """The export of an already exported float32 ``.onnx`` (``export --model M.onnx``): its graph
    rewritten to ``output`` with today's graph (parity-checked against it), then ``steps``.

    Returns ``{"onnx": the float32 file the steps ran on, "parity": report or None, "int8": path
    or None, "int8_report": dict or None}``.

    Raises:
        ModelError, DataError, ExportError, ParityError: as ``resimplify_onnx`` and ``run_steps_on_onnx``.
    """
    result: dict = {"onnx": str(model), "parity": None, "int8": None, "int8_report": None, "calibration": None}
    if output is not None:
        from .graph import resimplify_onnx

        model, parity = resimplify_onnx(model, output)
        result |= {"onnx": str(model), "parity": parity.to_json()}
    if steps.calibrate is None and (data is None or output is None):
        # Calibrating by default writes a new file only: without --output the steps would rewrite the input.
        steps = replace(steps, calibrate=False)
    if steps.int8 or steps.calibrate is not False:
        result |= run_steps_on_onnx(model, data, steps)
    return result
