"""The ladder from airbench93 to the `fast` recipe: one change per row, each row trained and measured.

    python benchmarks/recipe_ladder.py ROW [ROW ...] [--seed 1337] [--data ARCHIVE] [--jsonl out.jsonl]
    python benchmarks/recipe_ladder.py --list

Each row is `cifar-pack train --recipe fast` with the fields of TrainConfig that the row sets
(`ROWS` below: the first as close to airbench93 as Keras allows, each next one changes one thing
toward the recipe), run through the library's `train()` on the shared training archive's 40,000 /
10,000 split drawn by `--seed` (the held-back test split is never read). The best epoch's Keras
model (what export converts) is then scored on the validation split three ways: one view (what
the bundled file computes), the mean of the image and its mirror (`export --flip-average`), and
airbench's six views (the mirror pair of the image and of its copies shifted one pixel up-left
and down-right with reflected borders, weighted 1/2, 1/4, 1/4). Seconds are the whole `train()`
call (data from the decode cache, the probe-free fixed epochs, validation after each epoch).

`jpeg-qNN` rows train the recipe itself on the archive re-encoded at JPEG quality NN (training
and validation images both; the shared archive is already JPEG at about 75): the slope says what
compression costs, toward the lossless images airbench trains and tests on.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header

# One change per row toward the recipe (cifar_pack/training/config.py's FAST_RECIPE). airbench93's
# terms in Keras' (the recipe's comment has the conversion): batch 1,024 doubles the per-step rate
# (the loss is a mean here, a sum there) with the same per-example weight decay.
AIRBENCH93 = {
    "widths": (64, 128, 128),
    "activation": "gelu",
    "batchnorm_epsilon": 1e-12,
    "whiten_bias_epochs": 3,
    "batch_size": 1024,
    "learning_rate": 1.5,
    "epochs": 11,
    "warmup_fraction": 0.23,
}
STEPS = [  # (row name, what it changes, the field values from here on)
    ("airbench93", "airbench93's terms in Keras", {}),
    ("whiten-bias-frozen", "whitening bias frozen from the start", {"whiten_bias_epochs": 0}),
    ("bn-eps-1e-3", "BatchNorm epsilon 1e-3 (Keras')", {"batchnorm_epsilon": 1e-3}),
    ("relu", "ReLU instead of GELU", {"activation": "relu"}),
    ("warmup-30", "learning-rate peak at 30 % of training instead of 23 %", {"warmup_fraction": 0.3}),
    ("batch-512", "batch 512 (rate 0.75)", {"batch_size": 512, "learning_rate": 0.75}),
    ("epochs-20", "20 epochs", {"epochs": 20}),
    ("widths-48-144-144", "widths 48-144-144: the recipe", {"widths": (48, 144, 144)}),
]


def rows() -> dict[str, dict]:
    """Row name -> {"change": words, "overrides": TrainConfig fields set on the fast recipe}."""
    table, current = {}, dict(AIRBENCH93)
    for name, change, fields in STEPS:
        current = current | fields
        table[name] = {"change": change, "overrides": dict(current)}
    for quality in (50, 30):
        table[f"jpeg-q{quality}"] = {"change": f"the recipe on images re-encoded at JPEG quality {quality}",
                                     "overrides": {}, "quality": quality}  # fmt: skip
    return table


def reencoded(archive: Path, quality: int, folder: Path) -> Path:
    """``archive``'s class folders with every JPEG decoded and saved again at ``quality``."""
    from PIL import Image

    out = folder / f"{archive.name.split('.')[0]}-q{quality}.tar"
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            if not member.isfile():
                continue
            data = src.extractfile(member).read()
            buffer = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=quality)
            info = tarfile.TarInfo(member.name)
            info.size = buffer.tell()
            buffer.seek(0)
            dst.addfile(info, buffer)
    return out


def view_accuracies(model_path: Path, source: str, seed: int) -> dict[str, float]:
    """Validation accuracy of the saved model with 1, 2 and 6 views (module docstring)."""
    from cifar_pack.runtime import data as data_mod
    from cifar_pack.runtime.config import DEFAULT_VALIDATION_SPLIT
    from cifar_pack.training.tf_setup import keras

    x_all, y_all = data_mod.load(source).split("train")
    _, val_idx = data_mod.stratified_split(y_all, DEFAULT_VALIDATION_SPLIT, seed)
    x, y = x_all[val_idx].astype(np.float32), y_all[val_idx]
    model = keras.models.load_model(model_path)

    def mirrored(images: np.ndarray) -> np.ndarray:
        p = model.predict(images, batch_size=1000, verbose=0)
        return (p + model.predict(images[:, :, ::-1], batch_size=1000, verbose=0)) / 2

    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    one = model.predict(x, batch_size=1000, verbose=0)
    two = mirrored(x)
    six = 0.5 * two + 0.25 * mirrored(padded[:, :32, :32]) + 0.25 * mirrored(padded[:, 2:, 2:])
    return {f"val_{n}_view": float(np.mean(p.argmax(1) == y)) for n, p in (("1", one), ("2", two), ("6", six))}


def run_row(name: str, row: dict, seed: int, data: Path, scratch: Path) -> dict:
    from cifar_pack.training.config import FAST_RECIPE
    from cifar_pack.training.train import train

    source = str(reencoded(data, row["quality"], scratch) if "quality" in row else data)
    config = FAST_RECIPE.with_overrides(seed=seed, **row["overrides"])
    started = time.perf_counter()
    result = train(source, scratch / f"{name}-{seed}", config)
    seconds = time.perf_counter() - started
    history = json.loads(Path(result.history).read_text())
    history = history.get("epochs", history) if isinstance(history, dict) else history
    return {
        "row": name,
        "change": row["change"],
        "seed": seed,
        "overrides": row["overrides"],
        "epochs": config.epochs,
        "seconds": round(seconds, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],  # > 2 at the end: it shared the 2 cores
        "val_per_epoch": [round(h["val_accuracy"], 4) for h in history],
        **view_accuracies(Path(result.model), source, seed),
    }


def main() -> None:
    table = rows()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", choices=[*table, []])
    parser.add_argument("--list", action="store_true", help="print the rows and their settings")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--jsonl", help="append each row's result as one JSON line")
    args = parser.parse_args()
    if args.list or not args.rows:
        for name, row in table.items():
            print(f"{name:20} {row['change']}: {row['overrides']}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    header(
        "recipe ladder", "each row trained with train() on the validation split of --seed; accuracies of the best epoch"
    )
    with tempfile.TemporaryDirectory(prefix="ladder-") as scratch:
        for name in args.rows:
            result = run_row(name, table[name], args.seed, args.data, Path(scratch))
            print(json.dumps(result), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
