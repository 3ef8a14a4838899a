"""The training record: what a run knew about its data, split and results, read one way.

Two places hold it: the run's ``manifest.json`` beside a ``.keras`` model (``cifar-pack train``
writes it, with ``history.json``), and the ``training`` block an exported ``.onnx`` carries in
its metadata. Export, quantize, evaluate, benchmark and the model card all read it through
``TrainingRecord``, so every stage re-creates the same validation split from the same facts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import DEFAULT_SEED, DEFAULT_VALIDATION_SPLIT
from .errors import DataError

log = logging.getLogger(__name__)

# `cifar-pack train`'s options -> the TrainConfig field each sets, as a run record's ``config``
# holds it: what --resume compares and a model card's "How to reproduce" spells out.
TRAIN_OPTIONS = {
    "--recipe": "recipe",
    "--epochs": "epochs",
    "--batch-size": "batch_size",
    "--lr": "learning_rate",
    "--validation-split": "validation_split",
    "--seed": "seed",
    "--precision": "precision",
    "--strategy": "strategy",
}

MANIFEST_FILE = "manifest.json"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class TrainingRecord:
    """A training run's facts; every field may be unknown (None) except the split's two numbers.

    ``data_source`` is ``--data`` as given ("cifar10", a relative path); ``data_path`` its absolute
    form, so later stages find the data from any working directory. ``validation_split`` and
    ``split_seed`` re-create the run's stratified validation split.
    """

    data_source: str | None = None
    data_path: str | None = None
    data_sha256: str | None = None
    validation_split: float = DEFAULT_VALIDATION_SPLIT
    split_seed: int = DEFAULT_SEED
    class_names: tuple[str, ...] | None = None
    epochs: int | None = None
    recipe: str | None = None
    precision: str | None = None
    best_epoch: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    config: dict | None = None  # the full TrainConfig of the run (manifests only)
    train_seconds: float | None = None  # fit + validation, summed over the recorded epochs
    trained_on: str | None = None  # "AMD EPYC (2 cores; avx2 avx512f ...)": the CPU those seconds are for

    @property
    def data_location(self) -> str | None:
        """Where to read the training data from: the absolute path when recorded, else the source."""
        return self.data_path or self.data_source

    @property
    def split(self) -> tuple[float, int]:
        """(validation fraction, seed), for ``data.select(dataset, "val", *record.split)``."""
        return self.validation_split, self.split_seed

    @classmethod
    def from_manifest(cls, manifest: dict) -> TrainingRecord:
        """From a run's manifest (``history`` attached by ``read_manifest`` when present)."""
        data, metrics, config = manifest.get("data") or {}, manifest.get("metrics") or {}, manifest.get("config") or {}
        fraction, seed = _split(data)
        names = manifest.get("class_names")
        return cls(
            data_source=data.get("source"),
            data_path=data.get("path"),
            data_sha256=data.get("sha256"),
            validation_split=fraction,
            split_seed=seed,
            class_names=tuple(names) if isinstance(names, list) else None,
            epochs=len(manifest.get("history") or []) or config.get("epochs"),
            recipe=config.get("recipe"),
            precision=manifest.get("precision"),
            best_epoch=metrics.get("best_epoch"),
            val_accuracy=metrics.get("best_val_accuracy"),
            test_accuracy=metrics.get("test_accuracy"),
            config=config or None,
            train_seconds=manifest.get("seconds"),
            trained_on=manifest.get("trained_on"),
        )

    @classmethod
    def from_metadata(cls, training: dict | None) -> TrainingRecord:
        """From an exported model's ``training`` metadata (``to_metadata``'s keys); {} or None: unknown."""
        training = training if isinstance(training, dict) else {}
        fraction, seed = _split(training)
        keys = ("data_source", "data_sha256", "epochs", "recipe", "precision", "train_seconds", "trained_on")
        known = {k: training.get(k) for k in keys}
        return cls(
            **known,
            validation_split=fraction,
            split_seed=seed,
            best_epoch=training.get("best_epoch"),
            val_accuracy=training.get("val_accuracy"),
            test_accuracy=training.get("test_accuracy"),
            config=training.get("config") if isinstance(training.get("config"), dict) else None,
        )

    def to_metadata(self) -> dict:
        """The ``training`` block export writes into a model's metadata (and ``from_metadata`` reads)."""
        keys = ("data_source", "data_sha256", "validation_split", "split_seed", "epochs", "recipe", "precision")
        block = {k: getattr(self, k) for k in keys + ("train_seconds", "trained_on")}
        return block | {
            "best_epoch": self.best_epoch,
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "config": self.config,  # every training option, so a model card can say how to recreate it
        }

    def to_json(self) -> dict:
        return asdict(self)


def read_manifest(model_path: str | Path) -> dict | None:
    """The raw manifest of the run that wrote ``model_path`` (a ``.keras`` beside it), if any.

    A manifest naming another model file (a copy, an older epoch) is not this model's: None.
    """
    model_path = Path(model_path)
    path = model_path.parent / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        history = model_path.parent / HISTORY_FILE
        if history.exists():
            manifest["history"] = json.loads(history.read_text())
        return manifest if manifest.get("model") == model_path.name else None
    except (ValueError, KeyError, AttributeError):
        log.warning("ignoring unreadable %s", path)
        return None


def read_record(model_path: str | Path) -> TrainingRecord | None:
    """``TrainingRecord.from_manifest`` of the manifest beside ``model_path``; None without one."""
    manifest = read_manifest(model_path)
    return TrainingRecord.from_manifest(manifest) if manifest else None


def _split(block: dict) -> tuple[float, int]:
    """(validation fraction, seed) recorded in ``block``, else the training defaults.

    Raises:
        DataError: a recorded value that is not a fraction in (0, 1) or a non-negative integer.
    """
    fraction, seed = block.get("validation_split"), block.get("split_seed")
    # `is None`, not `or`: a recorded seed of 0 is a seed, not a missing one.
    fraction = DEFAULT_VALIDATION_SPLIT if fraction is None else fraction
    seed = DEFAULT_SEED if seed is None else seed
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise DataError(f"recorded validation_split {fraction!r} is not a fraction between 0 and 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"recorded split_seed {seed!r} is not a non-negative integer")
    return float(fraction), seed
