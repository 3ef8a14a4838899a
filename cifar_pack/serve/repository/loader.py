"""Reading what to serve: one ``.onnx`` (a repository of one), or every model of a Triton
repository, and ``Repository``, where models are (re)loaded from and whether the API may do it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ...runtime.engines import EngineSettings
from ...runtime.errors import ModelError, UsageError
from ...runtime.predictor import resolve_model
from ..config import DEFAULT_MAX_MODELS, ModelControl
from ..models import ServedModel, served_model
from .layout import MODEL_FILE, name_problem, versions

log = logging.getLogger(__name__)


@dataclass
class Repository:
    """Where models are (re)loaded from, and whether the API may do it (``mode``)."""

    root: Path
    mode: ModelControl = ModelControl.none
    engine: EngineSettings = field(default_factory=EngineSettings)  # how its models run
    max_models: int = DEFAULT_MAX_MODELS  # most models served at once, at start and after loads
    failures: dict[str, str] = field(default_factory=dict)  # what did not load at start, and why


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
        return {name: served_model(name, "1", path, engine)}, {}
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
    return served_model(name, found[-1].name, found[-1] / MODEL_FILE, engine)
