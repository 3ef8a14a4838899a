"""Evaluate stage: accuracy, per-class precision/recall, confusion matrix, class balance.

An ``.onnx`` model runs on its engine (onnxruntime or OpenVINO; TensorFlow is not imported); a
``.keras``/``.h5`` model runs in Keras. Classes are matched by name, never by position.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as data_mod
from .batching import BatchFn, run_batched
from .calibration import calibration, write_reliability_png
from .config import DEFAULT_EVAL_DIR, KERAS_SUFFIXES
from .engines import EngineSettings
from .errors import DataError, ModelError
from .fileio import write_json_atomic
from .metrics import confusion_matrix, summarize, write_confusion_png
from .records import TrainingRecord

log = logging.getLogger(__name__)


@dataclass
class EvalModel:
    """What evaluation needs from a model, whatever its format (the Keras adapter lives in
    ``cifar_pack.training.model.keras_classifier``, so this side never imports TensorFlow)."""

    path: Path
    class_names: list[str]
    predict_proba: BatchFn  # (N, 32, 32, 3) uint8 -> (N, C) float32
    training: TrainingRecord  # the training run's facts (data source, split, accuracy); fields None when unknown
    format: str
    quantization: dict | None = None  # the int8 gate's report, for int8 ONNX models
    # What ran an ONNX model (Predictor.engine_info); asked after the run, when kernels are chosen.
    engine: Callable[[], dict] | None = None
    flip_averaged: bool = False  # export --flip-average: each image averaged with its mirror image in the graph
    calibration: dict | None = None  # export's calibration record (temperature, ECE before/after), when calibrated


def onnx_classifier(model: str | os.PathLike | None, settings: EngineSettings | None = None) -> EvalModel:
    """Open an ONNX model with onnxruntime or OpenVINO (``None``: the model ``cifar-pack predict`` uses).

    Raises:
        ModelError: a Keras file (evaluate it through the training side), or an unusable model.
    """
    from .predictor import Predictor, resolve_model

    path = resolve_model(model)
    if path.suffix in KERAS_SUFFIXES:
        raise ModelError(f"{path}: a Keras model; load it with cifar_pack.training.model.keras_classifier")
    predictor = Predictor(path, settings=settings)
    meta = predictor.metadata
    quantization = meta.get("quantization") if isinstance(meta.get("quantization"), dict) else None
    training = TrainingRecord.from_metadata(meta.get("training"))
    output = meta["output"] if isinstance(meta.get("output"), dict) else {}
    return EvalModel(
        path,
        predictor.class_names,
        predictor.predict_proba,
        training,
        "onnx",
        quantization,
        predictor.engine_info,
        flip_averaged=output.get("flip_averaged") is True,
        calibration=meta.get("calibration") if isinstance(meta.get("calibration"), dict) else None,
    )


def evaluate(
    model: EvalModel | str | os.PathLike | None,
    data: str,
    split: str | None = None,
    out: str | os.PathLike = DEFAULT_EVAL_DIR,
    model_card: str | os.PathLike | None = None,
    batch_size: int = 512,
) -> dict:
    """Evaluate ``model`` on one split of ``data``; write a JSON report and two PNGs.

    Args:
        model: a ``EvalModel`` (e.g. ``keras_classifier(path)``), or an ``.onnx`` path; ``None`` =
            the model ``cifar-pack predict`` uses.
        data: any ``data.load`` source. split: ``test``, ``val`` (the training run's stratified
            split, same fraction and seed) or ``train``; None: ``default_split``.
        out: directory for ``report.json``, ``confusion.png`` and ``reliability.png``.
        model_card: also write a Markdown model card here.

    Returns:
        The report (also ``out/report.json``): accuracy, per_class, confusion_matrix, ece,
        calibration_bins, the two PNGs' paths, class_balance, most_confused, seconds, provenance.

    Raises:
        DataError: missing split, empty set, class names that do not match the model's.
    """
    started = time.perf_counter()
    clf = model if isinstance(model, EvalModel) else onnx_classifier(model)
    dataset = data_mod.load(data)
    split, x, y = data_mod.select(dataset, split or default_split(clf, dataset, data), *clf.training.split)
    if len(y) == 0:
        raise DataError(f"{data}: the {split} split is empty")
    y_model = map_labels(dataset.class_names, clf.class_names, y, data, clf.path)
    absent = _warn_about_mismatches(clf, dataset, data, split)

    probs = run_batched(clf.predict_proba, x, batch_size)
    pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_model, pred, len(clf.class_names))
    summary = summarize(matrix, clf.class_names)

    out = Path(out)
    calib = calibration(probs, y_model)
    title = f"{clf.path.name} on {Path(str(data)).name} [{split}]"
    png, reliability = _pictures(out, matrix, calib, clf.class_names, title)
    report = {
        "model": str(clf.path),
        "format": clf.format,
        "engine": clf.engine() if clf.engine else None,
        "data": str(data),
        "data_sha256": dataset.sha256,
        "split": split,
        "absent_classes": absent,
        **summary,
        "confusion_matrix": matrix.tolist(),
        "class_names": clf.class_names,
        "confusion_png": str(png),
        "ece": calib["ece"],
        "calibration_bins": calib["bins"],
        "reliability_png": str(reliability),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(out / "report.json", report)
    if model_card:
        report["model_card"] = str(_write_card(Path(model_card), report, clf))
    return report


def _write_card(path: Path, report: dict, clf: EvalModel) -> Path:
    """The model card: this report, the out-of-scope probe, and what the model's metadata records."""
    from .model_card import write_model_card

    probe = out_of_scope_probe(clf)
    return write_model_card(path, report, clf.training, probe, clf.quantization, clf.flip_averaged, clf.calibration)


