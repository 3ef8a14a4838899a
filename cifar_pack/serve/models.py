"""What the server serves: a named, versioned model with its predictor, built and warmed up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.config import INPUT_SHAPE
from ..runtime.engines import EngineSettings
from ..runtime.errors import ModelError
from ..runtime.predictor import Predictor


@dataclass
class ServedModel:
    name: str
    version: str
    path: Path
    predictor: Predictor
    sidecar: dict = field(default_factory=dict)  # for clients that run the model themselves (/model.json)


def served_model(name: str, version: str, path: Path, engine: EngineSettings) -> ServedModel:
    predictor = Predictor(path, settings=engine)
    # Predictor.metadata already holds the embedded metadata, or the sidecar where the file has
    # none (checked against the model's sha256): /model.json serves it with the labels in use.
    sidecar = dict(predictor.metadata) | {"class_names": predictor.class_names}
    if not predictor.class_names:
        raise ModelError(f"{path}: no classes")
    return ServedModel(name, version, path, predictor, sidecar)


def warm_up(model: ServedModel, max_batch_size: int) -> ServedModel:
    """Run the batch sizes the batcher will use most (1 and the largest) once, before ``model`` is
    ready: onnxruntime allocates and picks its kernels on a session's first calls."""
    for size in sorted({1, max_batch_size}):
        model.predictor.predict_proba(np.zeros((size, *INPUT_SHAPE), np.uint8))
    return model


def model_metadata(name: str, version: str, predictor: Predictor) -> dict:
    """A model's KServe v2 metadata (``GET /v2/models/NAME``), for the server and the Ray Serve deployment."""
    return {
        "name": name,
        "versions": [version],
        "platform": f"{predictor.settings.engine.value}_onnx",
        "inputs": [{"name": predictor.input_name, "datatype": "UINT8", "shape": [-1, *INPUT_SHAPE]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, predictor.num_classes]}],
    }
