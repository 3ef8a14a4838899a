"""Frozen settings shared by every stage: the image contract, class names, training recipes.

Nothing here imports TensorFlow, so the runtime (predict) can read the contract cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum

from .errors import UsageError

# The image contract of every model cifar-pack builds or exports: (32, 32, 3) uint8 RGB, NHWC.
IMAGE_SIZE = 32
CHANNELS = 3
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"

# The Toronto release's label order (batches.meta), which is also alphabetical.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


# Stratified validation split shared by train, export, evaluate and benchmark.
DEFAULT_VALIDATION_SPLIT = 0.2
DEFAULT_SEED = 1337


@dataclass(frozen=True)
class Augment:
    """Augmentation as Keras preprocessing layers (factors are fractions of the image size)."""

    rotation_degrees: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = True
    fill_mode: str = "nearest"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; stored in the manifest and in the resume state.

    ``schedule`` is "constant" (the notebook) or "onecycle" (linear warm-up then cosine decay).
    """

    recipe: str = "default"
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "onecycle"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: Augment = field(default_factory=Augment)
    validation_split: float = DEFAULT_VALIDATION_SPLIT
    seed: int = DEFAULT_SEED
    precision: str = "auto"  # auto | float32 | mixed_bfloat16
    strategy: str = "default"  # default | mirrored | multi-worker

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["augment"] = Augment(**data.get("augment", {}))
        return cls(**data)

    def with_overrides(self, **overrides) -> TrainConfig:
        """Copy with the options the user gave explicitly (``None`` means "keep the recipe's")."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# The notebook exactly: RMSprop 1e-3, batch 128, 20 epochs, ImageDataGenerator's augmentation.
SEED_RECIPE = TrainConfig(
    recipe="seed",
    optimizer="rmsprop",
    learning_rate=1e-3,
    weight_decay=0.0,
    schedule="constant",
    warmup_epochs=0.0,
    label_smoothing=0.0,
    augment=Augment(
        rotation_degrees=40.0,
        width_shift=0.2,
        height_shift=0.2,
        zoom=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
    ),
    precision="float32",
)

# Same architecture, a schedule and an augmentation sized for a 20-epoch budget: AdamW with a
# one-cycle (linear warm-up, cosine decay) learning rate, label smoothing 0.1, horizontal flips
# only, bf16 compute where the CPU has it. Within 20 epochs the dropout-heavy seed CNN underfits,
# so shifts cost more than they give: chosen on the validation split only (docs/recipes.md).
DEFAULT_RECIPE = TrainConfig(
    recipe="default",
    augment=Augment(horizontal_flip=True),
)

RECIPES = {"default": DEFAULT_RECIPE, "seed": SEED_RECIPE}

CALIBRATE_METHODS = ("minmax", "entropy", "percentile")

# Export's defaults, shared by the library and the command line.
DEFAULT_OPSET = 17
DEFAULT_PARITY_SAMPLES = 1000  # validation images compared, Keras vs onnxruntime
DEFAULT_ATOL = 1e-5  # largest |Keras - onnxruntime| probability difference allowed
DEFAULT_MAX_ACCURACY_DROP = 1.0  # int8 gate, top-1 points on the validation split


# The choices of the command line, as Enums: typer lists them in --help and refuses others as a
# usage error naming the option. Values are the strings the library takes.
class Recipe(str, Enum):
    default = "default"
    seed = "seed"


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    mixed_bfloat16 = "mixed_bfloat16"


class Strategy(str, Enum):
    default = "default"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


class CalibrateMethod(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


@dataclass(frozen=True)
class Int8Settings:
    """What ``quantize_static`` is asked for; recorded in the int8 model's metadata.

    The defaults were chosen on the validation split, both CPU kinds: docs/int8.md.

    ``activations``/``weights``: "uint8" or "int8". ``reduce_range``: 7-bit weights, which
    onnxruntime's AVX2 kernel cannot saturate (cifar_pack/quantize.py). ``per_channel``: one
    scale per output channel of each Conv/Gemm weight.
    """

    activations: str = "uint8"
    weights: str = "int8"
    per_channel: bool = True
    reduce_range: bool = True
    calibrate_method: str = "percentile"
    calibration_samples: int = 400

    def describe(self) -> str:
        bits = "7-bit (reduce_range)" if self.reduce_range and self.weights == "int8" else "8-bit"
        per = "per-channel" if self.per_channel else "per-tensor"
        return f"QDQ, {per} {bits} {self.weights} weights, {self.activations} activations"


DEFAULT_INT8 = Int8Settings()


def validate_config(config: TrainConfig) -> None:
    """Reject impossible settings with a message naming the option (the CLI exits 2)."""
    if config.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if not 0.0 < config.validation_split < 1.0:
        raise UsageError(f"--validation-split must be between 0 and 1 (exclusive), got {config.validation_split}")
    if config.precision not in ("auto", "float32", "mixed_bfloat16"):
        raise UsageError(f"--precision must be auto, float32 or mixed_bfloat16, got {config.precision!r}")
    if config.strategy not in ("default", "mirrored", "multi-worker"):
        raise UsageError(f"--strategy must be default, mirrored or multi-worker, got {config.strategy!r}")
    if config.learning_rate <= 0:
        raise UsageError(f"--lr must be positive, got {config.learning_rate}")
