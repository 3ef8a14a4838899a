"""What the server serves: one ``.onnx``, or every model of a Triton-style model repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.config import DEFAULT_DEVICE
from ..runtime.errors import ModelError, UsageError
from ..runtime.predictor import Predictor, resolve_model
from .repository import MODEL_FILE, versions


@dataclass
class ServedModel:
    name: str
    version: str
    path: Path
    predictor: Predictor
    sidecar: dict = field(default_factory=dict)  # for clients that run the model themselves (/model.json)


def load_models(
    model: str | Path | None,
    repository: str | Path | None,
    device: str = DEFAULT_DEVICE,
    threads: int | None = None,
) -> dict[str, ServedModel]:
    """``{name: ServedModel}``: the model's file stem, or each folder name of a repository.

    A repository is Triton's layout, ``DIR/<name>/<version>/model.onnx``; the highest numeric
    version of each model is served.

    Raises:
        UsageError: both or an empty repository. ModelError: a model that does not load.
    """
    if model is not None and repository is not None:
        raise UsageError("--model and --model-repository: give one of them")
    if repository is None:
        path = resolve_model(model)
        return {path.stem: _served(path.stem, "1", path, device, threads)}
    root = Path(repository)
    if not root.is_dir():
        raise UsageError(f"--model-repository {root}: not a folder")
    served = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = versions(folder)
        if found:
            served[folder.name] = _served(folder.name, found[-1].name, found[-1] / MODEL_FILE, device, threads)
    if not served:
        raise UsageError(f"--model-repository {root}: no <name>/<version>/model.onnx inside")
    return served


def _served(name: str, version: str, path: Path, device: str, threads: int | None) -> ServedModel:
    predictor = Predictor(path, device=device, threads=threads)
    # Predictor.metadata already holds the embedded metadata, or the sidecar where the file has
    # none (checked against the model's sha256): /model.json serves it with the labels in use.
    sidecar = dict(predictor.metadata) | {"class_names": predictor.class_names}
    if not predictor.class_names:
        raise ModelError(f"{path}: no classes")
    return ServedModel(name, version, path, predictor, sidecar)