def _pictures(out: Path, matrix: np.ndarray, calib: dict, class_names: list[str], title: str) -> tuple[Path, Path]:
    """The confusion matrix and the reliability diagram, as PNGs in ``out``."""
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    confusion = write_confusion_png(matrix, class_names, out / "confusion.png", f"{title}, accuracy {accuracy:.2%}")
    return confusion, write_reliability_png(calib, out / "reliability.png", title)


def default_split(clf: EvalModel, dataset: data_mod.Dataset, data: str) -> str:
    """``test`` where the data has one; else ``val`` when the model was trained on this very data (its
    record's sha256), the images training held out; else ``train``, all of them, with a warning that
    images the model trained on would make the accuracy optimistic."""
    if dataset.has_test:
        return "test"
    if clf.training.data_sha256 == dataset.sha256:
        log.info("%s has no test split: evaluating the validation images %s's training held out", data, clf.path.name)
        return "val"
    log.warning(
        "%s has no test split and is not the data %s's record names: evaluating all of its images; any that "
        "trained the model make the accuracy optimistic (--split val or a test/ folder to choose)",
        data,
        clf.path.name,
    )
    return "train"


def _warn_about_mismatches(clf: EvalModel, dataset: data_mod.Dataset, data: str, split: str) -> list[str]:
    """The model's classes the data has no images of (said, then returned); a 'val' that is not the run's."""
    absent = [name for name in clf.class_names if name not in dataset.class_names]
    if absent:
        kept = len(clf.class_names) - len(absent)
        log.warning("%s: no images of %s; evaluating the other %d classes", data, ", ".join(absent), kept)
    trained_on = clf.training.data_sha256
    if split == "train" and trained_on == dataset.sha256:
        log.warning(
            "--split train: %s trained %s; %d%% of these images are ones it learned from, so the accuracy is "
            "optimistic (--split val for the held-out ones)",
            data,
            clf.path.name,
            round(100 * (1 - clf.training.validation_split)),
        )
    if split == "val" and trained_on and trained_on != dataset.sha256:
        log.warning(
            "--split val: %s is not the data %s was trained on, so 'val' is a stratified %d%% of it, "
            "not the run's validation images",
            data,
            clf.path.name,
            round(100 * clf.training.validation_split),
        )
    return absent


def out_of_scope_probe(clf: EvalModel, n: int = 500, seed: int = 0) -> dict:
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


def map_labels(
    data_names: list[str], model_names: list[str], y: np.ndarray, data: str | os.PathLike, model_path: str | os.PathLike
) -> np.ndarray:
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
