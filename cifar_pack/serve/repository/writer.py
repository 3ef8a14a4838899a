"""Writing a Triton model repository from exported ``.onnx`` files (``cifar-pack export --triton``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...runtime.fileio import atomic_path, write_bytes_atomic
from ...runtime.onnx_file import sidecar_path
from ..config import DEFAULT_BATCHING, Batching
from .layout import LABELS_FILE, MODEL_FILE, model_name
from .triton import config_pbtxt, triton_config


def write_repository(
    onnx_paths: list[str | Path],
    root: str | Path,
    batching: Batching = DEFAULT_BATCHING,
) -> list[Path]:
    """Add each model to the repository at ``root`` (created if missing); return the model folders.

    Raises:
        ModelError: a file that is not a cifar-pack classifier (checked by loading it).
    """
    from ...runtime.predictor import Predictor

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
