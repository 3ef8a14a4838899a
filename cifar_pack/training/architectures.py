"""The networks: the seed CNN from the notebook (scaling to [0, 1] is its first layer) and the fast
recipe's BatchNorm CNN with a frozen whitening layer, after airbench, with the layers they need.
Imports Keras."""

from __future__ import annotations

import numpy as np

from ..runtime.config import INPUT_SHAPE
from .config import TrainConfig
from .tf_setup import keras, tf


def build_model(num_classes: int = 10, input_shape: tuple[int, int, int] = INPUT_SHAPE) -> keras.Model:
    """Build the notebook's CNN: 2,168,362 parameters for 10 classes.

    conv32-conv32-maxpool-dropout.25, conv64-conv64-maxpool-dropout.25, flatten, dense512-dropout.5,
    dense(num_classes) softmax; 3x3 'same' convolutions with ReLU. The model takes raw pixels,
    (N, 32, 32, 3) in 0..255; ``Rescaling(1/255)`` makes it self-contained for export.
    The current Keras dtype policy applies (``mixed_bfloat16`` computes in bf16, except the
    softmax head, which stays float32 so probabilities are accurate).

    Example:
        >>> model = build_model(10)
        >>> model.count_params()
        2168362
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="images"),
            layers.Rescaling(1.0 / 255.0, name="rescale"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1a"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1b"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Dropout(0.25, name="drop1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2a"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2b"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Dropout(0.25, name="drop2"),
            layers.Flatten(name="flatten"),
            layers.Dense(512, activation="relu", name="fc"),
            layers.Dropout(0.5, name="drop3"),
            layers.Dense(num_classes, name="logits"),
            layers.Activation("softmax", dtype="float32", name="probabilities"),
        ],
        name="cifar_pack_cnn",
    )


# The three blocks' channels; 32x32 -> 31 -> 15 -> 7 -> 3 pixels. 48-144-144 is ~0.66 M parameters and
# ~98 MFLOP an image: narrow enough to run at half the seed CNN's images/s (the inference bound; 48-160-160
# ran at 0.46x), for 0.5 points of median validation accuracy, within the seeds' spread (docs/recipes.md).
FAST_WIDTHS = (48, 144, 144)
# ReLU, not airbench's GELU: on two cores GELU's element-wise passes took a third of each training
# step (481 against 326 ms a batch of 512; with FusedBatchNorm 373 against 208 ms) and
# onnxruntime fuses a ReLU into its Conv (formats/graph.py); 10 epochs lose 0.4 points, and the
# recipe's 20 ReLU epochs take less time than GELU's 10 did (docs/recipes.md). "gelu" builds the
# networks bundled before this change.
FAST_ACTIVATION = "relu"
WHITEN_PATCH = 2  # the whitening layer's patch size: 2x2x3 = 12 dimensions, 24 filters (+ and -)
WHITEN_BIAS = "whiten_bias"  # the name of the optional trainable bias after it (build_fast_model)


@keras.saving.register_keras_serializable(package="cifar_pack")
def gelu(x: tf.Tensor) -> tf.Tensor:
    """Exact GELU written with erf: Keras' own computes it with erfc, which tf2onnx cannot convert;
    erf is ONNX's ``Erf`` (opset 9), which onnxruntime, OpenVINO, OpenCV DNN and tract all run."""
    return 0.5 * x * (1.0 + keras.ops.erf(x * 0.7071067811865476))


def whitening_weights(images: np.ndarray, eps: float = 5e-4, samples: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """The frozen first layer's weights: (2, 2, 3, 24) filters that whiten 2x2 RGB patches, and
    their (24,) bias.

    ``images``: uint8 (N, 32, 32, 3) training images (the first ``samples`` are used). The patch
    covariance's eigenvectors, each divided by the square root of its eigenvalue (+ ``eps``), and
    their negatives, so a following ReLU (or GELU) keeps both signs (airbench's first layer). The bias
    centres the outputs (it subtracts the filters' response to the mean patch): airbench
    normalises its inputs first; here the layer sees 0..1 pixels, whose mean (~0.47) would
    otherwise shift the brightness filters' outputs by about +-2 and push half of them into the
    activation's flat side.
    """
    k = WHITEN_PATCH
    x = images[:samples].astype(np.float32) / 255.0
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # (N, 31, 31, 3, k, k)
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * 3)  # rows in (row, col, channel) order
    mean = patches.mean(axis=0)
    centred = patches - mean
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(centred))
    filters = (vectors / np.sqrt(eigenvalues + eps)).T  # (12 filters, 12 patch values)
    kernel = filters.reshape(k * k * 3, k, k, 3).transpose(1, 2, 3, 0)
    bias = -(filters @ mean)
    return (
        np.concatenate([kernel, -kernel], axis=-1).astype(np.float32),
        np.concatenate([bias, -bias]).astype(np.float32),
    )


