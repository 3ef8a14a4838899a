"""Evaluate stage: accuracy, per-class precision/recall, confusion matrix, class balance.

An ``.onnx`` model runs on onnxruntime only (TensorFlow is not imported); a ``.keras``/``.h5``
model runs in Keras. Classes are matched by name, never by position.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as data_mod
from .errors import DataError, ModelError
from .fileio import write_json_atomic
from .metrics import confusion_matrix, summarize, write_confusion_png

log = logging.getLogger(__name__)


@dataclass
class Classifier:
    """What evaluation needs from a model, whatever its format."""

    path: Path
    class_names: list[str]
    predict_proba: object  # (N, 32, 32, 3) uint8 -> (N, C) float32
    training: dict | None  # the training run's facts, when known (data source, split, accuracy)
    format: str
    quantization: dict | None = None  # the int8 gate's report, for int8 ONNX models


def load_classifier(model: str | os.PathLike | None) -> Classifier:
    """Open an ONNX model with onnxruntime, or a Keras model with Keras (imported only then)."""
    from .predict import Predictor, resolve_model

    path = resolve_model(model)
    if path.suffix == ".onnx":
        predictor = Predictor(path)
        meta = predictor.metadata
        quantization = meta.get("quantization") if isinstance(meta.get("quantization"), dict) else None
        return Classifier(
            path, predictor.class_names, predictor.predict_proba, meta.get("training"), "onnx", quantization
        )
    from .model import check_classifier, float32_copy, keras_probabilities, load_keras_model, read_manifest

    keras_model = load_keras_model(path)
    num_classes = check_classifier(keras_model, path)
    keras_model, _ = float32_copy(keras_model)
    manifest = read_manifest(path) or {}
    names = manifest.get("class_names") or [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ModelError(f"{path}: manifest lists {len(names)} classes but the model outputs {num_classes}")
    training = None
    if manifest:
        training = {**manifest["data"], "val_accuracy": manifest["metrics"].get("best_val_accuracy")}
        training.setdefault("data_source", manifest["data"].get("source"))
    return Classifier(path, list(names), keras_probabilities(keras_model, False), training, "keras")


def evaluate(
    model: str | os.PathLike | None,
    data: str,
    split: str | None = None,
    out: str | os.PathLike = "artifacts/eval",
    model_card: str | os.PathLike | None = None,
    batch_size: int = 512,
) -> dict:
    """Evaluate ``model`` on one split of ``data``; write a JSON report and a confusion PNG.

    Args:
        model: ``.onnx``, ``.keras`` or ``.h5``; ``None`` = the model ``cifar-pack predict`` uses.
        data: any ``data.load`` source. split: ``test`` (default when present), ``val``
            (the training run's stratified split, same fraction and seed) or ``train``.
        out: directory for ``report.json`` and ``confusion.png``.
        model_card: also write a Markdown model card here.

    Returns:
        The report: model, data, split, samples, accuracy, per_class, confusion_matrix,
        confusion_png, class_balance, most_confused, seconds.

    Raises:
        DataError: missing split, empty set, class names that do not match the model's.
    """
    started = time.perf_counter()
    clf = load_classifier(model)
    dataset = data_mod.load(data)
    fraction, seed = data_mod.split_params(clf.training)
    split, x, y = data_mod.select(dataset, split, fraction, seed)
    if len(y) == 0:
        raise DataError(f"{data}: the {split} split is empty")
    y_model = map_labels(dataset.class_names, clf.class_names, y, data, clf.path)
    absent = [name for name in clf.class_names if name not in dataset.class_names]
    if absent:
        kept = len(clf.class_names) - len(absent)
        log.warning("%s: no images of %s; evaluating the other %d classes", data, ", ".join(absent), kept)
    trained_on = (clf.training or {}).get("data_sha256")
    if split == "val" and trained_on and trained_on != dataset.sha256:
        log.warning(
            "--split val: %s is not the data %s was trained on, so 'val' is a stratified %d%% of it, "
            "not the run's validation images",
            data,
            clf.path.name,
            round(100 * fraction),
        )

    probs = np.concatenate([clf.predict_proba(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_model, pred, len(clf.class_names))
    summary = summarize(matrix, clf.class_names)

    out = Path(out)
    png = write_confusion_png(
        matrix,
        clf.class_names,
        out / "confusion.png",
        title=f"{clf.path.name} on {Path(str(data)).name} [{split}], accuracy {summary['accuracy']:.2%}",
    )
    report = {
        "model": str(clf.path),
        "format": clf.format,
        "data": str(data),
        "data_sha256": dataset.sha256,
        "split": split,
        "absent_classes": absent,
        **summary,
        "confusion_matrix": matrix.tolist(),
        "class_names": clf.class_names,
        "confusion_png": str(png),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(out / "report.json", report)
    if model_card:
        from .model_card import write_model_card

        probe = out_of_scope_probe(clf)
        report["model_card"] = str(write_model_card(Path(model_card), report, clf.training, probe, clf.quantization))
    return report


def out_of_scope_probe(clf: Classifier, n: int = 500, seed: int = 0) -> dict:
    """What the model says about images of none of its classes: uniform noise and flat colours.

    Returns per kind the mean top-1 probability, the share answered with probability >= 0.5 and
    the class it answers most, for the model card's out-of-scope section.
    """
    rng = np.random.default_rng(seed)
    kinds = {
        "uniform noise": rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
        "flat colours": np.broadcast_to(rng.integers(0, 256, size=(n, 1, 1, 3), dtype=np.uint8), (n, 32, 32, 3)).copy(),
    }
    probe = {}
    for kind, x in kinds.items():
        probs = clf.predict_proba(x)
        top = probs.max(axis=1)
        counts = np.bincount(probs.argmax(axis=1), minlength=len(clf.class_names))
        probe[kind] = {
            "images": n,
            "mean_top1_probability": float(top.mean()),
            "share_above_0.5": float(np.mean(top >= 0.5)),
            "most_answered": clf.class_names[int(counts.argmax())],
            "most_answered_share": float(counts.max() / n),
        }
    return probe


def map_labels(data_names: list[str], model_names: list[str], y: np.ndarray, data, model_path) -> np.ndarray:
    """Dataset label indices -> the model's indices, matched by class name.

    The data may hold a subset of the model's classes (the others simply have no support);
    a class the model does not know is an error.
    """
    unknown = sorted(set(data_names) - set(model_names))
    if unknown:
        raise DataError(
            f"{data}: classes {', '.join(unknown)} are not among the classes of {model_path} ({', '.join(model_names)})"
        )
    lookup = np.array([model_names.index(name) for name in data_names], dtype=np.int64)
    return lookup[y]
