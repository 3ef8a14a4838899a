"""The seed CNN from the notebook (scaling to [0, 1] is its first layer), and loading, checking and
serving saved Keras classifiers: export, evaluate and benchmark share these. Imports Keras."""

from __future__ import annotations

import logging
from pathlib import Path

from ..runtime.batching import BatchFn
from ..runtime.config import INPUT_NAME, INPUT_SHAPE, KERAS_SUFFIXES, OUTPUT_NAME
from ..runtime.errors import ModelError
from ..runtime.evaluation import Classifier
from ..runtime.records import TrainingRecord, read_record
from .tf_setup import keras, tf

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------
# Loading and checking saved Keras models (export, evaluate and benchmark share these)


def load_keras_model(path: Path) -> keras.Model:
    """Load a ``.keras`` or ``.h5`` model for inference; one-line ``ModelError`` on any failure."""
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.suffix not in KERAS_SUFFIXES:
        raise ModelError(f"{path}: expected a Keras model file (.keras or .h5), got '{path.suffix or 'no suffix'}'")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, KeyError... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable Keras model ({first[:200]})") from None


def check_classifier(model: keras.Model, path: Path) -> int:
    """Input must be (None, 32, 32, 3); output (None, C) with C >= 2. Returns C."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
    in_shape, out_shape = tuple(inputs[0].shape[1:]), tuple(outputs[0].shape[1:])
    if in_shape != INPUT_SHAPE:
        raise ModelError(f"{path}: input shape is {in_shape}, expected {INPUT_SHAPE} (32x32 RGB, channels last)")
    if len(out_shape) != 1 or (out_shape[0] or 0) < 2:
        raise ModelError(f"{path}: output shape is {out_shape}, expected a class vector (C,) with C >= 2")
    return int(out_shape[0])


def float32_copy(model: keras.Model) -> tuple[keras.Model, bool]:
    """A model trained under ``mixed_bfloat16`` is rebuilt in float32 with the same weights.

    Returns (model, was_mixed). Weights are float32 variables under a mixed policy already, so
    the copy is exact; only the compute dtype changes.
    """
    mixed = any(getattr(layer.dtype_policy, "compute_dtype", "float32") != "float32" for layer in model.layers)
    if not mixed:
        return model, False

    def as_float32(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=as_float32)
    clone.set_weights(model.get_weights())
    return clone, True


def ends_in_softmax(model: keras.Model) -> bool:
    """True when the last layer is a softmax (an Activation/Softmax layer or activation='softmax')."""
    last = model.layers[-1]
    config = last.get_config()
    if type(last).__name__ == "Softmax":
        return True
    activation = config.get("activation")
    return activation == "softmax" or (
        isinstance(activation, dict) and activation.get("config", {}).get("name") == "softmax"
    )


def serving_function(model: keras.Model, softmax_added: bool) -> tf.types.experimental.PolymorphicFunction:
    """The uint8 serving ``tf.function``: (N, 32, 32, 3) uint8 -> {"probabilities": (N, C) float32}.

    Export converts exactly this function with tf2onnx, and the parity gate runs exactly this
    function against onnxruntime, so parity checks what was converted.
    """
    spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        out = model(tf.cast(images, tf.float32), training=False)
        return {OUTPUT_NAME: tf.nn.softmax(out) if softmax_added else out}

    return serve


def keras_probabilities(model: keras.Model, softmax_added: bool) -> BatchFn:
    """(N, 32, 32, 3) uint8 -> (N, C) float32 numpy, through ``serving_function``."""
    serve = serving_function(model, softmax_added)
    return lambda images: serve(images)[OUTPUT_NAME].numpy()


def keras_classifier(path: Path) -> Classifier:
    """A Keras model as evaluation's ``Classifier``: float32 probabilities, names from its run's manifest.

    Raises:
        ModelError: not a loadable classifier, or a manifest whose class count differs from the model's.
    """
    model = load_keras_model(path)
    num_classes = check_classifier(model, path)
    model, _ = float32_copy(model)
    record = read_record(path) or TrainingRecord()
    names = list(record.class_names or [str(i) for i in range(num_classes)])
    if len(names) != num_classes:
        raise ModelError(f"{path}: manifest lists {len(names)} classes but the model outputs {num_classes}")
    return Classifier(path, names, keras_probabilities(model, False), record, "keras")
