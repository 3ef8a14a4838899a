"""Training throughput: the notebook's recipe vs cifar-pack's recipes, in one run.

    python benchmarks/train_throughput.py [--steps 60] [--rounds 2] [--emulate-avx2] [--bf16]
        [--explore] [--history RUN/history.json] [--json out.json]

Each configuration trains the seed CNN for `--steps` batches on the shared CIFAR-10 data in a
fresh Python process, so that TensorFlow starts with that configuration's settings exactly as a
user's run would (oneDNN is decided at TensorFlow's import); the first 8 batches (tracing,
warm-up) are excluded and images/s is taken over the rest from batch-end timestamps.
Configurations run in turn, `--rounds` times, and the median is quoted, so that machine noise
touches them alike.

  notebook     Keras 2 API (tf-keras): ImageDataGenerator.flow(rotation 40, shifts 0.2, zoom 0.2,
               flip, nearest) + fit, RMSprop 1e-3, batch 128, float32, TensorFlow's own oneDNN
               choice for this CPU: what users run today. Needs `pip install --no-deps
               tf-keras==<your tensorflow version>` (--no-deps: its dependency on the full
               `tensorflow` wheel would shadow tensorflow-cpu).
  seed-fp32    cifar-pack --recipe seed: the same augmentation as Keras layers in tf.data, float32.
  default      cifar-pack's default recipe as `cifar-pack train` runs it here (precision auto).
  default-onednn-off   the same with TF_ENABLE_ONEDNN_OPTS=0: what AVX2 CPUs ran before
               cifar-pack turned oneDNN on (cifar_pack/training/tf_setup.py).
  seed-bf16    (--bf16 only: emulated on AVX2 CPUs, 0.14x float32) the seed recipe in mixed_bfloat16.
  --explore    default with steps_per_execution 8; batch 256 (the learning rate scaled with it);
               intra-op 1 / inter-op 2 threads; inter-op 1.

--emulate-avx2 approximates an AVX2-only CPU (AMD Zen 3) on an AVX-512 one: oneDNN limited to AVX2
(ONEDNN_MAX_CPU_ISA=AVX2), the notebook on Eigen (TensorFlow's default on AVX2 CPUs), `auto`
precision resolved as on AVX2 (float32). Eigen's kernels are compiled for AVX in this wheel and
run the same either way. It reproduces the ratios measured on Zen 3 in November 2026 (oneDNN 1.85x,
Eigen 1.45x), not a Zen 3's images/s.

With --history (a default-recipe run's history.json), time to 61% validation accuracy is compared
with the notebook's 20-epoch wall time, estimated from the notebook row's measured images/s
over 20 epochs of 50,000 images (the notebook trains on all of them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from _common import SHARED_DATA, header, save

from cifar_pack.runtime.fileio import package_versions

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
    from cifar_pack.training.architectures import build_model
    from cifar_pack.training.pipeline import make_optimizer, make_pipeline
    from cifar_pack.training.tf_setup import keras

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(config.precision)
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


# name -> (recipe, overrides, steps_per_execution, environment, threads (intra, inter) or None)
OFF = {"TF_ENABLE_ONEDNN_OPTS": "0"}
CONFIGS = {
    "notebook": (None, {}, 1, {}, None),
    "seed-fp32": ("seed", {}, 1, {}, None),
    "default": ("default", {}, 1, {}, None),
    "default-onednn-off": ("default", {}, 1, OFF, None),
}
BF16 = {"seed-bf16": ("seed", {"precision": "mixed_bfloat16"}, 1, {}, None)}
EXPLORE = {
    "default-spe8": ("default", {}, 8, {}, None),
    "default-b256": ("default", {"batch_size": 256, "learning_rate": 4e-3}, 1, {}, None),
    "default-intra1-inter2": ("default", {}, 1, {}, (1, 2)),
    "default-inter1": ("default", {}, 1, {}, (0, 1)),
}
AVX2_FLAGS = ["avx2", "fma"]  # what `auto` precision sees on an AVX2-only CPU


def child(name: str, steps: int, emulate_avx2: bool) -> dict:
    """One configuration in this (fresh) process; the parent set its environment."""
    recipe, overrides, spe, _, threads = ({**CONFIGS, **BF16, **EXPLORE})[name]
    from cifar_pack.runtime import data
    from cifar_pack.training.config import RECIPES

    x, y = data.load(SHARED_DATA).split("train")
    batch = overrides.get("batch_size", 128)
    pick = np.random.default_rng(0).choice(len(y), size=min(len(y), batch * (steps + 4)), replace=False)
    x, y = x[pick], y[pick]
    if recipe is None:
        # The notebook's own stack (tf-keras): cifar_pack.training.tf_setup is never imported here.
        return {"images_per_second": notebook(x, y, steps), "onednn": _onednn()}
    from cifar_pack.training.pipeline import resolve_precision
    from cifar_pack.training.tf_setup import onednn_enabled, tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    config = RECIPES[recipe].with_overrides(**overrides)
    precision = resolve_precision(
        config.precision, AVX2_FLAGS if emulate_avx2 else None, False if emulate_avx2 else None
    )
    ips = cifar_pack_recipe(x, y, steps, config.with_overrides(precision=precision), spe)
    return {"images_per_second": ips, "onednn": onednn_enabled(), "precision": precision}


def _onednn() -> bool | None:
    """TensorFlow's own answer (what cifar_pack.training.tf_setup.onednn_enabled asks, without importing it)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def run_child(name: str, steps: int, emulate_avx2: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
    env |= {"TF_CPP_MIN_LOG_LEVEL": "3"} | ({**CONFIGS, **BF16, **EXPLORE})[name][3]
    if emulate_avx2:
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        if name == "notebook":
            env["TF_ENABLE_ONEDNN_OPTS"] = "0"  # TensorFlow's own choice on AVX2-only CPUs
    cmd = [sys.executable, __file__, "--child", name, "--steps", str(steps)] + (["--emulate-avx2"] * emulate_avx2)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--emulate-avx2", action="store_true", help="approximate an AVX2-only CPU (see above)")
    parser.add_argument("--bf16", action="store_true", help="also the seed recipe in bf16 (emulated on AVX2)")
    parser.add_argument("--explore", action="store_true", help="also steps_per_execution, batch 256, threads")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.emulate_avx2)))
        return

    info = header("training throughput", __doc__.split("\n\n", 2)[2].split("\n\n")[0].replace("\n", " "))
    if args.emulate_avx2:
        print("emulated AVX2: " + __doc__.split("--emulate-avx2 ")[1].split("\n\n")[0].replace("\n", " "))
    names = list(CONFIGS) + list(BF16) * args.bf16 + list(EXPLORE) * args.explore
    info["versions"] |= package_versions("tf-keras")  # the notebook row's Keras 2
    print(f"notebook row: tf-keras {info['versions']['tf-keras']}")
    if importlib.util.find_spec("tf_keras") is None:
        names.remove("notebook")
        print("notebook row skipped: pip install --no-deps tf-keras==<tensorflow version> to measure it")

    samples, onednn = {name: [] for name in names}, {}
    for _ in range(args.rounds):
        for name in names:
            result = run_child(name, args.steps, args.emulate_avx2)
            samples[name].append(result["images_per_second"])
            onednn[name] = result["onednn"]
            print(f"  {name}: {samples[name][-1]:.0f} images/s (oneDNN {'on' if result['onednn'] else 'off'})")
    rows = {name: statistics.median(v) for name, v in samples.items()}
    base = rows.get("notebook")
    print(f"\n| configuration | oneDNN | images/s (median of {args.rounds}) | vs notebook |")
    print("| --- | --- | ---: | ---: |")
    for name, ips in rows.items():
        ratio = f"{ips / base:.2f}x" if base else "n/a"
        print(f"| {name} | {'on' if onednn[name] else 'off'} | {ips:.0f} | {ratio} |")
    result = {"images_per_second": rows, "samples": samples, "onednn": onednn, "emulated_avx2": args.emulate_avx2}
    if args.history:
        result["time_to_accuracy"] = tta = time_to_accuracy(args.history, base)
        print(f"\ntime to {tta['target']:.0%} validation accuracy: {json.dumps(tta)}")
    save(args.json, info | {"results": result})


if __name__ == "__main__":
    main()