@keras.saving.register_keras_serializable(package="cifar_pack")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, trained with TensorFlow's fused kernel (one oneDNN pass over NHWC).

    Keras computes a training step's statistics and normalisation as separate float32 element-wise
    ops with casts around them; on a 2-core CPU they took 38 % of the ``fast`` CNN's step once the
    activations were ReLUs (benchmarks/README.md). ``FusedBatchNormV3`` does the same arithmetic in
    one kernel on the bf16 tensor (statistics in float32) and updates the moving statistics itself
    (its ``exponential_avg_factor`` is Keras' ``1 - momentum``; its moving variance is the unbiased
    one, n / (n - 1) with n >= 512 x 3 x 3: below bf16's resolution). Inference, saving and export
    are Keras' own (the same weights, the same ``Mul``/``Add`` in ONNX). For NHWC inputs without
    ``center``/``scale``, which is how the ``fast`` CNN uses it (``ScaledBias`` is its bias).
    """

    def call(self, inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
        if not (training and self.trainable) or self.center or self.scale or len(inputs.shape) != 4:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.ones((channels,), tf.float32),
            offset=tf.zeros((channels,), tf.float32),
            mean=self.moving_mean.value,
            variance=self.moving_variance.value,
            epsilon=self.epsilon,
            exponential_avg_factor=1.0 - self.momentum,
            data_format="NHWC",
            is_training=True,
        )
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return keras.ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="cifar_pack")
class ScaledBias(keras.layers.Layer):
    """A per-channel bias stored divided by ``scale``: ``x + scale * b``.

    SGD then moves the bias ``scale**2`` times faster than a plain one with the same learning rate
    and weight decay (the gradient and the step are each multiplied by ``scale``): airbench trains
    BatchNorm biases at 64x the rate of the weights; 8**2 = 64. Exported as one Add of a constant.
    """

    def __init__(self, scale: float = 8.0, **kwargs: object):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape: tuple) -> None:
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x + keras.ops.cast(self.bias * self.scale, x.dtype)

    def get_config(self) -> dict:
        return super().get_config() | {"scale": self.scale}


@keras.saving.register_keras_serializable(package="cifar_pack")
class PartialIdentity(keras.initializers.Initializer):
    """3x3 kernels (kh, kw, in, out) whose first ``min(in, out)`` filters pass their input channel
    through (a Dirac delta at the centre) and the rest are U(+-1/sqrt(fan_in)): a network that
    starts near the identity trains fast without residual connections (airbench)."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape: tuple, dtype: str | None = None) -> tf.Tensor:
        kh, kw, cin, cout = shape
        bound = 1.0 / np.sqrt(kh * kw * cin)
        w = keras.random.uniform(shape, -bound, bound, seed=self.seed, dtype="float32")
        n = min(cin, cout)
        eye = np.zeros(shape, np.float32)
        eye[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        keep = np.ones(shape, np.float32)
        keep[:, :, :, :n] = 0.0
        return keras.ops.cast(w * keep + eye, dtype or "float32")

    def get_config(self) -> dict:
        return {"seed": self.seed}


def build_fast_model(
    num_classes: int,
    whitening: tuple[np.ndarray, np.ndarray],
    widths: tuple[int, ...] = FAST_WIDTHS,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    activation: str = FAST_ACTIVATION,
    batchnorm_epsilon: float = 1e-3,
    whiten_bias: bool = False,
) -> keras.Model:
    """The ``fast`` recipe's CNN: raw pixels (N, 32, 32, 3) 0..255 -> (N, C) probabilities.

    Rescaling(1/255) -> frozen 2x2 whitening conv (24 filters, valid: 31x31) -> act -> three blocks
    of [conv3x3 -> maxpool2 -> BN -> act -> conv3x3 -> BN -> act] -> global max pool -> dense
    (no bias) scaled by 1/9 -> softmax (float32). Convolutions have no bias and start near the
    identity (``PartialIdentity``); BatchNorm has no scale (the next convolution's weights carry it)
    and its bias is a ``ScaledBias`` (airbench's 64x bias learning rate). ``act``: ``activation``,
    a Keras activation name or "gelu" (``gelu`` below, which tf2onnx converts). ``whiten_bias``: a
    trainable bias (``WHITEN_BIAS``, zeros) after the frozen whitening convolution, which
    ``train`` freezes after ``whiten_bias_epochs`` (airbench trains its whitening bias at first).
    """
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    kernel, bias = whitening
    whiten = layers.Conv2D(kernel.shape[-1], WHITEN_PATCH, name="whiten", trainable=False)
    act = gelu if activation == "gelu" else activation
    x = whiten(x)
    whiten.set_weights([kernel, bias])
    if whiten_bias:
        x = ScaledBias(scale=1.0, name=WHITEN_BIAS)(x)
    x = layers.Activation(act, name="whiten_act")(x)

    def conv(width: int, name: str) -> keras.layers.Layer:
        return layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=PartialIdentity(), name=name)

    def norm(x: tf.Tensor, name: str) -> tf.Tensor:
        x = FusedBatchNorm(momentum=0.6, epsilon=batchnorm_epsilon, center=False, scale=False, name=name)(x)
        return ScaledBias(name=f"{name}_bias")(x)

    for i, width in enumerate(widths, start=1):
        x = conv(width, f"block{i}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Activation(act, name=f"block{i}_act1")(norm(x, f"block{i}_bn1"))
        x = conv(width, f"block{i}_conv2")(x)
        x = layers.Activation(act, name=f"block{i}_act2")(norm(x, f"block{i}_bn2"))
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
    x = layers.Rescaling(1.0 / 9.0, name="logit_scale")(x)  # airbench's output scale: softer early softmax
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cifar_pack_fast_cnn")


def fast_shape(config: TrainConfig) -> dict:
    """``build_fast_model``'s shape arguments from a recipe (its None fields: this module's defaults)."""
    return {
        "widths": tuple(config.widths or FAST_WIDTHS),
        "activation": config.activation or FAST_ACTIVATION,
        "batchnorm_epsilon": config.batchnorm_epsilon,
        "whiten_bias": config.whiten_bias_epochs > 0,
    }
