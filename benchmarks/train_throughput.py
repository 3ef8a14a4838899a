"""Training throughput: the notebook's recipe vs cifar-pack's recipes, in one run.

    python benchmarks/train_throughput.py [--steps 60] [--rounds 2] [--history RUN/history.json] [--json out.json]

Each configuration trains the seed CNN for `--steps` batches on the shared CIFAR-10 data; the
first 8 batches (tracing, warm-up) are excluded and images/s is taken over the rest from
batch-end timestamps. Configurations run in turn, `--rounds` times, and the median is quoted,
so that machine noise touches them alike.

  notebook     Keras 2 API (tf-keras): ImageDataGenerator.flow(rotation 40, shifts 0.2, zoom 0.2,
               flip, nearest) + fit, RMSprop 1e-3, batch 128, float32: what users run today.
               Needs `pip install --no-deps tf-keras==<your tensorflow version>` (--no-deps: its
               dependency on the full `tensorflow` wheel would shadow tensorflow-cpu).
  seed-fp32    cifar-pack --recipe seed: the same augmentation as Keras layers in tf.data, float32.
  seed-bf16    the same under the mixed_bfloat16 policy.
  default      cifar-pack's default recipe (batch 64, flip + shift 0.1, AdamW, bf16 where available).

With --history (a default-recipe run's history.json), time to 61% validation accuracy is compared
with the notebook's 20-epoch wall time, estimated from the notebook row's measured images/s
over 20 epochs of 50,000 images (the notebook trains on all of them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from _common import SHARED_DATA, header, save

WARMUP_STEPS = 8


class BatchClock:
    """(batch index, time) at every batch end; with steps_per_execution > 1 Keras reports every N."""

    def __init__(self):
        self.stamps = []

    def callback(self, keras_module):
        clock = self

        class _CB(keras_module.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                clock.stamps.append((batch, time.perf_counter()))

        return _CB()

    def images_per_second(self, batch_size: int) -> float:
        steady = [s for s in self.stamps if s[0] >= WARMUP_STEPS]
        (b0, t0), (b1, t1) = steady[0], steady[-1]
        return (b1 - b0) * batch_size / (t1 - t0)


def notebook(x, y, steps):
    import tf_keras as K

    datagen = K.preprocessing.image.ImageDataGenerator(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
    )
    L = K.layers
    model = K.Sequential(
        [
            L.Conv2D(32, (3, 3), padding="same", input_shape=(32, 32, 3)),
            L.Activation("relu"),
            L.Conv2D(32, (3, 3), padding="same"),
            L.Activation("relu"),
            L.MaxPooling2D((2, 2)),
            L.Dropout(0.25),
            L.Conv2D(64, (3, 3), padding="same"),
            L.Activation("relu"),
            L.Conv2D(64, (3, 3), padding="same"),
            L.Activation("relu"),
            L.MaxPooling2D((2, 2)),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(512),
            L.Activation("relu"),
            L.Dropout(0.5),
            L.Dense(10),
            L.Activation("softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=K.optimizers.RMSprop(1e-3), metrics=["accuracy"])
    xf = x.astype("float32") / 255  # the notebook scales before training
    yf = K.utils.to_categorical(y, 10)
    clock = BatchClock()
    model.fit(
        datagen.flow(xf, yf, batch_size=128), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock.callback(K)]
    )
    return clock.images_per_second(128)


def cifar_pack_recipe(x, y, steps, config, steps_per_execution=1):
    import keras

    from cifar_pack.model import build_model
    from cifar_pack.train import make_optimizer, make_pipeline, resolve_precision

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(resolve_precision(config.precision))
    try:
        model = build_model(10)
        model.compile(
            optimizer=make_optimizer(config, steps),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
        )
        clock = BatchClock()
        model.fit(
            make_pipeline(x, y, 10, config, training=True).repeat(),
            steps_per_epoch=steps,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[clock.callback(keras)],
        )
        return clock.images_per_second(config.batch_size)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def time_to_accuracy(history_path: str, notebook_ips: float | None, target: float = 0.61) -> dict:
    history = json.loads(open(history_path).read())
    elapsed, reached = 0.0, None
    for h in history:
        elapsed += h["seconds"]
        if h["val_accuracy"] >= target:
            reached = {"epoch": h["epoch"], "seconds": elapsed}
            break
    result = {"target": target, "reached": reached, "best_val_accuracy": max(h["val_accuracy"] for h in history)}
    if notebook_ips and reached:
        notebook_seconds = 20 * 50_000 / notebook_ips
        result |= {
            "notebook_20_epoch_seconds_estimated": notebook_seconds,
            "fraction_of_notebook_time": reached["seconds"] / notebook_seconds,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--history", default=None)
    parser.add_argument("--explore", action="store_true", help="also try steps_per_execution=8")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from cifar_pack import data
    from cifar_pack.config import RECIPES

    info = header("training throughput", __doc__.split("\n\n", 2)[2].split("\n\n")[0].replace("\n", " "))
    x, y = data.load(SHARED_DATA).split("train")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(y), size=min(len(y), 128 * (args.steps + 4)), replace=False)
    x, y = x[pick], y[pick]

    configs = {
        "seed-fp32": lambda: cifar_pack_recipe(x, y, args.steps, RECIPES["seed"]),
        "seed-bf16": lambda: cifar_pack_recipe(
            x, y, args.steps, RECIPES["seed"].with_overrides(precision="mixed_bfloat16")
        ),
        "default": lambda: cifar_pack_recipe(x, y, args.steps, RECIPES["default"]),
    }
    if args.explore:
        configs["default-spe8"] = lambda: cifar_pack_recipe(x, y, args.steps, RECIPES["default"], 8)
    try:
        import tf_keras  # noqa: F401

        configs = {"notebook": lambda: notebook(x, y, args.steps)} | configs
    except ImportError:
        print("notebook row skipped: pip install --no-deps tf-keras==<tensorflow version> to measure it")

    samples = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, run in configs.items():
            samples[name].append(run())
            print(f"  {name}: {samples[name][-1]:.0f} images/s")
    rows = {name: statistics.median(v) for name, v in samples.items()}
    base = rows.get("notebook")
    print(f"\n| configuration | images/s (median of {args.rounds}) | vs notebook |")
    print("| --- | ---: | ---: |")
    for name, ips in rows.items():
        print(f"| {name} | {ips:.0f} | {ips / base:.2f}x |" if base else f"| {name} | {ips:.0f} | n/a |")
    result = {"images_per_second": rows, "samples": samples}
    if args.history:
        result["time_to_accuracy"] = tta = time_to_accuracy(args.history, base)
        print(f"\ntime to {tta['target']:.0%} validation accuracy: {json.dumps(tta)}")
    save(args.json, info | {"results": result})


if __name__ == "__main__":
    main()
