"""``cifar-pack train`` and ``cifar-pack preview-augment``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..runtime.config import ARTIFACTS, DEFAULT_SEED, DEFAULT_VALIDATION_SPLIT
from ..runtime.data import check_source
from ..runtime.errors import Interrupted
from ..runtime.records import TRAIN_OPTIONS
from ..training.config import RECIPES, Precision, Recipe, Strategy, TrainConfig, check_minutes, validate_config
from ..training.run_state import read_state, resumed_config
from .app import app
from .common import DATA_HELP, STARTED, DataOpt, JsonOpt, command, emit


def _recipe(name: Recipe) -> TrainConfig:
    return RECIPES[name.value]


def _per_recipe(option: str) -> str:
    """ "default 20, seed 20, fast 15": an option's value in each recipe, for --help."""
    return ", ".join(f"{name} {getattr(config, option)}" for name, config in RECIPES.items())


RECIPE_HELP = (
    "default (AdamW one-cycle, tuned on validation), seed (the notebook) or fast (BatchNorm CNN, "
    "airbench-style; docs/recipes.md)."
)


@app.command()
@command
def train(
    data: Annotated[str | None, typer.Option("--data", help=DATA_HELP, show_default="cifar10")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run directory for checkpoints and reports.")] = ARTIFACTS,
    recipe: Annotated[Recipe, typer.Option("--recipe", help=RECIPE_HELP)] = Recipe.default,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help=f"Epochs (the recipe's if omitted: {_per_recipe('epochs')}).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help=f"Global batch size (the recipe's: {_per_recipe('batch_size')}).")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (recipe's if omitted).")] = None,
    validation_split: Annotated[
        float | None,
        typer.Option(
            "--validation-split",
            help="Stratified validation fraction in (0, 1).",
            show_default=str(DEFAULT_VALIDATION_SPLIT),
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", min=0, help="Seed for the split, shuffling and augmentation.", show_default=str(DEFAULT_SEED)
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="auto: bf16 on a GPU or where the CPU has BF16/AMX and TensorFlow runs oneDNN.",
            show_default="auto",
        ),
    ] = None,
    strategy: Annotated[
        Strategy | None,
        typer.Option("--strategy", help="mirrored (several GPUs) or multi-worker (TF_CONFIG).", show_default="default"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run in --out from its last completed epoch.")
    ] = False,
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes",
            help="Time budget: as many of the epochs as fit, chosen before training from a timed probe.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a recipe's CNN and keep the best epoch (by val_accuracy) as OUT/model.keras."""
    options: dict[str, str | int | float | None] = {
        "--epochs": epochs,
        "--batch-size": batch_size,
        "--lr": lr,
        "--validation-split": validation_split,
    }
    options |= {"--seed": seed, "--precision": precision.value if precision else None}
    options |= {"--strategy": strategy.value if strategy else None}
    if resume:
        # Before TensorFlow's import: a missing run or a changed option answers at once.
        given = options | {"--data": data, "--recipe": recipe.value if recipe != Recipe.default else None}
        data, config = resumed_config(out, read_state(out)[0], given)
    else:
        data = data or "cifar10"
        config = _recipe(recipe).with_overrides(**{TRAIN_OPTIONS[o]: v for o, v in options.items()})
        validate_config(config)
        check_source(data)
    check_minutes(minutes, resume, config)
    try:
        from ..training.train import train as run_training

        result = run_training(data, out, config, resume=resume, minutes=minutes, started=STARTED).to_json()
    except KeyboardInterrupt:  # before fit() started (imports, data loading): train's own handler not reached
        raise Interrupted(f"interrupted before the first epoch finished: nothing was saved in {out}") from None
    text = (
        f"best val_accuracy {result['best_val_accuracy']:.4f} (epoch {result['best_epoch']}/{result['epochs']}), "
        f"test_accuracy {result['test_accuracy'] if result['test_accuracy'] is not None else 'n/a'}, "
        f"{result['seconds']:.0f}s, {result['images_per_second']:.0f} images/s\nmodel: {result['model']}"
    )
    emit(result, as_json, text)


@app.command("preview-augment")
@command
def preview_augment(
    data: DataOpt = "cifar10",
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = ARTIFACTS
    / "augment-preview.png",
    recipe: Annotated[Recipe, typer.Option("--recipe", help="Whose augmentation to show.")] = Recipe.default,
    images: Annotated[int, typer.Option("--images", min=1, max=64, help="Source images (rows).")] = 8,
    variants: Annotated[
        int, typer.Option("--variants", min=1, max=16, help="Augmented copies per image (columns after the original).")
    ] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Which images and which augmentations.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Write one PNG grid: each row an original image followed by augmented copies."""
    config = _recipe(recipe)
    from ..training.augment_preview import write_preview

    check_source(data)
    path = write_preview(data, output, config, images, variants, seed)
    emit(
        {"preview": str(path), "recipe": recipe.value, "images": images, "variants": variants}, as_json, f"wrote {path}"
    )
