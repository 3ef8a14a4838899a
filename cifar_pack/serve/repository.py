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
from .config import DEFAULT_BATCHING, Batching

LABELS_FILE = "labels.txt"  # one class name per line, in output order
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


def triton_config(
    name: str, input_name: str, num_classes: int, batching: Batching = DEFAULT_BATCHING, backend: str = "onnxruntime"
) -> dict:
    """A model's configuration in Triton's ModelConfig schema (its JSON form): what ``config.pbtxt``
    holds and what the server answers to ``GET /v2/models/NAME/config`` and gRPC ModelConfig."""
    return {
        "name": name,
        "platform": f"{backend}_onnx",
        "backend": backend,
        "max_batch_size": batching.max_batch_size,
        "input": [{"name": input_name, "data_type": "TYPE_UINT8", "dims": list(INPUT_SHAPE)}],
        "output": [{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [num_classes]}],
        "dynamic_batching": {"max_queue_delay_microseconds": round(batching.max_queue_delay_ms * 1000)},
    }


def config_pbtxt(config: dict) -> str:
    """``triton_config``'s value as protobuf text, with the labels file named on the output."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = config | {"output": [config["output"][0] | {"label_filename": LABELS_FILE}]}
    config.pop("platform")  # Triton takes backend or platform; "onnxruntime" alone is its usual form
    message = json_format.ParseDict(config, model_config_pb2.ModelConfig())
    classes = config["output"][0]["dims"][0]
    header = f"# Written by cifar-pack: uint8 [N, 32, 32, 3] RGB images -> float32 [N, {classes}] probabilities.\n"
    return header + text_format.MessageToString(message)


def write_repository(
    onnx_paths: list[str | Path],
    root: str | Path,
    batching: Batching = DEFAULT_BATCHING,
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
        write_bytes_atomic(folder / LABELS_FILE, ("\n".join(predictor.class_names) + "\n").encode())
        config = triton_config(name, predictor.input_name, predictor.num_classes, batching)
        write_bytes_atomic(folder / "config.pbtxt", config_pbtxt(config).encode())
        written.append(folder)
    return written
