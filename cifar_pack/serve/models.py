"""What the server serves: one ``.onnx``, or every model of a Triton-style model repository."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.engines import EngineSettings
from ..runtime.errors import ModelError, UsageError
from ..runtime.predictor import Predictor, resolve_model
from .config import DEFAULT_MAX_MODELS
from .repository import MODEL_FILE, name_problem, versions

log = logging.getLogger(__name__)


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
    engine: EngineSettings = EngineSettings(),
    max_models: int = DEFAULT_MAX_MODELS,
    name: str | None = None,
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """``({name: ServedModel}, {name: why it did not load})``: ``name`` or the model's file stem,
    or each folder name of a repository.

    A repository is Triton's layout, ``DIR/<name>/<version>/model.onnx``; the highest numeric
    version of each model is served. A repository model that does not load is logged by name with
    its reason and left out; the others are served.

    Raises:
        UsageError: both, or a repository where no model loads. ModelError: the one model does not load.
    """
    if model is not None and repository is not None:
        raise UsageError("--model and --model-repository: give one of them")
    if name is not None and repository is not None:
        raise UsageError("--model-name names a single --model; a repository's models are named by their folders")
    if repository is None:
        path = resolve_model(model)
        name = path.stem if name is None else name
        if problem := name_problem(name):
            raise UsageError(f"--model-name: {problem}")
        return {name: _served(name, "1", path, engine)}, {}
    served, failures = load_repository(Path(repository), engine, max_models)
    for name, why in failures.items():
        shown = name if name.isprintable() else repr(name)  # a folder name may hold a newline
        log.warning("--model-repository: %s not served: %s", shown, why)
    if not served:
        raise UsageError(f"--model-repository {repository}: no model loads ({'; '.join(failures.values()) or 'empty'})")
    return served, failures


def load_repository(
    root: Path, engine: EngineSettings = EngineSettings(), max_models: int = DEFAULT_MAX_MODELS
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """Every model of a Triton-style repository: ({name: ServedModel}, {name: why it did not load}).

    Raises:
        UsageError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise UsageError(f"--model-repository {root}: not a folder")
    names = repository_names(root)
    if len(names) > max_models:
        raise UsageError(
            f"--model-repository {root}: {len(names)} model folders, over --max-models {max_models} "
            "(each loaded model holds its weights and an engine; raise the cap if the memory is there)"
        )
    served, failures = {}, {}
    for name in names:
        try:
            served[name] = load_one(root, name, engine)
        except (ModelError, UsageError) as exc:
            failures[name] = without_root(str(exc), root)
    if any((root / name / "config.pbtxt").is_file() for name in served):
        log.info("--model-repository: config.pbtxt files are not read; each model's contract comes from its .onnx")
    return served, failures


def without_root(reason: str, root: Path) -> str:
    """A load failure's reason as clients see it: paths relative to the repository, so the index and
    load errors do not tell callers where the server keeps its files ("cifar10/1/model.onnx: ...")."""
    for prefix in {str(root.resolve()), str(root.absolute()), str(root)}:
        reason = reason.replace(prefix.rstrip("/") + "/", "")
    return reason


def repository_names(root: Path) -> list[str]:
    """The model folders of a repository, sorted (hidden folders are not models)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_one(root: Path, name: str, engine: EngineSettings = EngineSettings()) -> ServedModel:
    """The highest version of ``root/name``, read again from disk.

    Raises:
        ModelError: no ``<version>/model.onnx`` in the folder, or a model that does not load.
    """
    if problem := name_problem(name):
        raise ModelError(problem)
    folder = root / name
    found = versions(folder) if folder.is_dir() else []
    if not found:
        raise ModelError(f"{folder}: no <version>/{MODEL_FILE} inside")
    return _served(name, found[-1].name, found[-1] / MODEL_FILE, engine)


def _served(name: str, version: str, path: Path, engine: EngineSettings) -> ServedModel:
    predictor = Predictor(path, settings=engine)
    # Predictor.metadata already holds the embedded metadata, or the sidecar where the file has
    # none (checked against the model's sha256): /model.json serves it with the labels in use.
    sidecar = dict(predictor.metadata) | {"class_names": predictor.class_names}
    if not predictor.class_names:
        raise ModelError(f"{path}: no classes")
    return ServedModel(name, version, path, predictor, sidecar)
