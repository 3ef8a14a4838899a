"""Training steps of the fast CNN: GELU or ReLU, Keras' BatchNormalization or FusedBatchNorm, in one run.

    python benchmarks/fast_step.py [--rounds 5] [--steps 6] [--batch 512] [--precision auto]
        [--max-isa AVX512_CORE_BF16] [--json out.json]

Each variant is the `fast` recipe's network (training/architectures.py's widths) compiled as `cifar-pack
train --recipe fast` compiles it (Nesterov SGD, triangular schedule, label smoothing), in one
process, on the same random batches of 512 uint8 images held in memory (no input pipeline, no
validation, no callbacks: the step alone). After 3 warm-up steps each, the variants alternate,
`--steps` steps each per round, and the median step gives ms and images/s; ratios are to the
first row, the network bundled until 2026-12-06 (GELU, Keras' BatchNormalization).

--max-isa sets ONEDNN_MAX_CPU_ISA before TensorFlow starts: `AVX512_CORE_BF16` runs the kernels
an AVX-512 BF16 CPU without AMX (AMD Zen 4) gets on an AMX Xeon, `AVX2` those of an AVX2-only
one. The hardware is still this one: the ratios say what the kernels cost, not another CPU's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _common import header, save

VARIANTS = {  # name: (activation, FusedBatchNorm)
    "gelu + keras batchnorm": ("gelu", False),
    "gelu + fused batchnorm": ("gelu", True),
    "relu + keras batchnorm": ("relu", False),
    "relu + fused batchnorm (the recipe)": ("relu", True),
}


def build(activation: str, fused: bool, x: np.ndarray, steps_per_epoch: int):
    from cifar_pack.training import architectures as model_mod
    from cifar_pack.training.config import FAST_RECIPE
    from cifar_pack.training.pipeline import make_optimizer
    from cifar_pack.training.tf_setup import keras

    # build_fast_model reads the class by its module name: Keras' own layer stands in for the A/B.
    norm, model_mod.FusedBatchNorm = (
        model_mod.FusedBatchNorm,
        (model_mod.FusedBatchNorm if fused else keras.layers.BatchNormalization),
    )
    try:
        model = model_mod.build_fast_model(10, model_mod.whitening_weights(x), activation=activation)
    finally:
        model_mod.FusedBatchNorm = norm
    model.compile(
        optimizer=make_optimizer(FAST_RECIPE, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=FAST_RECIPE.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--max-isa", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.max_isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.max_isa  # read once, when oneDNN first runs
    from cifar_pack.training.pipeline import resolve_precision
    from cifar_pack.training.tf_setup import keras, tf

    info = header("fast CNN training step", __doc__.split("\n\n", 2)[1].strip().replace("\n", " "))
    precision = resolve_precision(args.precision)
    keras.mixed_precision.set_global_policy(precision)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset: all this CPU has)")
    print(f"precision: {precision}, batch {args.batch}, ONEDNN_MAX_CPU_ISA={isa}")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch * args.steps, 32, 32, 3), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 10, len(x)), 10)
    batches = [
        (tf.constant(x[i : i + args.batch], tf.float32), tf.constant(labels[i : i + args.batch]))
        for i in range(0, len(x), args.batch)
    ]
    models = {name: build(act, fused, x, 40_000 // args.batch) for name, (act, fused) in VARIANTS.items()}
    for model in models.values():
        for images, y in batches[:3]:
            model.train_on_batch(images, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            for images, y in batches:
                started = time.perf_counter()
                model.train_on_batch(images, y)
                times[name].append(time.perf_counter() - started)
    steps = {name: statistics.median(t) for name, t in times.items()}
    first = next(iter(steps.values()))
    for name, step in steps.items():
        print(f"{name}: {step * 1000:.0f} ms a step, {args.batch / step:,.0f} images/s ({first / step:.2f}x the first)")
    save(args.json, info | {"precision": precision, "batch": args.batch, "max_isa": isa, "step_seconds": steps})


if __name__ == "__main__":
    main()
