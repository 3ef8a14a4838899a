"""Training stage: tf.data pipeline with augmentation layers -> model.fit -> best checkpoint.

Files a run writes into ``out`` (all atomically):

    model.keras          best epoch by val_accuracy (what export reads)
    last.keras           last completed epoch, with optimizer state (what --resume reads)
    train_state.json     config, data source, epochs done, history so far (what --resume reads)
    history.json         per-epoch loss/accuracy/val_loss/val_accuracy/lr/seconds
    curves.png           loss and accuracy curves, train and validation
    manifest.json        config, data source and sha256, class names, versions, metrics, seconds
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import data as data_mod
from .config import TrainConfig, validate_config
from .errors import Interrupted, UsageError
from .fileio import atomic_path, package_versions, remove_stale_temps, sha256_file, write_json_atomic
from .model import build_model
from .sysinfo import cpu_info
from .tf_setup import ONEDNN_SETTING, keras, onednn_enabled, tf

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
LAST_FILE = "last.keras"  # the newest epoch, with optimizer state, for --resume
PREV_FILE = "last.prev.keras"  # the epoch before, kept only while a new checkpoint is being recorded


class TrainingInterrupted(Interrupted):
    """Ctrl-C during fit; the message says where the best checkpoint is and how to resume."""


@dataclass
class TrainResult:
    model: Path
    epochs: int
    best_val_accuracy: float
    best_epoch: int
    test_accuracy: float | None
    seconds: float
    images_per_second: float
    history: Path
    curves: Path
    manifest: Path

    def to_json(self) -> dict:
        return {
            "model": str(self.model),
            "epochs": self.epochs,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "test_accuracy": self.test_accuracy,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "history": str(self.history),
            "curves": str(self.curves),
            "manifest": str(self.manifest),
        }


def train(source: str, out: str | os.PathLike, config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train the seed CNN on ``source`` and keep the best epoch as ``out/model.keras``.

    Args:
        source: any ``data.load`` source ("cifar10", an archive, a directory).
        out: run directory; created if missing.
        config: recipe and options (``config.RECIPES`` holds "default" and "seed").
        resume: continue the interrupted run in ``out`` from its last completed epoch; the stored
            config and data source are used, so the finished run equals an uninterrupted one.

    Returns:
        TrainResult with the paths written and the headline metrics.

    Raises:
        DataError, UsageError: bad source or option. TrainingInterrupted: Ctrl-C (checkpoints kept).

    Example:
        >>> train("../shared/data/cifar10-train-jpeg.tar.gz", "artifacts", RECIPES["default"])
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    state, checkpoint = _read_state(out) if resume else (None, None)
    if state is not None:
        try:
            config = TrainConfig.from_dict(state["config"])
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--resume: {out / STATE_FILE} holds an unusable config ({exc})") from None
        # The absolute path, so that `--resume` works from any working directory.
        source = state["data"].get("path") or state["data"]["source"]
        log.info("resuming %s after epoch %d/%d", out, state["epochs_done"], config.epochs)
    validate_config(config)
    out.mkdir(parents=True, exist_ok=True)
    chief = config.strategy != "multi-worker" or is_chief(os.environ.get("TF_CONFIG"))
    if chief:  # a killed earlier process's half-written files (ours by name); workers share --out
        remove_stale_temps(out, [LAST_FILE, PREV_FILE, "model.keras", STATE_FILE, "history.json", "manifest.json"])

    dataset = data_mod.load(source)
    if state is not None and state["data"].get("sha256") not in (None, dataset.sha256):
        raise UsageError(f"--resume: the data at {source} changed since the run started (content key differs)")
    x_all, y_all = dataset.split("train")
    train_idx, val_idx = data_mod.stratified_split(y_all, config.validation_split, config.seed)
    x_train, y_train, x_val, y_val = x_all[train_idx], y_all[train_idx], x_all[val_idx], y_all[val_idx]
    num_classes = len(dataset.class_names)
    log.info("data: %d train, %d validation images, %d classes", len(y_train), len(y_val), num_classes)

    keras.utils.set_random_seed(config.seed)
    precision = resolve_precision(config.precision)
    log.info("compute: %s; %s", precision, describe_kernels())
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    # TF's multi-worker guide: every worker saves (saving can run collectives), but only the
    # chief into the real run folder; the others write into a scratch copy deleted at the end.
    scratch = None
    if not chief:
        scratch = Path(tempfile.mkdtemp(prefix="cifar-pack-worker-"))
        shutil.copytree(out, scratch, dirs_exist_ok=True)  # a resumed worker reads last.keras too
    try:
        arrays = (x_train, y_train, x_val, y_val)
        result = _fit(scratch or out, source, config, state, checkpoint, dataset, precision, arrays, num_classes)
    finally:
        # The policy is process-global: leave it as we found it for the caller's next model.
        keras.mixed_precision.set_dtype_policy(previous_policy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        log.info("worker done; the chief writes the run to %s", out)
        result = replace(
            result, **{k: out / getattr(result, k).name for k in ("model", "history", "curves", "manifest")}
        )
    return result


def _work_around_keras_multi_worker(model: keras.Model) -> None:
    """Workaround for keras-team/keras#20585 (tensorflow#72388), part 1: fit()'s "symbolic build".

    Keras 3 all-reduces the first data batch eagerly before fitting, which fails across real
    workers (PerReplica -> Tensor). With no strategy recorded on the model, Keras defers the build
    to the traced train step; fit() then runs inside the strategy's scope, so that step still runs
    under MultiWorkerMirroredStrategy (``Trainer.distribute_strategy`` falls back to the current
    one). Tested with two workers in tests/test_train.py.
    """
    model._distribute_strategy = None


@contextlib.contextmanager
def _multi_worker_step_logs(active: bool):
    """Workaround for keras-team/keras#20585, part 2: step logs across workers.

    Keras 3 reduces every train/test step's logs with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails on scalars. Those logs are results of Keras metrics whose variables are already
    summed over all workers (sync-on-read), so each worker holds the global value: take it as it
    is, as tf.keras 2 did ("first"). Only while fit() runs, only for ``--strategy multi-worker``.
    """
    if not active:
        yield
        return
    tf_trainer = keras.src.backend.tensorflow.trainer  # loaded with keras.Model on this backend

    def first_local(values, strategy, reduction):
        def one(v):
            return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

        return keras.tree.map_structure(one, values)

    original, tf_trainer.reduce_per_replica = tf_trainer.reduce_per_replica, first_local
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original


def is_chief(tf_config: str | None) -> bool:
    """The worker that writes the run: task "chief", else worker 0 (TF's convention); no TF_CONFIG = alone.

    Raises:
        UsageError: TF_CONFIG is set but is not the JSON TensorFlow expects.
    """
    if not tf_config:
        return True
    try:
        cfg = json.loads(tf_config)
        kind, index = cfg["task"]["type"], int(cfg["task"]["index"])
        has_chief = "chief" in cfg.get("cluster", {})
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}'
        ) from None
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def _fit(out, source, config, state, checkpoint, dataset, precision, arrays, num_classes) -> TrainResult:
    x_train, y_train, x_val, y_val = arrays
    strategy = make_strategy(config.strategy)
    steps_per_epoch = int(np.ceil(len(y_train) / config.batch_size))

    with strategy.scope():
        if checkpoint is not None:
            model = _load_checkpoint(checkpoint)
            restore_rng_states(model, state.get("rng") or {})
            if state.get("best_epoch") == state["epochs_done"]:
                # The kill may have come between the state and the best model: rebuild it.
                save_model(model, out / "model.keras", include_optimizer=False)
        else:
            model = build_model(num_classes)
            model.compile(
                optimizer=make_optimizer(config, steps_per_epoch),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                metrics=["accuracy"],
            )

    val_ds = make_pipeline(x_val, y_val, num_classes, config, training=False)

    history = state["history"] if state else []
    initial_epoch = state["epochs_done"] if state else 0
    run_state = {
        "config": config.to_dict(),
        "data": dataset.describe() | {"path": source if source == "cifar10" else str(Path(source).resolve())},
        "precision": precision,
        "epochs_done": initial_epoch,
        "history": history,
        "train_seconds": state.get("train_seconds", 0.0) if state else 0.0,
        "complete": False,
    }
    tracker = _RunTracker(out, run_state)
    started = time.perf_counter()
    if config.strategy == "multi-worker":
        _work_around_keras_multi_worker(model)
    try:
        with strategy.scope(), _multi_worker_step_logs(config.strategy == "multi-worker"):
            # One fit() per epoch, each on that epoch's own pipeline: a resumed run then sees
            # exactly the data order and augmentation an uninterrupted one would (the compiled
            # train step is reused across calls, so this costs one tf.data trace per epoch).
            for epoch in range(initial_epoch, config.epochs):
                model.fit(
                    make_pipeline(x_train, y_train, num_classes, config, training=True, epoch=epoch),
                    validation_data=val_ds,
                    epochs=epoch + 1,
                    initial_epoch=epoch,
                    callbacks=[tracker],
                    shuffle=False,  # tf.data already shuffles
                    verbose=0,
                )
    except KeyboardInterrupt:
        done = run_state["epochs_done"]
        if done == 0:
            raise TrainingInterrupted(
                f"interrupted before the first epoch finished: nothing was saved in {out}"
            ) from None
        raise TrainingInterrupted(
            f"interrupted after epoch {done}/{config.epochs}; best checkpoint kept at {out / 'model.keras'}; "
            f"resume with: cifar-pack train --out {out} --resume"
        ) from None
    total_images = len(y_train) * (config.epochs - initial_epoch)
    fit_seconds = time.perf_counter() - started
    run_state["complete"] = True
    write_json_atomic(out / STATE_FILE, run_state)

    best = max(history, key=lambda h: h["val_accuracy"])
    test_accuracy = None
    if dataset.has_test:
        x_test, y_test = dataset.split("test")
        best_model = keras.models.load_model(out / "model.keras")
        probs = best_model.predict(x_test, batch_size=512, verbose=0)
        test_accuracy = float(np.mean(np.argmax(probs, axis=1) == y_test))
        log.info("test accuracy of the best epoch: %.4f", test_accuracy)

    write_json_atomic(out / "history.json", history)
    curves = plot_curves(history, out / "curves.png")
    seconds = sum(h["seconds"] for h in history)
    manifest = {
        "model": "model.keras",
        "config": config.to_dict(),
        "precision": precision,
        "strategy": config.strategy,
        "data": dataset.describe()
        | {
            # Absolute too, so that export/evaluate find the data from any working directory.
            "path": source if source == "cifar10" else str(Path(source).resolve()),
            "validation_split": config.validation_split,
            "split_seed": config.seed,
        },
        "class_names": dataset.class_names,
        "versions": package_versions(),
        "tensorflow": tensorflow_runtime(),
        "metrics": {
            "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"],
            "final_val_accuracy": history[-1]["val_accuracy"],
            "test_accuracy": test_accuracy,
        },
        "seconds": round(seconds, 2),
        "images_per_second": round(len(y_train) * len(history) / seconds, 1) if seconds else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return TrainResult(
        model=out / "model.keras",
        epochs=len(history),
        best_val_accuracy=best["val_accuracy"],
        best_epoch=best["epoch"],
        test_accuracy=test_accuracy,
        seconds=seconds,
        images_per_second=(total_images / fit_seconds) if total_images else manifest["images_per_second"] or 0.0,
        history=out / "history.json",
        curves=curves,
        manifest=out / "manifest.json",
    )


# ---------------------------------------------------------------------------------------------
# Pieces (public so that benchmarks and preview-augment reuse them)


def resolve_precision(
    precision: str, cpu_flags: list[str] | None = None, has_gpu: bool | None = None, onednn: bool | None = None
) -> str:
    """``auto`` -> ``mixed_bfloat16`` on a GPU, or on a CPU with AVX-512 BF16 / AMX when TensorFlow
    runs oneDNN; else ``float32``.

    Never an emulated bf16: only oneDNN computes bf16 with the CPU's BF16 instructions; TensorFlow's
    Eigen kernels emulate it (AVX2-only CPUs such as AMD Zen 3: 0.14x the float32 speed; a BF16 CPU
    with ``TF_ENABLE_ONEDNN_OPTS=0``: 32 images/s against 1,671). ``cpu_flags``, ``has_gpu`` and
    ``onednn`` default to this machine's and this TensorFlow's; tests pass them to force each path.
    """
    if precision != "auto":
        return precision
    if has_gpu is None:
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if cpu_flags is None:
        cpu_flags = cpu_info()["flags"]
    if onednn is None:
        onednn = onednn_enabled() is not False
    if has_gpu or (onednn and ("avx512_bf16" in cpu_flags or "amx_bf16" in cpu_flags)):
        return "mixed_bfloat16"
    return "float32"


def tensorflow_runtime() -> dict:
    """What TensorFlow computed with: oneDNN on or off and why, and its thread pools (0 = one per core)."""
    return {
        "onednn": onednn_enabled(),
        "onednn_setting": ONEDNN_SETTING,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def describe_kernels() -> str:
    """One line for the log: "oneDNN kernels on (cifar-pack default; TF_ENABLE_ONEDNN_OPTS=0 turns them off)"."""
    on, setting = onednn_enabled(), ONEDNN_SETTING
    if on is None:
        return "TensorFlow's kernel library unknown"
    state = "oneDNN kernels on" if on else "Eigen kernels (oneDNN off)"
    if setting["source"] == "environment":
        return f"{state} ({setting['variable']}={setting['value']} from the environment)"
    if setting["source"] == "cifar-pack default":
        return f"{state} (cifar-pack default; {setting['variable']}=0 turns them off)"
    return f"{state} (TensorFlow's choice)"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all GPUs, else all logical CPUs), ``multi-worker`` (TF_CONFIG)."""
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.schedule == "onecycle":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
            decay_steps=max(config.epochs * steps_per_epoch - warmup, 1),
            alpha=0.0,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    elif config.schedule != "constant":
        raise UsageError(f"unknown schedule {config.schedule!r}: use constant or onecycle")
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    raise UsageError(f"unknown optimizer {config.optimizer!r}: use adamw, adam, rmsprop or sgd")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch (0-based) alone: its data order and augmentation depend on nothing else,
    so a resumed run re-creates epoch k exactly instead of replaying epoch 1's randomness."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2**31 - 8))


def make_augmenter(config: TrainConfig, seed: int | None = None) -> keras.Sequential:
    """The recipe's augmentation as preprocessing layers, float32 even under a bf16 policy.

    ImageDataGenerator(rotation_range=40) draws degrees uniformly in [-40, 40]; RandomRotation
    takes a fraction of a full turn, so 40 / 360. Shifts and zoom are fractions of the size.
    ``seed`` defaults to the recipe's.
    """
    a, layers = config.augment, keras.layers
    seed = config.seed if seed is None else seed
    kwargs = {"fill_mode": a.fill_mode, "dtype": "float32"}
    stack = []
    if a.horizontal_flip:
        stack.append(layers.RandomFlip("horizontal", seed=seed, dtype="float32"))
    if a.rotation_degrees:
        stack.append(layers.RandomRotation(a.rotation_degrees / 360.0, seed=seed + 1, **kwargs))
    if a.width_shift or a.height_shift:
        stack.append(layers.RandomTranslation(a.height_shift, a.width_shift, seed=seed + 2, **kwargs))
    if a.zoom:
        stack.append(layers.RandomZoom(a.zoom, a.zoom, seed=seed + 3, **kwargs))
    return keras.Sequential(stack, name="augment")


def make_pipeline(
    x: np.ndarray, y: np.ndarray, num_classes: int, config: TrainConfig, training: bool, epoch: int | None = None
) -> tf.data.Dataset:
    """(N, 32, 32, 3) uint8 + (N,) labels -> batches of (float32 0..255 images, one-hot labels).

    Augmentation runs on whole batches inside tf.data (vectorised, in parallel with the step);
    it is never part of the saved model. With ``epoch``, the data order and augmentation are
    those of that epoch alone (``epoch_seed``); without, one reshuffling pipeline for all epochs.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    seed = config.seed if epoch is None else epoch_seed(config.seed, epoch)
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=epoch is None)
    ds = ds.batch(config.batch_size if training else max(config.batch_size, 512))
    augment = make_augmenter(config, seed) if training else None

    def prepare(images, labels):
        images = tf.cast(images, tf.float32)
        if augment is not None and augment.layers:
            images = augment(images, training=True)
        return images, tf.one_hot(labels, num_classes)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def plot_curves(history: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Checkpointing and resume


class _RunTracker(keras.callbacks.Callback):
    """After every epoch: history entry, best checkpoint, last checkpoint, state file (in that order).

    The state file is written last, so a kill at any moment leaves a state that points at a
    complete ``last.keras`` of the epoch it names (or of a later epoch, which resume then repeats).
    """

    def __init__(self, out: Path, run_state: dict):
        super().__init__()
        self.out, self.state = out, run_state
        history = run_state["history"]
        self.best = max((h["val_accuracy"] for h in history), default=-1.0)
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.epoch_started
        entry = {"epoch": epoch + 1, "seconds": round(seconds, 3)}
        entry |= {k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        entry["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        improved = entry["val_accuracy"] > self.best
        # Resumable state first, the best model after: a kill at any point leaves a state that
        # names a complete checkpoint by its sha256 (this epoch's, or the previous one kept as
        # last.prev.keras until the state has moved on), and resume rebuilds a best model that
        # the kill cut short (``_read_state``).
        last, prev = self.out / LAST_FILE, self.out / PREV_FILE
        if last.exists():
            os.replace(last, prev)
        save_model(self.model, last)
        self.state["history"].append(entry)
        self.state["epochs_done"] = epoch + 1
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + seconds
        self.state["last_sha256"] = sha256_file(last)
        self.state["rng"] = rng_states(self.model)
        if improved:
            self.best = entry["val_accuracy"]
            self.state["best_epoch"] = epoch + 1
        write_json_atomic(self.out / STATE_FILE, self.state)
        if improved:
            save_model(self.model, self.out / "model.keras", include_optimizer=False)
        prev.unlink(missing_ok=True)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs%s",
            epoch + 1,
            self.state["config"]["epochs"],
            entry["loss"],
            entry["accuracy"],
            entry["val_loss"],
            entry["val_accuracy"],
            seconds,
            "  (best, saved)" if improved else "",
        )


def save_model(model: keras.Model, path: Path, include_optimizer: bool = True) -> None:
    """``model.save`` through a temporary file, so a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        if include_optimizer:
            model.save(tmp)
        else:
            # An uncompiled copy: no optimizer state, so the deployable file is a third the size
            # (the .keras format takes no include_optimizer flag).
            # (clone_model would copy the compiled optimizer along; from_config does not.)
            clone = type(model).from_config(model.get_config())
            clone.set_weights(model.get_weights())
            clone.save(tmp)


def rng_states(model: keras.Model) -> dict[str, list[int]]:
    """The dropout layers' random-generator states, ``{layer name: [seed, counter]}``.

    A ``.keras`` file does not keep them (Keras 3.15: a loaded Dropout starts a new random
    stream), so the run state does, and a resumed run draws the same dropout masks.
    """
    states = {}
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            states[layer.name] = [int(v) for v in keras.ops.convert_to_numpy(generator.state)]
    return states


def restore_rng_states(model: keras.Model, states: dict[str, list[int]]) -> None:
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None and layer.name in states:
            generator.state.assign(np.asarray(states[layer.name], dtype=generator.state.dtype))


def _read_state(out: Path) -> tuple[dict, Path | None]:
    """The interrupted run's state and the checkpoint it names (None before the first epoch).

    Raises:
        UsageError: no run, a corrupt state, or no checkpoint matching it; each in one line.
    """
    path = out / STATE_FILE
    if not path.exists():
        raise UsageError(f"--resume: no interrupted run in {out} ({STATE_FILE} is missing)")
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--resume: {path} is not valid JSON ({exc})") from None
    missing = [k for k in ("config", "data", "epochs_done", "history") if not isinstance(state, dict) or k not in state]
    if missing:
        raise UsageError(f"--resume: {path} is not a cifar-pack run state (missing {', '.join(missing)})")
    if state["epochs_done"] == 0:
        return state, None
    for candidate in (out / LAST_FILE, out / PREV_FILE):
        if candidate.exists() and state.get("last_sha256") in (None, sha256_file(candidate)):
            return state, candidate
    raise UsageError(
        f"--resume: no checkpoint in {out} matches {STATE_FILE} (epoch {state['epochs_done']}): "
        f"{LAST_FILE} is missing, truncated or from another run"
    )


def _load_checkpoint(path: Path) -> keras.Model:
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UsageError(f"--resume: {path} is unreadable ({first})") from None
