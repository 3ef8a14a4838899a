"""The Triton model repository's layout: folder and file names, model names and versions.

    DIR/<name>/config.pbtxt     backend onnxruntime, batch, tensors, dynamic batching, labels
    DIR/<name>/labels.txt       one class name per line, in output order
    DIR/<name>/1/model.onnx     the model (and its sidecar JSON, which Triton ignores)

Names are the file stems with "." replaced ("cifar10.int8" -> "cifar10_int8"): Triton model
names travel in URLs.
"""

from __future__ import annotations

import re
from pathlib import Path

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
