"""The training side's settings and defaults, one home: recipes, the opset, the command line's choices.

Nothing here imports TensorFlow, so the command line reads its defaults and choices cheaply.
The image contract and the split defaults are the runtime's (``cifar_pack.runtime.config``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum

from ..runtime.config import DEFAULT_SEED, DEFAULT_VALIDATION_SPLIT, choices
from ..runtime.errors import UsageError


# The choices of the command line, as Enums: typer lists them in --help and refuses others as a
# usage error naming the option. Values are the strings the library takes.
class Recipe(StrEnum):
    default = "default"
    seed = "seed"
    fast = "fast"


class Architecture(StrEnum):
    seed = "seed"  # the notebook's CNN (architectures.build_model)
    fast = "fast"  # BatchNorm CNN with a frozen whitening layer, after airbench (architectures.build_fast_model)


class Precision(StrEnum):
    auto = "auto"
    float32 = "float32"
    mixed_bfloat16 = "mixed_bfloat16"


class Strategy(StrEnum):
    default = "default"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


@dataclass(frozen=True)
class Augment:
    """Augmentation as Keras preprocessing layers (factors are fractions of the image size)."""

    rotation_degrees: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = True
    # airbench's flips (pipeline.alternating_flips): in epoch 1 a fixed random half of the images is
    # mirrored, after that each image the other way round every epoch; random flips without it
    alternate_flips: bool = False
    fill_mode: str = "nearest"
    interpolation: str = "bilinear"  # "nearest": shifts move whole pixels (as a padded random crop does)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; stored in the manifest and in the resume state.

    ``schedule`` is "constant" (the notebook), "onecycle" (linear warm-up then cosine decay) or
    "triangular" (linear warm-up over ``warmup()`` epochs, then linear decay to 7 % of the peak).
    """

    recipe: str = "default"
    architecture: str = "seed"  # an Architecture value
    epochs: int = 20
    batch_size: int = 128
    drop_remainder: bool = False  # drop each epoch's last, partial training batch (pipeline.train_steps)
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    momentum: float = 0.9  # SGD's (Nesterov)
    lookahead: bool = False  # airbench's weight averaging (training/weights.py); fast architecture
    weight_decay: float = 0.05
    schedule: str = "onecycle"
    warmup_epochs: float = 1.0
    # When set, the warm-up is this share of all epochs instead (``warmup_epochs`` unused), so that
    # --epochs keeps the schedule's shape: airbench's triangle peaks at a fixed share of training.
    warmup_fraction: float | None = None
    label_smoothing: float = 0.1
    augment: Augment = field(default_factory=Augment)
    validation_split: float = DEFAULT_VALIDATION_SPLIT
    seed: int = DEFAULT_SEED
    precision: str = "auto"  # a Precision value
    strategy: str = "default"  # a Strategy value
    # The fast architecture's shape; None: architectures.FAST_WIDTHS / FAST_ACTIVATION. The recipe
    # ladder in docs/recipes.md varies these one at a time (benchmarks/recipe_ladder.py).
    widths: tuple[int, ...] | None = None
    activation: str | None = None  # "relu" or "gelu"
    batchnorm_epsilon: float = 1e-3  # Keras' default; airbench's is 1e-12
    # airbench trains the whitening layer's bias for its first 3 epochs, then freezes it; 0 keeps
    # it frozen at the centring bias from the start (architectures.whitening_weights)
    whiten_bias_epochs: int = 0

    def warmup(self) -> float:
        """Epochs of learning-rate warm-up (fractional epochs count their steps)."""
        return self.warmup_fraction * self.epochs if self.warmup_fraction is not None else self.warmup_epochs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["augment"] = Augment(**data.get("augment", {}))
        if data.get("widths") is not None:  # JSON gives a list
            data["widths"] = tuple(data["widths"])
        return cls(**data)

    def with_overrides(self, **overrides: str | int | float | None) -> TrainConfig:
        """Copy with the options the user gave explicitly (``None`` means "keep the recipe's")."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"TrainConfig has no option {', '.join(unknown)}")
        return TrainConfig.from_dict(self.to_dict() | given)


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

# Fast: airbench94's network and optimiser sized for two CPU cores (docs/recipes.md has the
# epochs, seeds and ablation): a BatchNorm CNN with ReLUs (widths: training/architectures.py's
# FAST_WIDTHS) whose first layer is a frozen, centred 2x2 patch-whitening convolution computed
# from the training images, identity-start convolutions, BatchNorm biases at 64x the rate;
# Nesterov SGD at batch 512 with airbench's rate and decay per example (its 11.5 and 0.0153 per
# 1,024 examples at momentum 0.85 are 0.75 and 0.0102 here in Keras' terms), a triangular
# schedule, lookahead averaging, BatchNorm statistics refreshed before each validation, label
# smoothing 0.2, alternating flips and 2-pixel translations (reflected borders, whole pixels), each
# epoch's last, partial batch dropped (40,000 = 78 x 512 + 64: a 64-image batch at the peak rate
# set validation back by points), bf16 compute where the CPU has it; 20 epochs: 6.6 minutes on the
# 2-core Xeon with AMX, 88.4 % validation (median of three seeds; 30 epochs gave the same median in
# 11.3 minutes, and 20 also fit 15 minutes without AMX, where an epoch costs more: docs/recipes.md).
FAST_RECIPE = TrainConfig(
    recipe="fast",
    architecture="fast",
    epochs=20,
    batch_size=512,
    drop_remainder=True,
    optimizer="sgd",
    learning_rate=0.75,
    momentum=0.85,
    weight_decay=0.0102,
    lookahead=True,
    schedule="triangular",
    warmup_fraction=0.3,  # 6 of 20 epochs; --epochs 4 warms up for 1.2
    label_smoothing=0.2,
    augment=Augment(
        width_shift=2 / 32,
        height_shift=2 / 32,
        horizontal_flip=True,
        alternate_flips=True,
        fill_mode="reflect",
        interpolation="nearest",
    ),
)

RECIPES = {Recipe.default.value: DEFAULT_RECIPE, Recipe.seed.value: SEED_RECIPE, Recipe.fast.value: FAST_RECIPE}

# Export's defaults, shared by the library and the command line (parity and int8: formats/config.py).
DEFAULT_OPSET = 17


def validate_config(config: TrainConfig) -> None:
    """Reject impossible settings with a message naming the option (the CLI exits 2)."""
    if config.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if not 0.0 < config.validation_split < 1.0:
        raise UsageError(f"--validation-split must be between 0 and 1 (exclusive), got {config.validation_split}")
    for option, enum, value in (
        ("--precision", Precision, config.precision),
        ("--strategy", Strategy, config.strategy),
        ("architecture", Architecture, config.architecture),
    ):
        if value not in choices(enum):
            raise UsageError(f"{option} must be one of {', '.join(choices(enum))}, got {value!r}")
    if config.warmup_fraction is not None and not 0.0 <= config.warmup_fraction < 1.0:
        raise UsageError(f"warmup_fraction must be in [0, 1), got {config.warmup_fraction}")
    if config.activation not in (None, "relu", "gelu"):
        raise UsageError(f"activation must be relu or gelu, got {config.activation!r}")
    if config.learning_rate <= 0:
        raise UsageError(f"--lr must be positive, got {config.learning_rate}")


def check_minutes(minutes: float | None, resume: bool, config: TrainConfig) -> None:
    """``--minutes`` (training/budget.py): positive, for a new run on one machine."""
    if minutes is None:
        return
    if not math.isfinite(minutes) or minutes <= 0:  # nan compares False with everything: check it first
        raise UsageError(f"--minutes must be a positive number of minutes, got {minutes:g}")
    if resume:
        raise UsageError("--minutes: chooses a new run's epochs; a resumed run keeps the epochs it chose")
    if config.strategy == "multi-worker":
        raise UsageError("--minutes: each worker would time itself and choose its own epochs; give --epochs")
