"""Saved Keras classifiers: loading, checking, a float32 copy, the serving function export converts,
and the ``classifier`` callable evaluate and benchmark use. The networks themselves are
``architectures.py``. Imports Keras."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..runtime.batching import BatchFn
from ..runtime.config import INPUT_NAME, INPUT_SHAPE, KERAS_SUFFIXES, OUTPUT_NAME
from ..runtime.errors import ModelError
from ..runtime.evaluation import EvalModel
from ..runtime.records import TrainingRecord, read_record
from .tf_setup import keras, tf

log = logging.getLogger(__name__)


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


def serving_function(
    model: keras.Model, softmax_added: bool, flip_average: bool = False
) -> tf.types.experimental.PolymorphicFunction:
    """The uint8 serving ``tf.function``: (N, 32, 32, 3) uint8 -> {"probabilities": (N, C) float32}.

    Export converts exactly this function with tf2onnx, and the parity gate runs exactly this
    function against onnxruntime, so parity checks what was converted. ``flip_average``: the mean
    of the probabilities of each image and of its mirror image (two passes through the network).
    """
    spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.uint8, name=INPUT_NAME)
    # Columns W-1..0 of (N, H, W, C): a Gather with constant indices, which every ONNX runtime runs
    # (tf.reverse becomes ReverseSequence, whose lengths tf2onnx computes from the shape at run
    # time). Made inside the function: a captured tensor would become a second graph input.
    mirror = np.arange(INPUT_SHAPE[1] - 1, -1, -1, dtype=np.int32)

    def probabilities(x: tf.Tensor) -> tf.Tensor:
        out = model(x, training=False)
        return tf.nn.softmax(out) if softmax_added else out

    @tf.function(input_signature=[spec])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.cast(images, tf.float32)
        if not flip_average:
            return {OUTPUT_NAME: probabilities(x)}
        return {OUTPUT_NAME: (probabilities(x) + probabilities(tf.gather(x, tf.constant(mirror), axis=2))) / 2}

    return serve


def keras_probabilities(model: keras.Model, softmax_added: bool, flip_average: bool = False) -> BatchFn:
    """(N, 32, 32, 3) uint8 -> (N, C) float32 numpy, through ``serving_function``."""
    serve = serving_function(model, softmax_added, flip_average)
    return lambda images: serve(images)[OUTPUT_NAME].numpy()


def keras_classifier(path: Path) -> EvalModel:
    """A Keras model as evaluation's ``EvalModel``: float32 probabilities, names from its run's manifest.

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
    return EvalModel(path, names, keras_probabilities(model, False), record, "keras")
