"""The pieces of a training run that benchmarks and ``preview-augment`` reuse: precision, strategy,
optimizer and schedule, augmentation layers, the tf.data pipeline, the curves picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runtime.errors import UsageError
from ..runtime.fileio import atomic_path
from ..runtime.sysinfo import cpu_info
from .config import TrainConfig
from .tf_setup import ONEDNN_SETTING, keras, onednn_enabled, tf


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
        warmup = int(config.warmup() * steps_per_epoch)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
            decay_steps=max(config.epochs * steps_per_epoch - warmup, 1),
            alpha=0.0,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    elif config.schedule == "triangular":
        warmup = int(config.warmup() * steps_per_epoch)
        lr = Triangular(config.learning_rate, config.epochs * steps_per_epoch, warmup)
    elif config.schedule != "constant":
        raise UsageError(f"unknown schedule {config.schedule!r}: use constant, onecycle or triangular")
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay or None
        )
    raise UsageError(f"unknown optimizer {config.optimizer!r}: use adamw, adam, rmsprop or sgd")


@keras.saving.register_keras_serializable(package="cifar_pack")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from 20 % of ``peak`` to ``peak`` over ``warmup`` steps, then linear down to 7 % of it
    at ``total`` steps (airbench's shape; its short warm-up lets BatchNorm settle at a high rate)."""

    def __init__(self, peak: float, total: int, warmup: int):
        self.peak, self.total, self.warmup = float(peak), int(total), max(int(warmup), 1)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        up = 0.2 + 0.8 * step / self.warmup
        down = 1.0 - 0.93 * (step - self.warmup) / max(self.total - self.warmup, 1)
        return self.peak * tf.maximum(tf.where(step < self.warmup, up, down), 0.07)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup}


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch (0-based) alone: its data order and augmentation depend on nothing else,
    so a resumed run re-creates epoch k exactly instead of replaying epoch 1's randomness."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2**31 - 8))


def train_steps(num_images: int, config: TrainConfig) -> int:
    """Training batches per epoch. With ``drop_remainder`` the last, partial batch is dropped (as
    airbench does: at 40,000 images and batch 512 it would hold 64 images, whose BatchNorm
    statistics at the peak learning rate set validation back by up to 20 points for an epoch);
    a training set smaller than one batch keeps its one partial batch."""
    if config.drop_remainder and num_images >= config.batch_size:
        return num_images // config.batch_size
    return -(-num_images // config.batch_size)


def alternating_flips(num_images: int, seed: int, epoch: int) -> np.ndarray:
    """airbench's flips: (N,) bool, which images are mirrored in ``epoch`` (0-based). The same random
    half in every even epoch and the other half in every odd one, so any two epochs in a row show
    each image both ways round (random flips show a quarter of them the same way both times)."""
    return (np.random.default_rng(seed).random(num_images) < 0.5) ^ bool(epoch % 2)


def make_augmenter(config: TrainConfig, seed: int | None = None, flip: bool = True) -> keras.Sequential:
    """The recipe's augmentation as preprocessing layers, float32 even under a bf16 policy.

    ImageDataGenerator(rotation_range=40) draws degrees uniformly in [-40, 40]; RandomRotation
    takes a fraction of a full turn, so 40 / 360. Shifts and zoom are fractions of the size.
    ``seed`` defaults to the recipe's; ``flip=False`` leaves flips to the caller (alternating ones).
    """
    a, layers = config.augment, keras.layers
    seed = config.seed if seed is None else seed
    kwargs = {"fill_mode": a.fill_mode, "interpolation": a.interpolation, "dtype": "float32"}
    stack = []
    if a.horizontal_flip and flip:
        stack.append(layers.RandomFlip("horizontal", seed=seed, dtype="float32"))
    if a.rotation_degrees:
        stack.append(layers.RandomRotation(a.rotation_degrees / 360.0, seed=seed + 1, **kwargs))
    if a.width_shift or a.height_shift:
        stack.append(layers.RandomTranslation(a.height_shift, a.width_shift, seed=seed + 2, **kwargs))
    if a.zoom:
        stack.append(layers.RandomZoom(a.zoom, a.zoom, seed=seed + 3, **kwargs))
    return keras.Sequential(stack, name="augment")


def validation_batch_size(config: TrainConfig) -> int:
    """Validation runs forward only, so in batches of at least 512 whatever the training batch."""
    return max(config.batch_size, 512)


def make_pipeline(
    x: np.ndarray, y: np.ndarray, num_classes: int, config: TrainConfig, training: bool, epoch: int | None = None
) -> tf.data.Dataset:
    """(N, 32, 32, 3) uint8 + (N,) labels -> batches of (float32 0..255 images, one-hot labels).

    Augmentation runs on whole batches inside tf.data (vectorised, in parallel with the step);
    it is never part of the saved model. With ``epoch``, the data order and augmentation are
    those of that epoch alone (``epoch_seed``); without, one reshuffling pipeline for all epochs.
    """
    alternate = training and epoch is not None and config.augment.horizontal_flip and config.augment.alternate_flips
    columns = (x, y, alternating_flips(len(y), config.seed, epoch)) if alternate and epoch is not None else (x, y)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    seed = config.seed if epoch is None else epoch_seed(config.seed, epoch)
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=epoch is None)
        # Exactly the batches train_steps counts: whole ones only when it drops the remainder.
        ds = ds.batch(config.batch_size, drop_remainder=train_steps(len(y), config) * config.batch_size <= len(y))
    else:
        ds = ds.batch(validation_batch_size(config))
    augment = make_augmenter(config, seed, flip=not alternate) if training else None

    def prepare(images: tf.Tensor, labels: tf.Tensor, flips: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        if flips is not None:  # (N,) bool: mirror those rows along the width axis of (N, H, W, C)
            images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)
        if augment is not None and augment.layers:
            images = augment(images, training=True)
        return images, tf.one_hot(labels, num_classes)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # No autotuning thread: destroying an iterator waits for it to wake from its sleep (up to a
    # minute), which stalled every other epoch's end by ~20 s (one fit() per epoch: 30 epochs
    # lost 4 minutes). Augmenting a batch takes ~18 ms of a ~230 ms step, so the fixed defaults
    # that AUTOTUNE means without the tuner keep up.
    options.autotune.enabled = False
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
