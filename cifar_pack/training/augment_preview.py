"""``cifar-pack preview-augment``: the notebook's ``preview/`` folder as one PNG grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..runtime import data as data_mod
from ..runtime.fileio import atomic_path
from .config import TrainConfig

SCALE = 4  # each 32x32 cell is drawn at 128x128 so the augmentation is visible
GAP = 4


def write_preview(source: str, output: Path, config: TrainConfig, rows: int, variants: int, seed: int) -> Path:
    """Rows of [original, ``variants`` augmented copies] from random training images -> PNG."""
    from .pipeline import make_augmenter
    from .tf_setup import tf

    x, _ = data_mod.load(source).split("train")
    rng = np.random.default_rng(seed)
    picks = x[rng.choice(len(x), size=min(rows, len(x)), replace=False)]  # (rows, 32, 32, 3) uint8
    augment = make_augmenter(config.with_overrides(seed=seed))
    batch = tf.cast(np.repeat(picks, variants, axis=0), tf.float32)
    augmented = augment(batch, training=True) if augment.layers else batch
    augmented = np.clip(np.asarray(augmented), 0, 255).astype(np.uint8).reshape(len(picks), variants, 32, 32, 3)

    cell = 32 * SCALE + GAP
    grid = Image.new("RGB", ((variants + 1) * cell + GAP, len(picks) * cell + GAP), (255, 255, 255))
    for r, (original, copies) in enumerate(zip(picks, augmented)):
        for c, img in enumerate([original, *copies]):
            tile = Image.fromarray(img).resize((32 * SCALE, 32 * SCALE), Image.Resampling.NEAREST)
            grid.paste(tile, (GAP + c * cell, GAP + r * cell))
    with atomic_path(output) as tmp:
        grid.save(tmp, format="PNG")
    return Path(output)
