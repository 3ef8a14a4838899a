"""The Triton model repository layout: written from exported ``.onnx`` files (``export --triton``),
read by ``cifar-pack serve --model-repository``; the same folder runs on NVIDIA Triton Inference
Server and on KServe. No TensorFlow, and nothing of the server's ASGI stack.

    DIR/<name>/config.pbtxt     backend onnxruntime, batch, tensors, dynamic batching, labels
    DIR/<name>/labels.txt       one class name per line, in output order
    DIR/<name>/1/model.onnx     the model (and its sidecar JSON, which Triton ignores)

Names are the file stems with "." replaced ("cifar10.int8" -> "cifar10_int8"): Triton model
names travel in URLs. The config is protobuf text format, checked in the tests against the
schema tritonclient ships (``tritonclient.grpc.model_config_pb2``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..runtime.config import INPUT_SHAPE, OUTPUT_NAME
from ..runtime.fileio import atomic_path, write_bytes_atomic
from ..runtime.onnx_file import sidecar_path
from .config import DEFAULT_BATCHING

MODEL_FILE = "model.onnx"  # DIR/<name>/<version>/model.onnx, as Triton's onnxruntime backend expects
# Model names travel in URLs, metric labels and logs: letters, digits, "_", "-" and "." (not first),
# at most 128 characters. A folder named otherwise is not served (said in the index and the log).
MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
# Versions are positive ASCII integers, as Triton's: str.isdigit() also accepts "²", which int() refuses.
VERSION = re.compile(r"[1-9][0-9]{0,17}")


def versions(folder: Path) -> list[Path]:
    """A model folder's numeric version folders that hold a model, oldest first."""
    found = (v for v in folder.iterdir() if VERSION.fullmatch(v.name) and (v / MODEL_FILE).is_file())
    return sorted(found, key=lambda v: int(v.name))


def name_problem(name: str) -> str | None:
    """Why a folder name cannot be a model name, or None when it can."""
    if MODEL_NAME.fullmatch(name):
        return None
    return f"{name[:40]!r} is not a model name (letters, digits, '_', '-', '.', at most 128)"


def model_name(onnx_path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", Path(onnx_path).stem)


def config_pbtxt(name: str, input_name: str, num_classes: int, max_batch_size: int, max_queue_delay_us: int) -> str:
    dims = ", ".join(str(d) for d in INPUT_SHAPE)
    return f"""# Written by cifar-pack: uint8 [N, 32, 32, 3] RGB images -> float32 [N, {num_classes}] probabilities.
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{input_name}"
    data_type: TYPE_UINT8
    dims: [ {dims} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {num_classes} ]
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
"""


def write_repository(
    onnx_paths: list[str | Path],
    root: str | Path,
    max_batch_size: int = DEFAULT_BATCHING.max_batch_size,
    max_queue_delay_ms: float = DEFAULT_BATCHING.max_queue_delay_ms,
) -> list[Path]:
    """Add each model to the repository at ``root`` (created if missing); return the model folders.

    Raises:
        ModelError: a file that is not a cifar-pack classifier (checked by loading it).
    """
    from ..runtime.predictor import Predictor

    root, written = Path(root), []
    for onnx_path in map(Path, onnx_paths):
        predictor = Predictor(onnx_path, device="cpu")
        name = model_name(onnx_path)
        folder = root / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "1" / MODEL_FILE) as tmp:
            shutil.copyfile(onnx_path, tmp)
        if sidecar_path(onnx_path).is_file():
            with atomic_path(sidecar_path(folder / "1" / MODEL_FILE)) as tmp:
                shutil.copyfile(sidecar_path(onnx_path), tmp)
        write_bytes_atomic(folder / "labels.txt", ("\n".join(predictor.class_names) + "\n").encode())
        text = config_pbtxt(
            name, predictor.input_name, predictor.num_classes, max_batch_size, round(max_queue_delay_ms * 1000)
        )
        write_bytes_atomic(folder / "config.pbtxt", text.encode())
        written.append(folder)
    return written
